#include "stream/byte_store.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace imf::dp::stream {
namespace {

std::string text(size_t n, char seed) {
  std::string s(n, ' ');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (seed + i * 7) % 26);
  return s;
}
const uint8_t* bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

TEST(ByteStore, AppendConsumeAndCompareAcrossChunks) {
  auto store = ByteStore::create(64 * ByteStore::kChunkBytes).value();
  RetainedBytes r;
  std::string model;
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    if (rng() % 3 != 0 || model.empty()) {
      std::string more = text(rng() % 1500, static_cast<char>(round));
      if (store->append(r, bytes(more), static_cast<uint32_t>(more.size()), 1u << 20)) model += more;
    } else {
      uint32_t n = static_cast<uint32_t>(rng() % (model.size() + 1));
      store->consume(r, n);
      model.erase(0, n);
    }
    ASSERT_EQ(r.len, model.size());
    if (!model.empty()) {
      uint32_t off = static_cast<uint32_t>(rng() % model.size());
      uint32_t n = static_cast<uint32_t>(rng() % (model.size() - off) + 1);
      ASSERT_TRUE(store->equals(r, off, bytes(model) + off, n));
      std::string changed = model.substr(off, n);
      changed[rng() % n] ^= 0x20;
      ASSERT_FALSE(store->equals(r, off, bytes(changed), n));
    }
  }
  store->release(r);
  EXPECT_EQ(r.len, 0u);
  EXPECT_EQ(r.head, RetainedBytes::kNone);
  EXPECT_EQ(store->bytes_in_use(), 0u);
}

TEST(ByteStore, RefusesBeyondTheCapOrTheStoreAndChangesNothing) {
  auto store = ByteStore::create(4 * ByteStore::kChunkBytes).value();
  std::string block = text(ByteStore::kChunkData, 'x');
  RetainedBytes a, b;
  EXPECT_FALSE(store->append(a, bytes(block), 100, 99));  // over its own cap
  EXPECT_EQ(a.len, 0u);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store->append(a, bytes(block), ByteStore::kChunkData, 1u << 20));
  std::string two = block + block;
  EXPECT_FALSE(store->append(b, bytes(two), static_cast<uint32_t>(two.size()), 1u << 20));  // one chunk left
  EXPECT_EQ(b.len, 0u);
  EXPECT_EQ(store->bytes_in_use(), 3 * ByteStore::kChunkBytes);
  EXPECT_TRUE(store->append(b, bytes(block), 10, 1u << 20));
  store->release(a);
  store->release(b);
  EXPECT_EQ(store->bytes_in_use(), 0u);
}

}  // namespace
}  // namespace imf::dp::stream
