// A bounded per-lcore flow table: canonical 5-tuple + VLAN -> slot index, with LRU idle aging
// and eviction of the least recently used flow when full.
//
// Owned and used by one lcore only: no locking, no allocation after create(). Per-flow
// application state lives in arrays the caller indexes by slot, so this module knows nothing of
// protocols or matching.
#pragma once

#include <cstdint>
#include <memory>

#include "common/result.h"
#include "decode/packet.h"

namespace imf::dp::flow {

// Canonical key: the (ip, port) pair that sorts lower is `a`, so both directions share one key.
struct FlowKey {
  uint8_t ip_a[16];
  uint8_t ip_b[16];
  uint16_t port_a;
  uint16_t port_b;
  uint16_t vlan;  // VLAN id, 0 when untagged
  uint8_t ip_version;
  uint8_t proto;

  bool operator==(const FlowKey&) const = default;
};
static_assert(sizeof(FlowKey) == 40, "FlowKey is hashed and compared as 40 bytes");

// Builds the canonical key of a decoded packet. `*from_a` tells whether the packet travels a->b.
FlowKey make_flow_key(const decode::PacketMeta& m, bool* from_a);

uint64_t hash_flow_key(const FlowKey& k);

class FlowTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  // capacity: maximum flows (>= 2); idle_ticks: age after which a flow expires.
  static Result<std::unique_ptr<FlowTable>> create(uint32_t capacity, uint64_t idle_ticks);

  // Returns the slot of `key`, or kNone. Marks it used at `now`.
  uint32_t lookup(const FlowKey& key, uint64_t hash, uint64_t now);

  // Inserts `key` (not present) and returns its slot. If the table is full, the least recently
  // used flow is evicted first and *evicted is set: the caller must reset that slot's state.
  uint32_t insert(const FlowKey& key, uint64_t hash, uint64_t now, bool* evicted);

  // Removes the flow in `slot`.
  void remove(uint32_t slot);

  // Expires (and returns the number of) up to `budget` flows idle since before now - idle_ticks, oldest first, calling
  // on_expire(slot) before each slot is freed. Bounded work per call keeps the burst loop smooth.
  template <typename F>
  uint32_t expire(uint64_t now, uint32_t budget, F&& on_expire) {
    uint32_t n = 0;
    while (n < budget && lru_head_ != kNone && now - entries_[lru_head_].last_used > idle_ticks_) {
      uint32_t slot = lru_head_;
      on_expire(slot);
      remove_slot(slot);
      ++n;
    }
    return n;
  }

  const FlowKey& key(uint32_t slot) const { return entries_[slot].key; }
  uint32_t size() const { return size_; }
  uint32_t capacity() const { return capacity_; }
  // Bytes of memory held, for the memory report.
  size_t memory_bytes() const;

 private:
  struct Entry {
    FlowKey key;
    uint64_t hash;
    uint64_t last_used;
    uint32_t prev;  // LRU list, head = least recently used
    uint32_t next;
    uint32_t bucket;  // index in buckets_ that points here
    uint32_t pad_;
  };

  FlowTable(uint32_t capacity, uint32_t bucket_mask, uint64_t idle_ticks);
  uint32_t find_bucket(const FlowKey& key, uint64_t hash) const;
  void lru_unlink(uint32_t slot);
  void lru_push_tail(uint32_t slot);
  void remove_slot(uint32_t slot);

  uint32_t capacity_;
  uint32_t bucket_mask_;
  uint64_t idle_ticks_;
  uint32_t size_ = 0;
  uint32_t free_head_ = kNone;  // free slots chained through Entry::next
  uint32_t lru_head_ = kNone;
  uint32_t lru_tail_ = kNone;
  std::unique_ptr<Entry[]> entries_;
  std::unique_ptr<uint32_t[]> buckets_;  // open addressing, linear probing; kNone = empty
};

}  // namespace imf::dp::flow
