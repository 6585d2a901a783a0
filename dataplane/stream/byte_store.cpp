#include "stream/byte_store.h"

#include <algorithm>
#include <cstring>

namespace imf::dp::stream {

Result<std::unique_ptr<ByteStore>> ByteStore::create(size_t bytes) {
  size_t chunks = std::max<size_t>(bytes / kChunkBytes, 1);
  if (chunks >= RetainedBytes::kNone) return make_error("retention store too large");
  return std::unique_ptr<ByteStore>(new ByteStore(static_cast<uint32_t>(chunks)));
}

ByteStore::ByteStore(uint32_t chunks) : chunks_(chunks), free_head_(0), free_count_(chunks), pool_(new Chunk[chunks]) {
  for (uint32_t i = 0; i < chunks; ++i) pool_[i].next = i + 1 < chunks ? i + 1 : RetainedBytes::kNone;
}

uint32_t ByteStore::take_chunk() {
  uint32_t c = free_head_;
  free_head_ = pool_[c].next;
  pool_[c].next = RetainedBytes::kNone;
  --free_count_;
  return c;
}

void ByteStore::give_chunk(uint32_t c) {
  pool_[c].next = free_head_;
  free_head_ = c;
  ++free_count_;
}

bool ByteStore::append(RetainedBytes& r, const uint8_t* p, uint32_t n, uint32_t cap) {
  if (n == 0) return true;
  if (r.len + uint64_t{n} > cap) return false;
  uint32_t room = r.tail == RetainedBytes::kNone ? 0 : kChunkData - r.tail_used;
  uint32_t need = n > room ? (n - room + kChunkData - 1) / kChunkData : 0;
  if (need > free_count_) return false;
  r.len += n;
  while (n > 0) {
    if (r.tail == RetainedBytes::kNone || r.tail_used == kChunkData) {
      uint32_t c = take_chunk();
      if (r.tail == RetainedBytes::kNone) {
        r.head = c;
        r.head_off = 0;
      } else {
        pool_[r.tail].next = c;
      }
      r.tail = c;
      r.tail_used = 0;
    }
    uint32_t k = std::min(n, kChunkData - r.tail_used);
    std::memcpy(pool_[r.tail].data + r.tail_used, p, k);
    r.tail_used = static_cast<uint16_t>(r.tail_used + k);
    p += k;
    n -= k;
  }
  return true;
}

void ByteStore::consume(RetainedBytes& r, uint32_t n) {
  r.len -= n;
  uint32_t off = r.head_off + n;
  // Whole chunks released from the front; the tail chunk goes only when nothing is left.
  while (r.head != RetainedBytes::kNone && (off >= kChunkData || (r.len == 0 && r.head == r.tail))) {
    uint32_t next = pool_[r.head].next;
    bool last = r.head == r.tail;
    give_chunk(r.head);
    if (last) {
      r = RetainedBytes{};
      return;
    }
    r.head = next;
    off -= kChunkData;
  }
  r.head_off = static_cast<uint16_t>(off);
}

bool ByteStore::equals(const RetainedBytes& r, uint32_t off, const uint8_t* p, uint32_t n) const {
  uint32_t c = r.head;
  off += r.head_off;
  while (off >= kChunkData) {
    c = pool_[c].next;
    off -= kChunkData;
  }
  while (n > 0) {
    uint32_t k = std::min(n, kChunkData - off);
    if (std::memcmp(pool_[c].data + off, p, k) != 0) return false;
    p += k;
    n -= k;
    off = 0;
    c = pool_[c].next;
  }
  return true;
}

}  // namespace imf::dp::stream
