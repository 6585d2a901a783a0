#include "records/digest.h"

#include <gtest/gtest.h>
#include <openssl/hmac.h>
#include <sys/stat.h>

#include <filesystem>
#include <random>
#include <thread>
#include <type_traits>

#include "control/temp_dir.h"

namespace imf::records {
namespace {

using control::testing::read_file;
using control::testing::TempDir;
using control::testing::write_file;

const uint8_t* bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

Key counting_key() {
  Key k{};
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i);
  return k;
}

std::string stream_hex(const HmacKeyState& ks, std::string_view data) {
  HmacStream s;
  s.begin(ks);
  s.update(bytes(data), data.size());
  uint8_t out[32];
  s.peek(ks, out);
  return to_hex(out, sizeof(out));
}

static_assert(std::is_trivially_copyable_v<HmacStream>, "lives in per-flow state, copied by value");

TEST(Digest, Sha256KnownAnswer) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Digest, HmacKnownAnswers) {
  // Computed independently (Python's hmac module).
  EXPECT_EQ(hmac_hex(counting_key(), "abc"), "f0133729c4163dede81e21cd47839256da58171238c8a0d874397c73b14e1e47");
  EXPECT_EQ(stream_hex(prepare_hmac(counting_key()), "abc"), hmac_hex(counting_key(), "abc"));
}

TEST(Digest, StreamMatchesRfc4231) {
  // Test case 2: a key shorter than 32 bytes.
  EXPECT_EQ(stream_hex(prepare_hmac(bytes("Jefe"), 4), "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 1: a 20-byte key.
  std::string key1(20, '\x0b');
  EXPECT_EQ(stream_hex(prepare_hmac(bytes(key1), key1.size()), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // Test case 6: a 131-byte key, longer than the block, hashed first.
  std::string key6(131, '\xaa');
  EXPECT_EQ(
      stream_hex(prepare_hmac(bytes(key6), key6.size()), "Test Using Larger Than Block-Size Key - Hash Key First"),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(Digest, StreamOverRandomChunksEqualsOneShot) {
  std::mt19937 rng(7);
  Key key{};
  for (auto& b : key) b = static_cast<uint8_t>(rng());
  HmacKeyState ks = prepare_hmac(key);
  for (size_t len : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 1000u, 10007u}) {
    std::string data(len, '\0');
    for (char& c : data) c = static_cast<char>(rng());
    for (int round = 0; round < 5; ++round) {
      HmacStream s;
      s.begin(ks);
      size_t pos = 0;
      while (pos < len) {
        size_t n = std::min<size_t>(len - pos, rng() % 130);
        s.update(bytes(data) + pos, n);
        pos += n;
      }
      ASSERT_EQ(s.bytes(), len);
      uint8_t out[32];
      s.peek(ks, out);
      ASSERT_EQ(to_hex(out, 32), hmac_hex(key, data)) << "len " << len << " round " << round;
      // Cross-check against OpenSSL's HMAC() directly.
      uint8_t ref[32];
      unsigned ref_len = 0;
      HMAC(EVP_sha256(), key.data(), 32, bytes(data), len, ref, &ref_len);
      ASSERT_EQ(to_hex(out, 32), to_hex(ref, ref_len));
    }
  }
}

TEST(Digest, PeekDoesNotDisturbTheStream) {
  Key key = counting_key();
  HmacKeyState ks = prepare_hmac(key);
  HmacStream s;
  s.begin(ks);
  s.update(bytes("hello "), 6);
  uint8_t out[32];
  s.peek(ks, out);
  EXPECT_EQ(to_hex(out, 32), hmac_hex(key, "hello "));
  s.peek(ks, out);  // twice: same answer
  EXPECT_EQ(to_hex(out, 32), hmac_hex(key, "hello "));
  s.update(bytes("world"), 5);
  s.peek(ks, out);
  EXPECT_EQ(to_hex(out, 32), hmac_hex(key, "hello world"));
  EXPECT_EQ(s.bytes(), 11u);
  // A copy continues independently.
  HmacStream copy = s;
  copy.update(bytes("!"), 1);
  copy.peek(ks, out);
  EXPECT_EQ(to_hex(out, 32), hmac_hex(key, "hello world!"));
  s.peek(ks, out);
  EXPECT_EQ(to_hex(out, 32), hmac_hex(key, "hello world"));
  // begin() starts over.
  s.begin(ks);
  EXPECT_EQ(s.bytes(), 0u);
  s.peek(ks, out);
  EXPECT_EQ(to_hex(out, 32), hmac_hex(key, ""));
}

TEST(Digest, Pseudonym) {
  Key key = counting_key();
  EXPECT_EQ(pseudonym(key, "alice"), "p-4b12159522821bca2cffca8f8a8a1ba9");  // Python's hmac module
  EXPECT_EQ(pseudonym(key, "alice"), "p-" + hmac_hex(key, "account:alice").substr(0, 32));
  EXPECT_NE(pseudonym(key, "alice"), pseudonym(key, "bob"));
  Key other = key;
  other[0] ^= 1;
  EXPECT_NE(pseudonym(key, "alice"), pseudonym(other, "alice"));
}

TEST(Digest, KeyIsCreatedPrivateAndReadBack) {
  TempDir dir;
  std::string path = dir / "records.key";
  auto k1 = load_or_create_key(path);
  ASSERT_TRUE(k1.ok()) << k1.error();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string text = read_file(path);
  ASSERT_EQ(text.size(), 65u);
  EXPECT_EQ(text, to_hex(k1.value().data(), 32) + "\n");
  auto k2 = load_or_create_key(path);
  ASSERT_TRUE(k2.ok()) << k2.error();
  EXPECT_EQ(k1.value(), k2.value());
  EXPECT_NE(k1.value(), Key{});
  // Nothing left beside it.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(Digest, ConcurrentCreatorsAgreeOnOneKey) {
  TempDir dir;
  std::string path = dir / "records.key";
  std::vector<Key> keys(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < keys.size(); ++i) {
    threads.emplace_back([&, i] {
      auto k = load_or_create_key(path);
      if (k) keys[i] = k.value();
    });
  }
  for (auto& t : threads) t.join();
  for (const Key& k : keys) EXPECT_EQ(k, keys[0]);
  EXPECT_NE(keys[0], Key{});
  EXPECT_EQ(load_or_create_key(path).value(), keys[0]);
}

TEST(Digest, KeyFileForms) {
  TempDir dir;
  std::string hex = to_hex(counting_key().data(), 32);
  write_file(dir / "a.key", hex);  // no newline
  auto a = load_or_create_key(dir / "a.key");
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_EQ(a.value(), counting_key());
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  write_file(dir / "b.key", upper + "\n");
  EXPECT_EQ(load_or_create_key(dir / "b.key").value(), counting_key());

  for (const std::string& bad :
       {hex.substr(2) + "\n", hex + "00\n", hex + "\n\n", "x" + hex.substr(1), std::string()}) {
    write_file(dir / "bad.key", bad);
    auto r = load_or_create_key(dir / "bad.key");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error(), dir / "bad.key" + ": key file must hold exactly 64 hex characters and an optional newline");
  }
  auto missing_dir = load_or_create_key(dir / "no/such/dir.key");
  ASSERT_FALSE(missing_dir.ok());
  EXPECT_NE(missing_dir.error().find(dir / "no/such/dir.key"), std::string::npos) << missing_dir.error();
}

}  // namespace
}  // namespace imf::records
