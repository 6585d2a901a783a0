#include "flow/flow_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

namespace imf::dp::flow {
namespace {

using decode::PacketMeta;

PacketMeta meta4(std::array<uint8_t, 4> src, uint16_t sport, std::array<uint8_t, 4> dst, uint16_t dport,
                 uint8_t proto = decode::kProtoTcp) {
  PacketMeta m;
  m.ip_version = 4;
  m.l4_proto = proto;
  std::memcpy(m.src_ip, src.data(), 4);
  std::memcpy(m.dst_ip, dst.data(), 4);
  m.src_port = sport;
  m.dst_port = dport;
  return m;
}

PacketMeta reversed(const PacketMeta& m) {
  PacketMeta r = m;
  std::memcpy(r.src_ip, m.dst_ip, 16);
  std::memcpy(r.dst_ip, m.src_ip, 16);
  r.src_port = m.dst_port;
  r.dst_port = m.src_port;
  return r;
}

// A distinct IPv4/TCP key per id.
FlowKey key_for(uint32_t id) {
  PacketMeta m = meta4({10, static_cast<uint8_t>(id >> 16), static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id)},
                       static_cast<uint16_t>(1024 + id % 50000), {192, 168, 0, 1}, 1883);
  bool from_a;
  return make_flow_key(m, &from_a);
}

std::unique_ptr<FlowTable> make_table(uint32_t capacity, uint64_t idle_ticks) {
  auto t = FlowTable::create(capacity, idle_ticks);
  EXPECT_TRUE(t.ok()) << t.error();
  return std::move(t.value());
}

// ---- Keys ---------------------------------------------------------------------------------------

TEST(FlowKey, BothDirectionsShareOneKey) {
  const PacketMeta cases[] = {
      meta4({10, 0, 0, 1}, 40000, {10, 0, 0, 2}, 1883),
      meta4({10, 0, 0, 2}, 1883, {10, 0, 0, 1}, 40000),
      meta4({10, 0, 0, 9}, 1, {10, 0, 0, 9}, 2),  // same address: ports decide
      meta4({192, 168, 1, 1}, 5000, {10, 0, 0, 1}, 5000, decode::kProtoUdp),
  };
  for (const PacketMeta& m : cases) {
    bool fwd_from_a = false;
    bool rev_from_a = false;
    FlowKey fwd = make_flow_key(m, &fwd_from_a);
    FlowKey rev = make_flow_key(reversed(m), &rev_from_a);
    EXPECT_TRUE(fwd == rev);
    EXPECT_EQ(hash_flow_key(fwd), hash_flow_key(rev));
    EXPECT_NE(fwd_from_a, rev_from_a);
    EXPECT_EQ(fwd.proto, m.l4_proto);
    EXPECT_EQ(fwd.ip_version, 4);
  }
}

TEST(FlowKey, LowerEndpointIsA) {
  bool from_a = false;
  FlowKey k = make_flow_key(meta4({10, 0, 0, 2}, 1883, {10, 0, 0, 1}, 40000), &from_a);
  EXPECT_FALSE(from_a);
  const uint8_t a[16] = {10, 0, 0, 1};
  const uint8_t b[16] = {10, 0, 0, 2};
  EXPECT_EQ(0, std::memcmp(k.ip_a, a, 16));
  EXPECT_EQ(0, std::memcmp(k.ip_b, b, 16));
  EXPECT_EQ(k.port_a, 40000);
  EXPECT_EQ(k.port_b, 1883);
}

TEST(FlowKey, DistinguishesVlanProtoPortsAndVersion) {
  bool from_a;
  PacketMeta base = meta4({10, 0, 0, 1}, 40000, {10, 0, 0, 2}, 1883);
  FlowKey k0 = make_flow_key(base, &from_a);

  PacketMeta tagged = base;
  tagged.has_vlan = true;
  tagged.vlan_tci = 100;
  FlowKey k1 = make_flow_key(tagged, &from_a);
  EXPECT_FALSE(k0 == k1);
  EXPECT_EQ(k1.vlan, 100);

  PacketMeta other_vlan = tagged;
  other_vlan.vlan_tci = 101;
  EXPECT_FALSE(k1 == make_flow_key(other_vlan, &from_a));

  // Priority bits are not part of the VLAN id.
  PacketMeta prio = tagged;
  prio.vlan_tci = 0xe000 | 100;
  EXPECT_TRUE(k1 == make_flow_key(prio, &from_a));

  PacketMeta udp = base;
  udp.l4_proto = decode::kProtoUdp;
  EXPECT_FALSE(k0 == make_flow_key(udp, &from_a));

  PacketMeta port = base;
  port.src_port = 40001;
  EXPECT_FALSE(k0 == make_flow_key(port, &from_a));

  // IPv6 with the same leading address bytes is another flow.
  PacketMeta v6 = base;
  v6.ip_version = 6;
  FlowKey k6 = make_flow_key(v6, &from_a);
  EXPECT_FALSE(k0 == k6);
  EXPECT_EQ(k6.ip_version, 6);
}

TEST(FlowKey, Ipv6ComparesAllSixteenBytes) {
  PacketMeta m;
  m.ip_version = 6;
  m.l4_proto = decode::kProtoTcp;
  for (int i = 0; i < 16; ++i) {
    m.src_ip[i] = 0x20;
    m.dst_ip[i] = 0x20;
  }
  m.src_ip[15] = 2;  // differs only in the last byte
  m.dst_ip[15] = 1;
  m.src_port = 1;
  m.dst_port = 2;
  bool fwd_from_a;
  bool rev_from_a;
  FlowKey fwd = make_flow_key(m, &fwd_from_a);
  FlowKey rev = make_flow_key(reversed(m), &rev_from_a);
  EXPECT_TRUE(fwd == rev);
  EXPECT_FALSE(fwd_from_a);
  EXPECT_TRUE(rev_from_a);
  EXPECT_EQ(fwd.ip_a[15], 1);
  EXPECT_EQ(fwd.port_a, 2);
}

TEST(FlowKey, Ipv4KeyIgnoresBytesBeyondTheAddress) {
  PacketMeta m = meta4({10, 0, 0, 1}, 1, {10, 0, 0, 2}, 2);
  PacketMeta dirty = m;
  std::memset(dirty.src_ip + 4, 0xee, 12);
  std::memset(dirty.dst_ip + 4, 0x77, 12);
  bool from_a;
  FlowKey a = make_flow_key(m, &from_a);
  FlowKey b = make_flow_key(dirty, &from_a);
  EXPECT_TRUE(a == b);
  EXPECT_EQ(hash_flow_key(a), hash_flow_key(b));
}

// ---- Table basics -------------------------------------------------------------------------------

TEST(FlowTable, CreateRejectsBadCapacity) {
  EXPECT_FALSE(FlowTable::create(0, 10).ok());
  EXPECT_FALSE(FlowTable::create(1, 10).ok());
  EXPECT_FALSE(FlowTable::create((1u << 30) + 1, 10).ok());
  auto t = FlowTable::create(2, 10);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t.value()->capacity(), 2u);
  EXPECT_EQ(t.value()->size(), 0u);
  EXPECT_GT(t.value()->memory_bytes(), 0u);
}

TEST(FlowTable, InsertLookupRemove) {
  auto t = make_table(8, 100);
  FlowKey k1 = key_for(1);
  FlowKey k2 = key_for(2);
  uint64_t h1 = hash_flow_key(k1);
  uint64_t h2 = hash_flow_key(k2);
  EXPECT_EQ(t->lookup(k1, h1, 0), FlowTable::kNone);

  bool evicted = true;
  uint32_t s1 = t->insert(k1, h1, 1, &evicted);
  EXPECT_FALSE(evicted);
  uint32_t s2 = t->insert(k2, h2, 2, &evicted);
  EXPECT_FALSE(evicted);
  EXPECT_NE(s1, s2);
  EXPECT_LT(s1, 8u);
  EXPECT_LT(s2, 8u);
  EXPECT_EQ(t->size(), 2u);
  EXPECT_EQ(t->lookup(k1, h1, 3), s1);
  EXPECT_EQ(t->lookup(k2, h2, 3), s2);
  EXPECT_TRUE(t->key(s1) == k1);
  EXPECT_TRUE(t->key(s2) == k2);

  t->remove(s1);
  EXPECT_EQ(t->size(), 1u);
  EXPECT_EQ(t->lookup(k1, h1, 4), FlowTable::kNone);
  EXPECT_EQ(t->lookup(k2, h2, 4), s2);

  // Same hash, different key: not found.
  EXPECT_EQ(t->lookup(k1, h2, 5), FlowTable::kNone);
  // Same key, different hash: not found either (the caller always passes hash_flow_key).
  EXPECT_EQ(t->lookup(k2, h2 ^ 0x100000000ull, 5), FlowTable::kNone);

  uint32_t s1b = t->insert(k1, h1, 6, &evicted);
  EXPECT_FALSE(evicted);
  EXPECT_EQ(t->lookup(k1, h1, 7), s1b);
  EXPECT_EQ(t->size(), 2u);
}

TEST(FlowTable, FullTableEvictsLeastRecentlyUsed) {
  constexpr uint32_t kCap = 4;
  auto t = make_table(kCap, 1000);
  std::vector<uint32_t> slot(kCap + 2);
  bool evicted = true;
  for (uint32_t i = 0; i < kCap; ++i) {
    slot[i] = t->insert(key_for(i), hash_flow_key(key_for(i)), 10 + i, &evicted);
    EXPECT_FALSE(evicted);
  }
  EXPECT_EQ(t->size(), kCap);
  // Touch 0: now 1 is the least recently used.
  EXPECT_EQ(t->lookup(key_for(0), hash_flow_key(key_for(0)), 20), slot[0]);

  slot[4] = t->insert(key_for(4), hash_flow_key(key_for(4)), 21, &evicted);
  EXPECT_TRUE(evicted);
  EXPECT_EQ(slot[4], slot[1]);  // the evicted flow's slot is reused
  EXPECT_EQ(t->size(), kCap);
  EXPECT_EQ(t->lookup(key_for(1), hash_flow_key(key_for(1)), 22), FlowTable::kNone);
  EXPECT_TRUE(t->key(slot[4]) == key_for(4));

  // Order is now 2, 3, 0, 4 (a failed lookup changes nothing): 2 goes next.
  slot[5] = t->insert(key_for(5), hash_flow_key(key_for(5)), 23, &evicted);
  EXPECT_TRUE(evicted);
  EXPECT_EQ(slot[5], slot[2]);
  for (uint32_t i : {0u, 3u, 4u, 5u}) {
    EXPECT_EQ(t->lookup(key_for(i), hash_flow_key(key_for(i)), 24), slot[i]) << i;
  }
  EXPECT_EQ(t->lookup(key_for(2), hash_flow_key(key_for(2)), 25), FlowTable::kNone);
}

TEST(FlowTable, RemovedSlotIsReusedWithoutEviction) {
  auto t = make_table(2, 10);
  bool evicted;
  uint32_t a = t->insert(key_for(1), hash_flow_key(key_for(1)), 0, &evicted);
  t->insert(key_for(2), hash_flow_key(key_for(2)), 0, &evicted);
  t->remove(a);
  uint32_t c = t->insert(key_for(3), hash_flow_key(key_for(3)), 1, &evicted);
  EXPECT_FALSE(evicted);
  EXPECT_EQ(c, a);
  EXPECT_NE(t->lookup(key_for(2), hash_flow_key(key_for(2)), 2), FlowTable::kNone);
}

// ---- Expiry -------------------------------------------------------------------------------------

TEST(FlowTable, ExpireRemovesOnlyIdleFlowsOldestFirstWithinBudget) {
  constexpr uint64_t kIdle = 100;
  auto t = make_table(16, kIdle);
  bool evicted;
  std::vector<uint32_t> slots;
  // Flows 0..5 last used at 10, 20, ..., 60.
  for (uint32_t i = 0; i < 6; ++i)
    slots.push_back(t->insert(key_for(i), hash_flow_key(key_for(i)), uint64_t{10} * (i + 1), &evicted));
  // Flow 0 used again at 100: it is now the most recent.
  ASSERT_EQ(t->lookup(key_for(0), hash_flow_key(key_for(0)), 100), slots[0]);

  std::vector<uint32_t> expired;
  uint32_t size_before = 0;
  auto record = [&](uint32_t slot) {
    // Called before the slot is freed: the flow is still counted.
    EXPECT_EQ(t->size(), size_before);
    --size_before;
    expired.push_back(slot);
  };
  auto expire = [&](uint64_t now, uint32_t budget) {
    size_before = t->size();
    return t->expire(now, budget, record);
  };

  // At 125 only flows last used before 25 are idle > 100: flow 1 (20); flow 0 was refreshed.
  EXPECT_EQ(expire(125, 10), 1u);
  EXPECT_EQ(expired, (std::vector<uint32_t>{slots[1]}));
  // Idle exactly idle_ticks is not expired yet: flow 2 (30) at 130 stays.
  EXPECT_EQ(expire(130, 10), 0u);

  // At 180, flows 2..5 (30..60) are idle > 100 but flow 0 (100) is not; budget 2 first.
  expired.clear();
  EXPECT_EQ(expire(180, 2), 2u);
  EXPECT_EQ(expired, (std::vector<uint32_t>{slots[2], slots[3]}));
  EXPECT_EQ(expire(180, 10), 2u);
  EXPECT_EQ(expired, (std::vector<uint32_t>{slots[2], slots[3], slots[4], slots[5]}));
  EXPECT_EQ(t->size(), 1u);
  EXPECT_EQ(t->lookup(key_for(0), hash_flow_key(key_for(0)), 180), slots[0]);
  for (uint32_t i = 1; i < 6; ++i) EXPECT_EQ(t->lookup(key_for(i), hash_flow_key(key_for(i)), 180), FlowTable::kNone);

  // Budget 0 does nothing; an empty table expires nothing.
  EXPECT_EQ(expire(10000, 0), 0u);
  EXPECT_EQ(expire(10000, 5), 1u);
  EXPECT_EQ(t->size(), 0u);
  EXPECT_EQ(expire(20000, 5), 0u);
}

// ---- Churn against a model ------------------------------------------------------------------------

struct ModelEntry {
  uint32_t slot;
  uint64_t last_used;
};

// Hashes that collide on purpose: a few home buckets, some at the top of the bucket array so
// probe chains wrap around to bucket 0.
uint64_t colliding_hash(uint32_t id, uint32_t mode) {
  switch (mode) {
    case 0: return hash_flow_key(key_for(id));
    case 1: return id % 3;                                         // three home buckets
    case 2: return (uint64_t{id} << 32) | (0xffffffffu - id % 4);  // top buckets, wraps
    default: return (uint64_t{id} << 32) | uint64_t{id % 5} * 7;
  }
}

void run_churn(uint32_t capacity, uint32_t key_space, uint32_t mode, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "capacity " << capacity << " keys " << key_space << " mode " << mode);
  constexpr uint64_t kIdle = 50;
  auto t = make_table(capacity, kIdle);
  std::unordered_map<uint32_t, ModelEntry> model;  // id -> entry
  std::mt19937 rng(seed);
  uint64_t now = 1;

  auto model_lru = [&]() {
    uint32_t best = UINT32_MAX;
    uint64_t best_t = UINT64_MAX;
    for (const auto& [id, e] : model) {
      if (e.last_used < best_t) {
        best_t = e.last_used;
        best = id;
      }
    }
    return best;
  };
  // Looks every model key up in least-recently-used order, which keeps the LRU order intact.
  auto verify_all = [&]() {
    std::vector<std::pair<uint64_t, uint32_t>> order;
    order.reserve(model.size());
    for (const auto& [id, e] : model) order.push_back({e.last_used, id});
    std::sort(order.begin(), order.end());
    for (const auto& [ts, id] : order) {
      ++now;
      uint32_t slot = t->lookup(key_for(id), colliding_hash(id, mode), now);
      ASSERT_EQ(slot, model[id].slot) << "key " << id << " lost";
      model[id].last_used = now;
    }
    ASSERT_EQ(t->size(), model.size());
  };

  for (int op = 0; op < 6000; ++op) {
    ++now;
    uint32_t id = rng() % key_space;
    uint64_t h = colliding_hash(id, mode);
    auto it = model.find(id);
    switch (rng() % 8) {
      case 0:
      case 1:
      case 2: {  // insert (or touch when present)
        if (it != model.end()) {
          ASSERT_EQ(t->lookup(key_for(id), h, now), it->second.slot);
          it->second.last_used = now;
          break;
        }
        uint32_t victim = model.size() == capacity ? model_lru() : UINT32_MAX;
        bool evicted = false;
        uint32_t slot = t->insert(key_for(id), h, now, &evicted);
        ASSERT_LT(slot, capacity);
        ASSERT_EQ(evicted, victim != UINT32_MAX);
        if (evicted) {
          ASSERT_EQ(slot, model[victim].slot) << "evicted the wrong flow";
          model.erase(victim);
        }
        for (const auto& [other, e] : model) ASSERT_NE(e.slot, slot) << "slot handed out twice";
        model[id] = {slot, now};
        break;
      }
      case 3:
      case 4: {  // remove
        if (it == model.end()) {
          ASSERT_EQ(t->lookup(key_for(id), h, now), FlowTable::kNone);
          break;
        }
        t->remove(it->second.slot);
        model.erase(it);
        ASSERT_EQ(t->lookup(key_for(id), h, now), FlowTable::kNone);
        break;
      }
      case 5:
      case 6: {  // lookup
        uint32_t slot = t->lookup(key_for(id), h, now);
        if (it == model.end()) {
          ASSERT_EQ(slot, FlowTable::kNone) << "removed key " << id << " still found";
        } else {
          ASSERT_EQ(slot, it->second.slot);
          ASSERT_TRUE(t->key(slot) == key_for(id));
          it->second.last_used = now;
        }
        break;
      }
      default: {  // expire, sometimes after a jump of the clock
        if (rng() % 4 == 0) now += rng() % (2 * kIdle);
        uint32_t budget = rng() % 4;
        std::vector<std::pair<uint64_t, uint32_t>> order;
        order.reserve(model.size());
        for (const auto& [mid, e] : model) order.push_back({e.last_used, mid});
        std::sort(order.begin(), order.end());
        std::vector<uint32_t> want;
        for (const auto& [ts, mid] : order) {
          if (want.size() == budget || now - ts <= kIdle) break;
          want.push_back(model[mid].slot);
        }
        std::vector<uint32_t> got;
        uint32_t n = t->expire(now, budget, [&](uint32_t s) { got.push_back(s); });
        ASSERT_EQ(n, got.size());
        ASSERT_EQ(got, want);
        for (const auto& [ts, mid] : order) {
          if (std::find(want.begin(), want.end(), model[mid].slot) != want.end()) model.erase(mid);
        }
        break;
      }
    }
    ASSERT_EQ(t->size(), model.size());
    if (op % 500 == 499) {
      verify_all();
      if (testing::Test::HasFatalFailure()) return;
    }
  }
  verify_all();
}

// With a refresh period the list moves lazily: a lookup within the period leaves a flow in place,
// and eviction settles such heads first, so the flow that gives way is the one really least
// recently used.
TEST(FlowTable, LazyLruMovesAFlowAtMostOncePerRefreshPeriod) {
  constexpr uint64_t kIdle = 1000, kRefresh = 50;
  auto made = FlowTable::create(3, kIdle, kRefresh);
  ASSERT_TRUE(made.ok());
  FlowTable& t = *made.value();
  bool evicted;
  auto h = [](uint32_t i) { return hash_flow_key(key_for(i)); };
  t.insert(key_for(0), h(0), 0, &evicted);
  uint32_t s1 = t.insert(key_for(1), h(1), 10, &evicted);
  uint32_t s2 = t.insert(key_for(2), h(2), 20, &evicted);
  // Flow 0 used at 30 (within the period of its insertion): it keeps its place in the list, but
  // eviction sees the use and takes flow 1, the least recently used.
  EXPECT_NE(t.lookup(key_for(0), h(0), 30), FlowTable::kNone);
  uint32_t s3 = t.insert(key_for(3), h(3), 40, &evicted);
  EXPECT_TRUE(evicted);
  EXPECT_EQ(s3, s1);
  // Flow 2 used at 70 (50 after insertion: the period is over) moves; flow 0 (last used at 30)
  // goes next.
  EXPECT_EQ(t.lookup(key_for(2), h(2), 70), s2);
  t.insert(key_for(4), h(4), 80, &evicted);
  EXPECT_TRUE(evicted);
  EXPECT_EQ(t.lookup(key_for(0), h(0), 81), FlowTable::kNone);
  EXPECT_EQ(t.lookup(key_for(2), h(2), 82), s2);
}

TEST(FlowTable, LazyLruAgingSkipsPastAFlowUsedSinceItMoved) {
  constexpr uint64_t kIdle = 100, kRefresh = 50;
  auto made = FlowTable::create(8, kIdle, kRefresh);
  ASSERT_TRUE(made.ok());
  FlowTable& t = *made.value();
  bool evicted;
  auto h = [](uint32_t i) { return hash_flow_key(key_for(i)); };
  uint32_t s0 = t.insert(key_for(0), h(0), 0, &evicted);
  uint32_t s1 = t.insert(key_for(1), h(1), 10, &evicted);
  EXPECT_EQ(t.lookup(key_for(0), h(0), 40), s0);  // within the period: flow 0 stays at the head
  // At 115 flow 1 (10) is idle, flow 0 (40) is not: aging moves flow 0 aside and expires flow 1.
  std::vector<uint32_t> expired;
  EXPECT_EQ(t.expire(115, 8, [&](uint32_t s) { expired.push_back(s); }), 1u);
  EXPECT_EQ(expired, (std::vector<uint32_t>{s1}));
  EXPECT_EQ(t.lookup(key_for(0), h(0), 116), s0);
  EXPECT_EQ(t.expire(200, 8, [](uint32_t) {}), 0u);  // used at 116: not idle at 200
  EXPECT_EQ(t.expire(217, 8, [](uint32_t) {}), 1u);
  EXPECT_EQ(t.size(), 0u);
}

TEST(FlowTable, ChurnMatchesModel) {
  uint32_t seed = 1;
  for (uint32_t mode = 0; mode < 4; ++mode) {
    run_churn(2, 5, mode, seed++);
    run_churn(8, 20, mode, seed++);
    run_churn(64, 200, mode, seed++);
    run_churn(100, 120, mode, seed++);  // mostly full: evictions and long probe chains
    if (HasFatalFailure()) return;
  }
}

// Deterministic backward-shift cases: remove each member of a wrapped collision cluster in turn.
TEST(FlowTable, RemovingFromWrappedClusterKeepsOthersFindable) {
  constexpr uint32_t kCap = 8;  // 16 buckets
  for (uint32_t victim = 0; victim < kCap; ++victim) {
    SCOPED_TRACE(victim);
    auto t = make_table(kCap, 1000);
    std::vector<uint32_t> slots;
    std::vector<uint64_t> hashes;
    bool evicted;
    for (uint32_t i = 0; i < kCap; ++i) {
      // Homes 15, 14, 15, 0, 15, 1, 14, 0: one cluster wrapping from bucket 14 past 0.
      static constexpr uint32_t kHome[] = {15, 14, 15, 0, 15, 1, 14, 0};
      hashes.push_back((uint64_t{i + 1} << 32) | kHome[i]);
      slots.push_back(t->insert(key_for(i), hashes[i], i, &evicted));
    }
    t->remove(slots[victim]);
    for (uint32_t i = 0; i < kCap; ++i) {
      uint32_t got = t->lookup(key_for(i), hashes[i], 100);
      if (i == victim) {
        EXPECT_EQ(got, FlowTable::kNone);
      } else {
        EXPECT_EQ(got, slots[i]) << "key " << i;
      }
    }
    // And the freed place is usable again.
    uint32_t again = t->insert(key_for(victim), hashes[victim], 200, &evicted);
    EXPECT_FALSE(evicted);
    EXPECT_EQ(t->lookup(key_for(victim), hashes[victim], 201), again);
  }
}

// ---- Flow classes -------------------------------------------------------------------------------

namespace classes {
constexpr uint8_t kHalfOpen = 0, kClosing = 1, kEstablished = 2;
std::unique_ptr<FlowTable> make(uint32_t capacity) {
  // Half-open: 10 ticks, at most half the table, always gives way. Closing: 20 ticks, gives way.
  // Established: 1000 ticks, gives way only after 100 idle.
  auto t = FlowTable::create(capacity, {{10, capacity / 2, 0}, {20, 0, 0}, {1000, 0, 100}});
  EXPECT_TRUE(t.ok()) << t.error();
  return std::move(t.value());
}
}  // namespace classes

TEST(FlowTable, HalfOpenFlowsAreCappedAndNeverPushOutEstablishedOnes) {
  using namespace classes;
  auto t = make(8);
  bool evicted;
  std::vector<uint32_t> established;
  for (uint32_t i = 0; i < 4; ++i) {
    established.push_back(t->insert(key_for(i), hash_flow_key(key_for(i)), 0, kEstablished, &evicted));
    EXPECT_FALSE(evicted);
  }
  // A SYN flood: 100 half-open flows. Each beyond 4 (half of 8) evicts the oldest half-open one.
  uint32_t evictions = 0;
  for (uint32_t i = 100; i < 200; ++i) {
    ASSERT_NE(t->insert(key_for(i), hash_flow_key(key_for(i)), 1, kHalfOpen, &evicted), FlowTable::kNone);
    evictions += evicted;
  }
  EXPECT_EQ(evictions, 96u);
  EXPECT_EQ(t->class_size(kHalfOpen), 4u);
  EXPECT_EQ(t->class_size(kEstablished), 4u);
  for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(t->lookup(key_for(i), hash_flow_key(key_for(i)), 2), established[i]);
  for (uint32_t i = 196; i < 200; ++i) EXPECT_NE(t->lookup(key_for(i), hash_flow_key(key_for(i)), 2), FlowTable::kNone);
}

TEST(FlowTable, FullTableTakesHalfOpenThenClosingThenIdleEstablishedThenRefuses) {
  using namespace classes;
  auto t = make(4);
  bool evicted;
  auto h = [](uint32_t i) { return hash_flow_key(key_for(i)); };
  uint32_t half = t->insert(key_for(0), h(0), 0, kHalfOpen, &evicted);
  uint32_t closing = t->insert(key_for(1), h(1), 0, kEstablished, &evicted);
  t->set_class(closing, kClosing);
  uint32_t e1 = t->insert(key_for(2), h(2), 0, kEstablished, &evicted);
  uint32_t e2 = t->insert(key_for(3), h(3), 50, kEstablished, &evicted);
  EXPECT_EQ(t->class_size(kClosing), 1u);
  // Full: the half-open flow goes first, then the closing one.
  EXPECT_EQ(t->insert(key_for(4), h(4), 60, kEstablished, &evicted), half);
  EXPECT_TRUE(evicted);
  EXPECT_EQ(t->insert(key_for(5), h(5), 60, kEstablished, &evicted), closing);
  // Now only established flows, all used within 100 ticks: a new flow is refused.
  EXPECT_EQ(t->insert(key_for(6), h(6), 90, kHalfOpen, &evicted), FlowTable::kNone);
  EXPECT_FALSE(evicted);
  EXPECT_EQ(t->size(), 4u);
  // At 100 the flow unused since 0 has idled long enough to give way; the one used at 50 has not.
  EXPECT_EQ(t->insert(key_for(6), h(6), 100, kHalfOpen, &evicted), e1);
  EXPECT_EQ(t->insert(key_for(7), h(7), 101, kHalfOpen, &evicted), t->lookup(key_for(6), h(6), 101));
  EXPECT_NE(t->lookup(key_for(3), h(3), 102), FlowTable::kNone);
  EXPECT_EQ(t->lookup(key_for(3), h(3), 102), e2);
}

TEST(FlowTable, EachClassAgesWithItsOwnIdleTime) {
  using namespace classes;
  auto t = make(16);
  bool evicted;
  auto h = [](uint32_t i) { return hash_flow_key(key_for(i)); };
  uint32_t half = t->insert(key_for(0), h(0), 0, kHalfOpen, &evicted);
  uint32_t closing = t->insert(key_for(1), h(1), 0, kClosing, &evicted);
  uint32_t est = t->insert(key_for(2), h(2), 0, kEstablished, &evicted);
  std::vector<uint32_t> gone;
  auto expire = [&](uint64_t now) { return t->expire(now, 64, [&](uint32_t s) { gone.push_back(s); }); };
  EXPECT_EQ(expire(10), 0u);
  EXPECT_EQ(expire(11), 1u);
  EXPECT_EQ(gone, (std::vector<uint32_t>{half}));
  EXPECT_EQ(expire(21), 1u);
  EXPECT_EQ(gone.back(), closing);
  EXPECT_EQ(expire(1000), 0u);
  // Moving a flow to another class changes how long it may idle.
  t->set_class(est, kClosing);
  EXPECT_EQ(expire(1000), 1u);
  EXPECT_EQ(gone.back(), est);
  EXPECT_EQ(t->size(), 0u);
}

}  // namespace
}  // namespace imf::dp::flow
