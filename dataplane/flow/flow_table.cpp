#include "flow/flow_table.h"

#include <cstring>

namespace imf::dp::flow {

namespace {

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

FlowKey make_flow_key(const decode::PacketMeta& m, bool* from_a) {
  FlowKey k;
  std::memset(&k, 0, sizeof(k));  // padding-free, but keep hashing independent of garbage
  bool src_low;
  if (m.ip_version == 4) {
    // Byte order decides like memcmp would; one load and compare per address.
    uint32_t src = __builtin_bswap32(load_u32(m.src_ip));
    uint32_t dst = __builtin_bswap32(load_u32(m.dst_ip));
    src_low = src < dst || (src == dst && m.src_port <= m.dst_port);
    std::memcpy(k.ip_a, src_low ? m.src_ip : m.dst_ip, 4);
    std::memcpy(k.ip_b, src_low ? m.dst_ip : m.src_ip, 4);
  } else {
    int c = std::memcmp(m.src_ip, m.dst_ip, 16);
    src_low = c < 0 || (c == 0 && m.src_port <= m.dst_port);
    std::memcpy(k.ip_a, src_low ? m.src_ip : m.dst_ip, 16);
    std::memcpy(k.ip_b, src_low ? m.dst_ip : m.src_ip, 16);
  }
  k.port_a = src_low ? m.src_port : m.dst_port;
  k.port_b = src_low ? m.dst_port : m.src_port;
  k.vlan = m.has_vlan ? (m.vlan_tci & 0x0fff) : 0;
  k.ip_version = m.ip_version;
  k.proto = m.l4_proto;
  *from_a = src_low;
  return k;
}

uint64_t hash_flow_key(const FlowKey& k) {
  // 64-bit multiply-xorshift over the five words of the key; good spread, ~15 cycles.
  uint64_t w[5];
  std::memcpy(w, &k, sizeof(w));
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (uint64_t x : w) {
    h ^= x;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  return h;
}

Result<std::unique_ptr<FlowTable>> FlowTable::create(uint32_t capacity, const std::vector<FlowClass>& classes,
                                                     uint64_t lru_refresh_ticks) {
  if (capacity < 2 || capacity > (1u << 30)) return make_error("flow capacity must be 2..2^30");
  if (classes.empty() || classes.size() > kMaxClasses) return make_error("flow classes must be 1..16");
  uint32_t buckets = 1;
  while (buckets < capacity * 2u) buckets <<= 1;  // load factor <= 0.5 keeps probes short
  return std::unique_ptr<FlowTable>(new FlowTable(capacity, buckets - 1, classes, lru_refresh_ticks));
}

FlowTable::FlowTable(uint32_t capacity, uint32_t bucket_mask, const std::vector<FlowClass>& classes,
                     uint64_t lru_refresh_ticks)
    : capacity_(capacity),
      bucket_mask_(bucket_mask),
      lru_refresh_ticks_(lru_refresh_ticks),
      n_classes_(static_cast<uint8_t>(classes.size())),
      entries_(new Entry[capacity]),
      buckets_(new Bucket[bucket_mask + 1]) {
  for (uint8_t c = 0; c < n_classes_; ++c) {
    classes_[c] = classes[c];
    lru_head_[c] = lru_tail_[c] = kNone;
  }
  for (uint32_t i = 0; i <= bucket_mask_; ++i) buckets_[i] = {kNone, 0};
  for (uint32_t i = 0; i < capacity_; ++i) entries_[i].next = i + 1 < capacity_ ? i + 1 : kNone;
  free_head_ = 0;
}

size_t FlowTable::memory_bytes() const {
  return sizeof(*this) + sizeof(Entry) * capacity_ + sizeof(Bucket) * (bucket_mask_ + 1ull);
}

uint32_t FlowTable::find_bucket(const FlowKey& key, uint64_t hash) const {
  auto tag = static_cast<uint32_t>(hash >> 32);
  for (uint32_t b = static_cast<uint32_t>(hash) & bucket_mask_;; b = (b + 1) & bucket_mask_) {
    const Bucket& bk = buckets_[b];
    if (bk.slot == kNone) return kNone;
    if (bk.tag == tag && entries_[bk.slot].hash == hash && entries_[bk.slot].key == key) return b;
  }
}

uint32_t FlowTable::peek(uint64_t hash) const {
  auto tag = static_cast<uint32_t>(hash >> 32);
  for (uint32_t b = static_cast<uint32_t>(hash) & bucket_mask_;; b = (b + 1) & bucket_mask_) {
    const Bucket& bk = buckets_[b];
    if (bk.slot == kNone || bk.tag == tag) return bk.slot;
  }
}

uint32_t FlowTable::lookup(const FlowKey& key, uint64_t hash, uint64_t now) {
  uint32_t b = find_bucket(key, hash);
  if (b == kNone) return kNone;
  uint32_t slot = buckets_[b].slot;
  Entry& e = entries_[slot];
  e.last_used = now;
  // Moving in the list writes to two neighbours' entries (likely cache misses): do it at most
  // once per refresh period. The list stays ordered by lru_stamp, and last_used is never more
  // than the period past it, which bounds how late expire() and eviction can be.
  if (now - e.lru_stamp >= lru_refresh_ticks_) {
    if (lru_tail_[e.cls] != slot) {
      lru_unlink(slot);
      lru_push_tail(slot);
    }
    e.lru_stamp = now;
  }
  return slot;
}

uint32_t FlowTable::oldest(uint8_t c, uint64_t now) {
  // A few heads may have been used since they last moved; settle them so the answer is the flow
  // really least recently used (bounded: each settle moves one flow to the tail).
  for (int i = 0; i < 8 && lru_head_[c] != kNone && settle_head(lru_head_[c], now); ++i) {
  }
  return lru_head_[c];
}

uint32_t FlowTable::victim(uint8_t cls, uint64_t now) {
  if (classes_[cls].max_flows && count_[cls] >= classes_[cls].max_flows) return oldest(cls, now);
  if (free_head_ != kNone) return kNone;
  for (uint8_t c = 0; c < n_classes_; ++c) {
    uint32_t slot = oldest(c, now);
    if (slot != kNone && now - entries_[slot].last_used >= classes_[c].evict_idle_ticks) return slot;
  }
  return kNone;
}

uint32_t FlowTable::insert(const FlowKey& key, uint64_t hash, uint64_t now, uint8_t cls, bool* evicted) {
  *evicted = false;
  uint32_t gone = victim(cls, now);
  if (gone != kNone) {
    remove_slot(gone);
    *evicted = true;
  } else if (free_head_ == kNone) {
    return kNone;
  }
  uint32_t slot = free_head_;
  free_head_ = entries_[slot].next;
  Entry& e = entries_[slot];
  e.key = key;
  e.hash = hash;
  e.last_used = now;
  e.lru_stamp = now;
  e.cls = cls;
  uint32_t b = static_cast<uint32_t>(hash) & bucket_mask_;
  while (buckets_[b].slot != kNone) b = (b + 1) & bucket_mask_;
  buckets_[b] = {slot, static_cast<uint32_t>(hash >> 32)};
  e.bucket = b;
  lru_push_tail(slot);
  ++size_;
  return slot;
}

void FlowTable::set_class(uint32_t slot, uint8_t cls) {
  Entry& e = entries_[slot];
  if (e.cls == cls) return;
  lru_unlink(slot);
  e.cls = cls;
  lru_push_tail(slot);
}

void FlowTable::remove(uint32_t slot) { remove_slot(slot); }

void FlowTable::remove_slot(uint32_t slot) {
  // Backward-shift deletion keeps every probe chain unbroken without tombstones.
  uint32_t hole = entries_[slot].bucket;
  for (uint32_t b = (hole + 1) & bucket_mask_; buckets_[b].slot != kNone; b = (b + 1) & bucket_mask_) {
    uint32_t s = buckets_[b].slot;
    uint32_t home = static_cast<uint32_t>(entries_[s].hash) & bucket_mask_;
    // Move s into the hole if its home is not cyclically within (hole, b].
    if (((b - home) & bucket_mask_) >= ((b - hole) & bucket_mask_)) {
      buckets_[hole] = buckets_[b];
      entries_[s].bucket = hole;
      hole = b;
    }
  }
  buckets_[hole] = {kNone, 0};
  lru_unlink(slot);
  entries_[slot].next = free_head_;
  free_head_ = slot;
  --size_;
}

void FlowTable::lru_unlink(uint32_t slot) {
  Entry& e = entries_[slot];
  if (e.prev != kNone)
    entries_[e.prev].next = e.next;
  else
    lru_head_[e.cls] = e.next;
  if (e.next != kNone)
    entries_[e.next].prev = e.prev;
  else
    lru_tail_[e.cls] = e.prev;
  --count_[e.cls];
}

void FlowTable::lru_push_tail(uint32_t slot) {
  Entry& e = entries_[slot];
  uint32_t& tail = lru_tail_[e.cls];
  e.prev = tail;
  e.next = kNone;
  if (tail != kNone)
    entries_[tail].next = slot;
  else
    lru_head_[e.cls] = slot;
  tail = slot;
  ++count_[e.cls];
}

}  // namespace imf::dp::flow
