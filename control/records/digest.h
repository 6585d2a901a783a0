// Message digests and keyed pseudonyms: SHA-256, HMAC-SHA256, a per-appliance secret key, and a
// streaming HMAC for the dataplane that hashes message bodies as they arrive.
//
// Records never carry message content; they carry HMAC digests of it (so two records can be shown
// to concern the same message without revealing it) and, in exports, pseudonyms of accounts.
// Everything here is a pure function of its arguments except load_or_create_key(); all of it may
// be called from any thread.
#pragma once

#include <openssl/sha.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace imf::records {

using Key = std::array<uint8_t, 32>;

// Reads the key file at `path`: 64 hex characters and an optional newline. When the file does not
// exist, creates it with 32 bytes from RAND_bytes, mode 0600, atomically: of several processes
// starting at once (imfd and imf-control share the key) exactly one creates it and all return
// the same key. Errors name the path and the problem (unreadable, malformed, no randomness, I/O).
// Control and setup paths only (file I/O).
Result<Key> load_or_create_key(const std::string& path);

// Lowercase hex of n bytes.
std::string to_hex(const uint8_t* p, size_t n);
// SHA-256 of `data`, lowercase hex (64 characters).
std::string sha256_hex(std::string_view data);
// HMAC-SHA256 of `data` under `key`, lowercase hex (64 characters).
std::string hmac_hex(const Key& key, std::string_view data);
// Keyed pseudonym of an account for exports: "p-" + the first 32 hex characters of
// HMAC-SHA256(key, "account:" + account). Stable for one key, unlinkable without it.
std::string pseudonym(const Key& key, std::string_view account);

// HMAC-SHA256 precomputed for one key: the SHA-256 states after absorbing key^ipad and key^opad,
// so each message costs no key setup. Prepare once per key (control path), copy freely.
//
// The low-level SHA256_CTX API is deprecated in OpenSSL 3, but an EVP_MD_CTX allocates on every
// copy and the fast path must not allocate; SHA256_CTX is a plain struct we copy by value.
struct HmacKeyState {
  SHA256_CTX inner;  // after key^ipad
  SHA256_CTX outer;  // after key^opad
};
HmacKeyState prepare_hmac(const Key& key);
// Any key length (RFC 2104: keys longer than the 64-byte block are hashed first); for tests
// against published vectors and for callers whose keys are not 32 bytes.
HmacKeyState prepare_hmac(const uint8_t* key, size_t n);

// Streaming HMAC-SHA256 of one message at a time. Fixed size, trivially copyable, never allocates:
// lives in per-flow state on the fast path. Not thread-safe; the owning lcore only.
class HmacStream {
 public:
  // Starts a new message (forgets any previous one).
  void begin(const HmacKeyState& k);
  // Hashes the next n body bytes.
  void update(const uint8_t* p, size_t n);
  // Writes the HMAC of the bytes so far to out[32] without disturbing the stream: more update()
  // calls may follow. `k` must be the state given to begin().
  void peek(const HmacKeyState& k, uint8_t out[32]) const;
  // Bytes hashed since begin().
  uint64_t bytes() const { return bytes_; }

 private:
  SHA256_CTX ctx_{};
  uint64_t bytes_ = 0;
};

}  // namespace imf::records
