// Per-lcore store of the bytes a flow direction has had inspected but its receiver has not yet
// acknowledged. They are what makes a retransmission checkable: a segment that repeats inspected
// sequence space must repeat its bytes, or a receiver that never got the first copy (bad
// checksum, low TTL, old timestamp, out of window ...) would accept bytes nobody inspected.
//
// Fixed-size chunks from one pool made at setup: no allocation per packet. Owning lcore only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/result.h"

namespace imf::dp::stream {

// One direction's retained bytes: a chain of chunks, the first `head_off` bytes of the first
// chunk already released. 16 bytes, kept in the flow state.
struct RetainedBytes {
  static constexpr uint32_t kNone = UINT32_MAX;
  uint32_t head = kNone;
  uint32_t tail = kNone;
  uint32_t len = 0;
  uint16_t head_off = 0;   // first byte in the head chunk
  uint16_t tail_used = 0;  // bytes used in the tail chunk
};

class ByteStore {
 public:
  static constexpr uint32_t kChunkBytes = 512;
  static constexpr uint32_t kChunkData = kChunkBytes - sizeof(uint32_t);

  // A store of `bytes` (rounded down to whole chunks, at least one). Setup thread.
  static Result<std::unique_ptr<ByteStore>> create(size_t bytes);

  // Appends n bytes to r, unless r would then hold more than `cap` bytes or the store has no room:
  // then nothing changes and it returns false.
  bool append(RetainedBytes& r, const uint8_t* p, uint32_t n, uint32_t cap);

  // Releases the first n (<= r.len) bytes of r.
  void consume(RetainedBytes& r, uint32_t n);

  // Whether the n bytes at p equal r's bytes [off, off + n) (off + n <= r.len).
  bool equals(const RetainedBytes& r, uint32_t off, const uint8_t* p, uint32_t n) const;

  // Releases every byte of r.
  void release(RetainedBytes& r) { consume(r, r.len); }

  size_t bytes_in_use() const { return size_t{chunks_ - free_count_} * kChunkBytes; }
  size_t capacity_bytes() const { return size_t{chunks_} * kChunkBytes; }

 private:
  struct Chunk {
    uint32_t next;
    uint8_t data[kChunkData];
  };
  static_assert(sizeof(Chunk) == kChunkBytes);

  explicit ByteStore(uint32_t chunks);
  uint32_t take_chunk();
  void give_chunk(uint32_t c);

  uint32_t chunks_;
  uint32_t free_head_;
  uint32_t free_count_;
  std::unique_ptr<Chunk[]> pool_;
};

}  // namespace imf::dp::stream
