#include "records/digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/atomic_file.h"

namespace imf::records {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<Key> read_key(const std::string& path, int fd) {
  char buf[80];
  size_t len = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf + len, sizeof(buf) - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error(path, "cannot read key file");
    if (n == 0 || (len += static_cast<size_t>(n)) == sizeof(buf)) break;
  }
  std::string_view text(buf, len);
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  Key key{};
  bool good = text.size() == 2 * key.size();
  for (size_t i = 0; good && i < key.size(); ++i) {
    int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
    good = hi >= 0 && lo >= 0;
    key[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (!good) return make_error(path + ": key file must hold exactly 64 hex characters and an optional newline");
  return key;
}

Result<Key> read_key_file(const std::string& path, bool* missing) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  *missing = fd < 0 && errno == ENOENT;
  if (fd < 0) return sys_error(path, "cannot open key file");
  auto key = read_key(path, fd);
  ::close(fd);
  return key;
}

// Writes a fresh key to a private directory beside `path` and hard-links it into place: link()
// fails when `path` exists, so when several processes race exactly one key wins and everyone
// reads that one. The private directory (0700) keeps the key unreadable to others even while
// write_file_atomic's temporary file still has its default mode.
Status create_key_file(const std::string& path) {
  Key key{};
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1)
    return make_error(path + ": cannot create key: RAND_bytes failed");
  std::string tmpdir = path + ".new.XXXXXX";
  if (!::mkdtemp(tmpdir.data())) return sys_error(path, "cannot create key: cannot make temporary directory");
  std::string tmp = tmpdir + "/key";
  Status st = write_file_atomic(tmp, to_hex(key.data(), key.size()) + "\n");
  if (st && ::chmod(tmp.c_str(), 0600) != 0) st = sys_error(tmp, "cannot chmod key file");
  if (st && ::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) st = sys_error(path, "cannot create key file");
  ::unlink(tmp.c_str());
  ::rmdir(tmpdir.c_str());
  if (!st) return st;
  return fsync_directory(parent_directory(path));  // the new directory entry must be durable
}

}  // namespace

Result<Key> load_or_create_key(const std::string& path) {
  bool missing = false;
  auto key = read_key_file(path, &missing);
  if (key || !missing) return key;
  if (Status st = create_key_file(path); !st) return make_error(st.error());
  return read_key_file(path, &missing);
}

std::string to_hex(const uint8_t* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kHex[p[i] >> 4];
    s[2 * i + 1] = kHex[p[i] & 15];
  }
  return s;
}

std::string sha256_hex(std::string_view data) {
  uint8_t md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(data.data()), data.size(), md);
  return to_hex(md, sizeof(md));
}

std::string hmac_hex(const Key& key, std::string_view data) {
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const uint8_t*>(data.data()),
       data.size(), md, &len);
  return to_hex(md, len);
}

std::string pseudonym(const Key& key, std::string_view account) {
  std::string msg = "account:";
  msg += account;
  return "p-" + hmac_hex(key, msg).substr(0, 32);
}

// SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, whose contexts are heap
// objects that allocate again on every copy; HmacStream must stay a plain value (see digest.h).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

HmacKeyState prepare_hmac(const uint8_t* key, size_t n) {
  uint8_t block[SHA256_CBLOCK] = {};
  if (n > sizeof(block)) {
    SHA256(key, n, block);
  } else {
    std::memcpy(block, key, n);
  }
  uint8_t pad[SHA256_CBLOCK];
  HmacKeyState k;
  for (size_t i = 0; i < sizeof(pad); ++i) pad[i] = block[i] ^ 0x36;
  SHA256_Init(&k.inner);
  SHA256_Update(&k.inner, pad, sizeof(pad));
  for (size_t i = 0; i < sizeof(pad); ++i) pad[i] = block[i] ^ 0x5c;
  SHA256_Init(&k.outer);
  SHA256_Update(&k.outer, pad, sizeof(pad));
  return k;
}

HmacKeyState prepare_hmac(const Key& key) { return prepare_hmac(key.data(), key.size()); }

void HmacStream::begin(const HmacKeyState& k) {
  ctx_ = k.inner;
  bytes_ = 0;
}

void HmacStream::update(const uint8_t* p, size_t n) {
  SHA256_Update(&ctx_, p, n);
  bytes_ += n;
}

void HmacStream::peek(const HmacKeyState& k, uint8_t out[32]) const {
  SHA256_CTX inner = ctx_;  // finalizing consumes the context; work on copies
  uint8_t inner_md[SHA256_DIGEST_LENGTH];
  SHA256_Final(inner_md, &inner);
  SHA256_CTX outer = k.outer;
  SHA256_Update(&outer, inner_md, sizeof(inner_md));
  SHA256_Final(out, &outer);
}

#pragma GCC diagnostic pop

}  // namespace imf::records
