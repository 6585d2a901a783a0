// A bounded per-lcore flow table: canonical 5-tuple + VLAN -> slot index, with LRU idle aging
// and eviction of the least recently used flow when full.
//
// Owned and used by one lcore only: no locking, no allocation after create(). Per-flow
// application state lives in arrays the caller indexes by slot, so this module knows nothing of
// protocols or matching.
#pragma once

#include <cstdint>
#include <cstring>
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

  // One 40-byte compare (the defaulted operator compares the address arrays byte by byte).
  bool operator==(const FlowKey& o) const { return std::memcmp(this, &o, sizeof(FlowKey)) == 0; }
};
static_assert(sizeof(FlowKey) == 40, "FlowKey is hashed and compared as 40 bytes");

// Builds the canonical key of a decoded packet. `*from_a` tells whether the packet travels a->b.
FlowKey make_flow_key(const decode::PacketMeta& m, bool* from_a);

uint64_t hash_flow_key(const FlowKey& k);

class FlowTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  // capacity: maximum flows (>= 2); idle_ticks: age after which a flow expires.
  // lru_refresh_ticks: a used flow moves to the young end of the LRU list at most once per this
  // period (0: on every use). A lookup then rarely writes to other flows' entries; aging and
  // eviction stay exact to within the period (a flow expires at most that much late).
  static Result<std::unique_ptr<FlowTable>> create(uint32_t capacity, uint64_t idle_ticks,
                                                   uint64_t lru_refresh_ticks = 0);

  // Returns the slot of `key`, or kNone. Marks it used at `now`.
  uint32_t lookup(const FlowKey& key, uint64_t hash, uint64_t now);

  // For a burst's look-ahead: prefetch_bucket(hash) first, then peek(hash) guesses the slot from
  // the bucket alone (kNone if no tag matches) so the caller can prefetch that flow's state
  // before lookup() confirms it.
  void prefetch_bucket(uint64_t hash) const {
    __builtin_prefetch(&buckets_[static_cast<uint32_t>(hash) & bucket_mask_]);
  }
  uint32_t peek(uint64_t hash) const;
  void prefetch_entry(uint32_t slot) const { __builtin_prefetch(&entries_[slot]); }

  // Inserts `key` (not present) and returns its slot. If the table is full, the least recently
  // used flow is evicted first and *evicted is set: the caller must reset that slot's state.
  uint32_t insert(const FlowKey& key, uint64_t hash, uint64_t now, bool* evicted);

  // Removes the flow in `slot`.
  void remove(uint32_t slot);

  // Expires (and returns the number of) flows idle since before now - idle_ticks, oldest first,
  // calling on_expire(slot) before each slot is freed. At most `budget` list entries are visited:
  // bounded work per call keeps the burst loop smooth.
  template <typename F>
  uint32_t expire(uint64_t now, uint32_t budget, F&& on_expire) {
    uint32_t n = 0;
    for (uint32_t visited = 0; visited < budget && lru_head_ != kNone; ++visited) {
      uint32_t slot = lru_head_;
      Entry& e = entries_[slot];
      if (now - e.last_used > idle_ticks_) {
        on_expire(slot);
        remove_slot(slot);
        ++n;
      } else if (e.last_used > e.lru_stamp) {
        // Used since it last moved (lazy LRU): move it now and look at the next.
        lru_unlink(slot);
        lru_push_tail(slot);
        e.lru_stamp = now;
      } else {
        break;  // the least recently used flow is not idle yet
      }
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
    uint64_t lru_stamp;  // when it last moved in the LRU list; the list is ordered by it
    uint32_t prev;       // LRU list, head = least recently used
    uint32_t next;
    uint32_t bucket;  // index in buckets_ that points here
    uint32_t pad_;
  };
  // The upper half of the hash beside the slot, so probing rarely touches a foreign entry.
  struct Bucket {
    uint32_t slot;  // kNone: empty
    uint32_t tag;
  };

  FlowTable(uint32_t capacity, uint32_t bucket_mask, uint64_t idle_ticks, uint64_t lru_refresh_ticks);
  uint32_t find_bucket(const FlowKey& key, uint64_t hash) const;
  void lru_unlink(uint32_t slot);
  void lru_push_tail(uint32_t slot);
  void remove_slot(uint32_t slot);

  uint32_t capacity_;
  uint32_t bucket_mask_;
  uint64_t idle_ticks_;
  uint64_t lru_refresh_ticks_;
  uint32_t size_ = 0;
  uint32_t free_head_ = kNone;  // free slots chained through Entry::next
  uint32_t lru_head_ = kNone;
  uint32_t lru_tail_ = kNone;
  std::unique_ptr<Entry[]> entries_;
  std::unique_ptr<Bucket[]> buckets_;  // open addressing, linear probing
};

}  // namespace imf::dp::flow
