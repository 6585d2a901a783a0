// A bounded per-lcore flow table: canonical 5-tuple + VLAN -> slot index, with idle aging and
// eviction per flow class (a connection's stage: half-open, closing, established).
//
// Owned and used by one lcore only: no locking, no allocation after create(). Per-flow
// application state lives in arrays the caller indexes by slot, so this module knows nothing of
// protocols or matching.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

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

// Flows are kept in classes, each an LRU list with its own idle time, so a connection's stage
// decides how long it may sit idle and in which order flows are evicted when the table is full
// (the owner moves a flow between classes as its connection progresses).
struct FlowClass {
  uint64_t idle_ticks = 0;        // a flow of this class unused this long expires
  uint32_t max_flows = 0;         // inserting beyond this evicts the class's oldest flow (0: no cap)
  uint64_t evict_idle_ticks = 0;  // when the table is full, a flow of this class gives way to a new
                                  // one only if unused this long (0: always)
};

class FlowTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr uint8_t kMaxClasses = 16;

  // capacity: maximum flows (>= 2). classes: 1..kMaxClasses, in the order they give way when the
  // table is full (class 0 first). lru_refresh_ticks: a used flow moves to the young end of its
  // list at most once per this period (0: on every use). A lookup then rarely writes to other
  // flows' entries; aging and eviction stay exact to within the period.
  static Result<std::unique_ptr<FlowTable>> create(uint32_t capacity, const std::vector<FlowClass>& classes,
                                                   uint64_t lru_refresh_ticks = 0);
  // One class: every flow idles out after idle_ticks; the least recently used gives way.
  static Result<std::unique_ptr<FlowTable>> create(uint32_t capacity, uint64_t idle_ticks,
                                                   uint64_t lru_refresh_ticks = 0) {
    return create(capacity, std::vector<FlowClass>{FlowClass{idle_ticks, 0, 0}}, lru_refresh_ticks);
  }

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

  // Inserts `key` (not present) into class `cls` and returns its slot. When the class is at its
  // cap, its oldest flow is evicted; when the table is full, the first class (in order) whose
  // least recently used flow has been idle long enough gives it up. Either way *evicted is set and
  // the returned slot held the evicted flow: the caller must reset its state. Returns kNone, with
  // nothing changed, when every flow is too recently used to give way.
  uint32_t insert(const FlowKey& key, uint64_t hash, uint64_t now, uint8_t cls, bool* evicted);
  uint32_t insert(const FlowKey& key, uint64_t hash, uint64_t now, bool* evicted) {
    return insert(key, hash, now, 0, evicted);
  }

  // Moves the flow in `slot` to class `cls`, at the young end of its list.
  void set_class(uint32_t slot, uint8_t cls);
  uint8_t flow_class(uint32_t slot) const { return entries_[slot].cls; }
  uint32_t class_size(uint8_t cls) const { return count_[cls]; }

  // Removes the flow in `slot`.
  void remove(uint32_t slot);

  // Expires (and returns the number of) flows idle longer than their class allows, oldest first
  // in each class, calling on_expire(slot) before each slot is freed. At most `budget` list
  // entries are visited: bounded work per call keeps the burst loop smooth.
  template <typename F>
  uint32_t expire(uint64_t now, uint32_t budget, F&& on_expire) {
    uint32_t n = 0;
    for (uint8_t c = 0; c < n_classes_ && budget; ++c) {
      while (budget && lru_head_[c] != kNone) {
        --budget;
        uint32_t slot = lru_head_[c];
        Entry& e = entries_[slot];
        if (now - e.last_used > classes_[c].idle_ticks) {
          on_expire(slot);
          remove_slot(slot);
          ++n;
        } else if (!settle_head(slot, now)) {
          break;  // the least recently used flow of this class is not idle yet
        }
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
    uint64_t lru_stamp;  // when it last moved in its class's list; the list is ordered by it
    uint32_t prev;       // LRU list of its class, head = least recently used
    uint32_t next;
    uint32_t bucket;  // index in buckets_ that points here
    uint8_t cls;
    uint8_t pad_[3];
  };
  // The upper half of the hash beside the slot, so probing rarely touches a foreign entry.
  struct Bucket {
    uint32_t slot;  // kNone: empty
    uint32_t tag;
  };

  FlowTable(uint32_t capacity, uint32_t bucket_mask, const std::vector<FlowClass>& classes, uint64_t lru_refresh_ticks);
  uint32_t find_bucket(const FlowKey& key, uint64_t hash) const;
  // A list head used since it last moved (lazy LRU) moves to its tail: returns true. Else false.
  bool settle_head(uint32_t slot, uint64_t now) {
    Entry& e = entries_[slot];
    if (e.last_used <= e.lru_stamp) return false;
    lru_unlink(slot);
    lru_push_tail(slot);
    e.lru_stamp = now;
    return true;
  }
  // The flow that gives way for a new one in class `cls`, or kNone.
  uint32_t victim(uint8_t cls, uint64_t now);
  // The least recently used flow of class c after settling a few lazily placed heads.
  uint32_t oldest(uint8_t c, uint64_t now);
  void lru_unlink(uint32_t slot);
  void lru_push_tail(uint32_t slot);
  void remove_slot(uint32_t slot);

  uint32_t capacity_;
  uint32_t bucket_mask_;
  uint64_t lru_refresh_ticks_;
  uint32_t size_ = 0;
  uint32_t free_head_ = kNone;  // free slots chained through Entry::next
  uint8_t n_classes_;
  FlowClass classes_[kMaxClasses];
  uint32_t lru_head_[kMaxClasses];
  uint32_t lru_tail_[kMaxClasses];
  uint32_t count_[kMaxClasses] = {};
  std::unique_ptr<Entry[]> entries_;
  std::unique_ptr<Bucket[]> buckets_;  // open addressing, linear probing
};

}  // namespace imf::dp::flow
