#include "defrag/reassembler.h"

#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "decode/checksum.h"
#include "decode/packet.h"
#include "packet_builder.h"
#include "private_eal.h"

namespace imf::dp::defrag {
namespace {

using decode::DecodeStatus;
using test::Bytes;
using test::PacketBuilder;

constexpr uint64_t kTimeout = 1000;
constexpr char kName[] = "t";
constexpr char kCopyPool[] = "t_dfp";

// Frames up to 9 KiB (jumbo fragments for the large-datagram cases).
rte_mempool* test_pool() {
  static rte_mempool* pool =
      rte_pktmbuf_pool_create("defrag_test", 511, 0, 0, 9216 + RTE_PKTMBUF_HEADROOM, SOCKET_ID_ANY);
  return pool;
}

using Ext = std::pair<uint8_t, Bytes>;

// The shape of a test datagram.
struct Shape {
  uint8_t version = 4;
  bool udp = false;
  size_t payload = 80;  // L4 payload bytes
  Bytes ipv4_options;
  std::vector<Ext> unfragmentable;  // IPv6 extension headers before the fragment header
  std::vector<Ext> fragmentable;    // IPv6 extension headers after it (part of the fragmented data)
  Bytes tcp_options;
  std::optional<uint16_t> vlan;
  uint8_t host = 1;      // last byte of the source address: tells datagrams apart
  uint32_t id = 0x1234;  // IPv6 identification (IPv4's is PacketBuilder's 0x1234)
};

// A datagram and its fragments, built with PacketBuilder.
class TestDatagram {
 public:
  explicit TestDatagram(Shape s) : s_(std::move(s)) {
    Bytes payload(s_.payload);
    for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 7 + 3);
    PacketBuilder b = base();
    for (const Ext& e : s_.fragmentable) b.ipv6_ext(e.first, e.second);
    if (s_.version == 4) b.ipv4_fragment(false, false, 0);
    if (s_.udp)
      b.udp(5000, 5001);
    else
      b.tcp(40000, 1883, 1000, 2000, 0x18).tcp_options(s_.tcp_options);
    whole_ = b.payload(payload).build();
    // The fragmentable part starts where the unfragmentable headers end.
    data_.assign(whole_.begin() + static_cast<ptrdiff_t>(base().l4_offset()), whole_.end());
  }

  // The unfragmented frame the reassembler must produce.
  const Bytes& whole() const { return whole_; }
  // The fragmentable bytes (IPv4: the L4 datagram).
  const Bytes& data() const { return data_; }
  size_t size() const { return data_.size(); }

  // The fragment carrying [offset, offset + len) of data(), or of `data` when given.
  Bytes fragment(size_t offset, size_t len, bool more, const Bytes* data = nullptr) const {
    const Bytes& src = data ? *data : data_;
    Bytes slice(src.begin() + static_cast<ptrdiff_t>(offset), src.begin() + static_cast<ptrdiff_t>(offset + len));
    PacketBuilder b = base();
    uint8_t proto = s_.udp ? test::kIpProtoUdp : test::kIpProtoTcp;
    if (s_.version == 4) {
      b.ipv4_fragment(false, more, static_cast<uint16_t>(offset / 8));
    } else {
      auto flags = static_cast<uint16_t>(offset | (more ? 1 : 0));
      b.ipv6_ext(test::kIpv6Fragment,
                 {static_cast<uint8_t>(flags >> 8), static_cast<uint8_t>(flags), static_cast<uint8_t>(s_.id >> 24),
                  static_cast<uint8_t>(s_.id >> 16), static_cast<uint8_t>(s_.id >> 8), static_cast<uint8_t>(s_.id)});
      if (!s_.fragmentable.empty()) proto = s_.fragmentable.front().first;
    }
    return b.raw_l4(proto, slice).build();
  }

 private:
  PacketBuilder base() const {
    PacketBuilder b;
    if (s_.vlan) b.vlan(*s_.vlan);
    if (s_.version == 4) {
      b.ipv4({10, 0, 0, s_.host}, {10, 0, 0, 2});
      if (!s_.ipv4_options.empty()) b.ipv4_options(s_.ipv4_options);
    } else {
      b.ipv6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, s_.host},
             {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2});
      for (const Ext& e : s_.unfragmentable) b.ipv6_ext(e.first, e.second);
    }
    return b;
  }

  Shape s_;
  Bytes whole_;
  Bytes data_;
};

// Expected values of the reassembler's counters; the rest must be zero.
struct Counts {
  uint64_t fragments = 0;
  uint64_t reassembled = 0;
  uint64_t duplicates = 0;
  uint64_t overlaps = 0;
  uint64_t too_many = 0;
  uint64_t timeouts = 0;
  uint64_t table_full = 0;
  uint64_t invalid = 0;
  uint64_t dropped = 0;
};

class ReassemblerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(test_pool(), nullptr);
    avail_ = rte_mempool_avail_count(test_pool());
    make(16);
  }

  void TearDown() override {
    for (rte_mbuf* m : owned_) rte_pktmbuf_free(m);
    r_.reset();
    EXPECT_EQ(rte_mempool_lookup(kCopyPool), nullptr);
    EXPECT_EQ(rte_mempool_avail_count(test_pool()), avail_) << "mbufs leaked";
  }

  void make(uint32_t max_datagrams) {
    r_.reset();
    Config c;
    c.name = kName;
    c.max_datagrams = max_datagrams;
    c.timeout_ticks = kTimeout;
    c.socket = SOCKET_ID_ANY;
    auto r = Reassembler::create(c, counters_);
    ASSERT_TRUE(r.ok()) << r.error();
    r_ = std::move(r.value());
  }

  // Gives the reassembler `frame` (which must decode as a fragment) at `now`; remembers the
  // mbuf in sent_ and takes the fragments of a completed datagram.
  AddResult add(const Bytes& frame, uint64_t now = 0) {
    AddResult res = add_no_pool_check(frame, now);
    // The library's copies are all back in the module's pool after every call.
    rte_mempool* copies = rte_mempool_lookup(kCopyPool);
    EXPECT_NE(copies, nullptr);
    if (copies) {
      EXPECT_EQ(rte_mempool_avail_count(copies), copies->size);
    }
    return res;
  }

  AddResult add_no_pool_check(const Bytes& frame, uint64_t now = 0) {
    rte_mbuf* m = rte_pktmbuf_alloc(test_pool());
    EXPECT_NE(m, nullptr);
    auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())));
    EXPECT_NE(p, nullptr);
    std::copy(frame.begin(), frame.end(), p);
    decode::PacketMeta meta;
    EXPECT_EQ(decode::decode_packet(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), &meta),
              DecodeStatus::kFragment);
    sent_.push_back({m, frame});
    dg_ = Datagram{};
    AddResult res = r_->add(m, meta, now, &dg_);
    if (res == AddResult::kComplete) owned_.insert(owned_.end(), dg_.fragments, dg_.fragments + dg_.n_fragments);
    return res;
  }

  // The datagram just completed is `d`, made of the fragments sent_[indices...] in that order,
  // unchanged.
  void expect_datagram(const TestDatagram& d, const std::vector<size_t>& indices) {
    ASSERT_EQ(dg_.n_fragments, indices.size());
    for (size_t i = 0; i < indices.size(); ++i) {
      const auto& [m, bytes] = sent_.at(indices[i]);
      EXPECT_EQ(dg_.fragments[i], m) << "fragment " << i;
      Bytes now(rte_pktmbuf_mtod(dg_.fragments[i], const uint8_t*),
                rte_pktmbuf_mtod(dg_.fragments[i], const uint8_t*) + rte_pktmbuf_data_len(dg_.fragments[i]));
      EXPECT_EQ(now, bytes) << "fragment " << i << " changed";
    }
    ASSERT_NE(dg_.frame, nullptr);
    Bytes frame(dg_.frame, dg_.frame + dg_.len);
    EXPECT_EQ(frame, d.whole());
    decode::PacketMeta meta;
    ASSERT_EQ(decode::decode_packet(dg_.frame, dg_.len, &meta), DecodeStatus::kOk);
    EXPECT_TRUE(decode::l4_checksum_ok(dg_.frame, meta));
    if (meta.ip_version == 4) {
      EXPECT_TRUE(decode::ipv4_header_checksum_ok(dg_.frame, meta));
    }
  }

  void expect_counts(const Counts& want) {
    EXPECT_EQ(counters_.get(Counter::ip_fragments), want.fragments);
    EXPECT_EQ(counters_.get(Counter::frag_reassembled), want.reassembled);
    EXPECT_EQ(counters_.get(Counter::frag_duplicates), want.duplicates);
    EXPECT_EQ(counters_.get(Counter::frag_overlaps), want.overlaps);
    EXPECT_EQ(counters_.get(Counter::frag_too_many), want.too_many);
    EXPECT_EQ(counters_.get(Counter::frag_timeouts), want.timeouts);
    EXPECT_EQ(counters_.get(Counter::frag_table_full), want.table_full);
    EXPECT_EQ(counters_.get(Counter::frag_invalid), want.invalid);
    EXPECT_EQ(counters_.get(Counter::frag_dropped), want.dropped);
  }

  // Test-pool mbufs not free now, beyond those the test owns.
  unsigned held_mbufs() const {
    return avail_ - rte_mempool_avail_count(test_pool()) - static_cast<unsigned>(owned_.size());
  }

  Counters counters_;
  std::unique_ptr<Reassembler> r_;
  Datagram dg_;
  std::vector<std::pair<rte_mbuf*, Bytes>> sent_;
  std::vector<rte_mbuf*> owned_;
  unsigned avail_ = 0;
};

struct Cut {
  size_t offset;
  size_t len;
  bool more;
};

// ---- complete datagrams ---------------------------------------------------------------------

struct OrderCase {
  const char* name;
  Shape shape;
  std::vector<Cut> cuts;      // of a datagram of 100 bytes unless the shape says otherwise
  std::vector<size_t> order;  // the cuts, in sending order
};

TEST_F(ReassemblerTest, CompletesInAnyOrder) {
  const std::vector<Cut> four = {{0, 24, true}, {24, 24, true}, {48, 24, true}, {72, 28, false}};
  Shape v6;
  v6.version = 6;
  Shape v4_vlan;
  v4_vlan.vlan = 0x0064;
  Shape v6_vlan = v6;
  v6_vlan.vlan = 0x2064;
  Shape udp;
  udp.udp = true;
  udp.payload = 92;
  const OrderCase cases[] = {
      {"ipv4 in order", Shape{}, four, {0, 1, 2, 3}},
      {"ipv4 out of order", Shape{}, four, {2, 0, 3, 1}},
      {"ipv4 reversed", Shape{}, four, {3, 2, 1, 0}},
      {"ipv6 in order", v6, four, {0, 1, 2, 3}},
      {"ipv6 out of order", v6, four, {1, 3, 0, 2}},
      {"ipv6 reversed", v6, four, {3, 2, 1, 0}},
      {"ipv4 vlan, two fragments", v4_vlan, {{0, 48, true}, {48, 52, false}}, {1, 0}},
      {"ipv6 vlan", v6_vlan, four, {3, 0, 2, 1}},
      {"ipv4 udp", udp, four, {0, 3, 2, 1}},
  };
  uint8_t host = 1;
  size_t fragments = 0;
  size_t complete = 0;
  for (const OrderCase& c : cases) {
    SCOPED_TRACE(c.name);
    Shape s = c.shape;
    s.host = host++;  // a fresh key per case
    TestDatagram d(s);
    ASSERT_EQ(d.size(), 100u);
    size_t first = sent_.size();
    for (size_t i = 0; i < c.order.size(); ++i) {
      const Cut& cut = c.cuts[c.order[i]];
      AddResult want = i + 1 == c.order.size() ? AddResult::kComplete : AddResult::kHeld;
      ASSERT_EQ(add(d.fragment(cut.offset, cut.len, cut.more), 10), want) << "fragment " << i;
    }
    std::vector<size_t> arrival(c.order.size());
    for (size_t i = 0; i < arrival.size(); ++i) arrival[i] = first + i;
    expect_datagram(d, arrival);
    fragments += c.order.size();
    ++complete;
    EXPECT_EQ(r_->in_use(), 0u);
  }
  expect_counts({.fragments = fragments, .reassembled = complete});
}

TEST_F(ReassemblerTest, LargeDatagramAcrossCopySegments) {
  // 8 jumbo fragments of 8000 bytes: the library's copies span several 2 KiB segments.
  Shape s;
  s.udp = true;
  s.payload = 8 * 8000 - 8;
  TestDatagram d(s);
  const size_t order[] = {7, 0, 3, 5, 1, 6, 2, 4};
  for (size_t i = 0; i < 8; ++i) {
    size_t k = order[i];
    ASSERT_EQ(add(d.fragment(k * 8000, 8000, k != 7)), i == 7 ? AddResult::kComplete : AddResult::kHeld);
  }
  expect_datagram(d, {0, 1, 2, 3, 4, 5, 6, 7});
  expect_counts({.fragments = 8, .reassembled = 1});
}

TEST_F(ReassemblerTest, DatagramTooLargeForOneFrameIsDropped) {
  // 65512 bytes of UDP: a valid IPv4 datagram (65532 <= 65535), but 14 + 20 + 65512 bytes of frame
  // are more than decode_packet's 16-bit offsets describe.
  Shape s;
  s.udp = true;
  s.payload = 65512 - 8;
  TestDatagram d(s);
  for (size_t k = 0; k < 8; ++k) {
    size_t len = k < 7 ? 8192 : 65512 - 7 * 8192;
    ASSERT_EQ(add(d.fragment(k * 8192, len, k != 7)), k == 7 ? AddResult::kDropped : AddResult::kHeld);
  }
  expect_counts({.fragments = 8, .invalid = 1, .dropped = 8});
  EXPECT_EQ(held_mbufs(), 0u);
  EXPECT_EQ(r_->in_use(), 0u);
}

TEST_F(ReassemblerTest, EightFragmentsCompleteNineAreDropped) {
  for (uint8_t version : {4, 6}) {
    SCOPED_TRACE(version);
    r_->expire(UINT64_MAX);
    counters_ = Counters{};
    // Eight: 24 bytes (the TCP header and 4 more), then seven of 8.
    Shape s;
    s.version = version;
    s.payload = 60;
    TestDatagram eight(s);
    size_t first = sent_.size();
    ASSERT_EQ(add(eight.fragment(0, 24, true)), AddResult::kHeld);
    for (size_t k = 0; k < 7; ++k)
      ASSERT_EQ(add(eight.fragment(24 + k * 8, 8, k != 6)), k == 6 ? AddResult::kComplete : AddResult::kHeld);
    std::vector<size_t> all(8);
    for (size_t i = 0; i < 8; ++i) all[i] = first + i;
    expect_datagram(eight, all);

    // Nine: the ninth drops all nine, and the key stays poisoned.
    s.payload = 68;
    s.host = 9;
    TestDatagram nine(s);
    ASSERT_EQ(add(nine.fragment(0, 24, true)), AddResult::kHeld);
    for (size_t k = 0; k < 7; ++k) ASSERT_EQ(add(nine.fragment(24 + k * 8, 8, true)), AddResult::kHeld);
    EXPECT_EQ(add(nine.fragment(80, 8, false)), AddResult::kDropped);
    expect_counts({.fragments = 17, .reassembled = 1, .too_many = 1, .dropped = 9});
    EXPECT_EQ(add(nine.fragment(0, 24, true)), AddResult::kDropped);
    expect_counts({.fragments = 18, .reassembled = 1, .too_many = 1, .dropped = 10});
    EXPECT_EQ(held_mbufs(), 0u);
  }
}

TEST_F(ReassemblerTest, TinyFragmentsReassemble) {
  // UDP in eight 8-byte fragments: the first holds exactly the UDP header.
  for (uint8_t version : {4, 6}) {
    SCOPED_TRACE(version);
    Shape s;
    s.version = version;
    s.udp = true;
    s.payload = 56;
    TestDatagram d(s);
    const size_t order[] = {5, 7, 0, 2, 6, 1, 4, 3};
    size_t first = sent_.size();
    for (size_t i = 0; i < 8; ++i)
      ASSERT_EQ(add(d.fragment(order[i] * 8, 8, order[i] != 7)), i == 7 ? AddResult::kComplete : AddResult::kHeld);
    std::vector<size_t> all(8);
    for (size_t i = 0; i < 8; ++i) all[i] = first + i;
    expect_datagram(d, all);
  }
  expect_counts({.fragments = 16, .reassembled = 2});
}

TEST_F(ReassemblerTest, Ipv4OptionsAreKept) {
  Shape s;
  s.ipv4_options = {0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00};  // router alert, NOPs, end
  TestDatagram d(s);
  ASSERT_EQ(add(d.fragment(48, 52, false)), AddResult::kHeld);
  ASSERT_EQ(add(d.fragment(0, 48, true)), AddResult::kComplete);
  expect_datagram(d, {0, 1});
  EXPECT_EQ(dg_.frame[14], 0x47);  // IHL 7 in the frame
  expect_counts({.fragments = 2, .reassembled = 1});
}

TEST_F(ReassemblerTest, Ipv6ExtensionHeadersAroundTheFragmentHeader) {
  struct Case {
    const char* name;
    std::vector<Ext> unfragmentable;
    std::vector<Ext> fragmentable;
  };
  const Case cases[] = {
      {"hop-by-hop and destination options before",
       {{test::kIpv6HopByHop, {1, 4, 0, 0, 0, 0}}, {test::kIpv6DestOpts, {1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}},
       {}},
      {"routing header with no segments left before", {{test::kIpv6Routing, {0, 0, 0, 0, 0, 0}}}, {}},
      {"destination options after", {{test::kIpv6HopByHop, {}}}, {{test::kIpv6DestOpts, {1, 4, 0, 0, 0, 0}}}},
  };
  uint8_t host = 1;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Shape s;
    s.version = 6;
    s.host = host++;
    s.unfragmentable = c.unfragmentable;
    s.fragmentable = c.fragmentable;
    TestDatagram d(s);
    size_t n = d.size();
    size_t first = sent_.size();
    ASSERT_EQ(add(d.fragment(48, n - 48, false)), AddResult::kHeld);
    ASSERT_EQ(add(d.fragment(0, 48, true)), AddResult::kComplete);
    expect_datagram(d, {first, first + 1});
    decode::PacketMeta meta;
    ASSERT_EQ(decode::decode_packet(dg_.frame, dg_.len, &meta), DecodeStatus::kOk);
    EXPECT_EQ(meta.l4_proto, decode::kProtoTcp);
    EXPECT_EQ(meta.payload_len, 80u);
  }
  expect_counts({.fragments = 6, .reassembled = 3});
}

TEST_F(ReassemblerTest, KeysIncludeTheIpv4Protocol) {
  // Same addresses and identification, TCP and UDP: two datagrams, as receivers see them.
  Shape udp;
  udp.udp = true;
  udp.payload = 92;
  TestDatagram t{Shape{}};
  TestDatagram u(udp);
  ASSERT_EQ(add(t.fragment(0, 48, true)), AddResult::kHeld);
  ASSERT_EQ(add(u.fragment(0, 48, true)), AddResult::kHeld);
  ASSERT_EQ(add(t.fragment(48, 52, false)), AddResult::kComplete);
  expect_datagram(t, {0, 2});
  ASSERT_EQ(add(u.fragment(48, 52, false)), AddResult::kComplete);
  expect_datagram(u, {1, 3});
  expect_counts({.fragments = 4, .reassembled = 2});
}

// ---- duplicates and overlaps ----------------------------------------------------------------

TEST_F(ReassemblerTest, ExactDuplicateIsDroppedAlone) {
  for (uint8_t version : {4, 6}) {
    SCOPED_TRACE(version);
    Shape s;
    s.version = version;
    TestDatagram d(s);
    size_t b = sent_.size();
    ASSERT_EQ(add(d.fragment(0, 48, true)), AddResult::kHeld);
    ASSERT_EQ(add(d.fragment(48, 24, true)), AddResult::kHeld);
    ASSERT_EQ(add(d.fragment(48, 24, true)), AddResult::kDropped);
    ASSERT_EQ(add(d.fragment(0, 48, true)), AddResult::kDropped);
    ASSERT_EQ(add(d.fragment(72, 28, false)), AddResult::kComplete);
    expect_datagram(d, {b, b + 1, b + 4});
  }
  expect_counts({.fragments = 10, .reassembled = 2, .duplicates = 4, .dropped = 4});
}

TEST_F(ReassemblerTest, ContainedDuplicateWithEqualBytesIsDroppedAlone) {
  TestDatagram d{Shape{}};
  ASSERT_EQ(add(d.fragment(0, 48, true)), AddResult::kHeld);
  ASSERT_EQ(add(d.fragment(8, 24, true)), AddResult::kDropped);  // inside the first
  ASSERT_EQ(add(d.fragment(88, 12, false)), AddResult::kHeld);
  ASSERT_EQ(add(d.fragment(88, 8, true)), AddResult::kDropped);  // inside the last, more set
  ASSERT_EQ(add(d.fragment(48, 40, true)), AddResult::kComplete);
  expect_datagram(d, {0, 2, 4});
  expect_counts({.fragments = 5, .reassembled = 1, .duplicates = 2, .dropped = 2});
}

TEST_F(ReassemblerTest, PartialOverlapWithEqualBytesKeepsEveryOriginal) {
  struct Case {
    const char* name;
    std::vector<Cut> cuts;  // in sending order
  };
  const Case cases[] = {
      {"overlapping the end of the held one", {{0, 24, true}, {16, 32, true}, {48, 52, false}}},
      {"overlapping the start of the held one", {{16, 32, true}, {0, 24, true}, {48, 52, false}}},
      {"filling a hole and overlapping both sides", {{0, 24, true}, {40, 60, false}, {16, 32, true}}},
      {"covering a held one entirely", {{24, 16, true}, {16, 40, true}, {0, 24, true}, {56, 44, false}}},
      {"last fragment overlapping", {{0, 64, true}, {56, 44, false}}},
      {"last fragment inside the first", {{0, 104, true}, {96, 8, false}}},
  };
  uint8_t host = 1;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Shape s;
    s.host = host++;
    if (c.cuts.front().len == 104) s.payload = 84;  // 104 bytes in all
    TestDatagram d(s);
    size_t first = sent_.size();
    std::vector<size_t> all;
    for (size_t i = 0; i < c.cuts.size(); ++i) {
      const Cut& cut = c.cuts[i];
      ASSERT_EQ(add(d.fragment(cut.offset, cut.len, cut.more)),
                i + 1 == c.cuts.size() ? AddResult::kComplete : AddResult::kHeld)
          << "fragment " << i;
      all.push_back(first + i);
    }
    expect_datagram(d, all);
  }
  expect_counts({.fragments = 17, .reassembled = 6});
}

TEST_F(ReassemblerTest, OverlapWithDifferentBytesDropsTheDatagramAndPoisonsTheKey) {
  for (uint8_t version : {4, 6}) {
    for (bool held_first : {true, false}) {
      SCOPED_TRACE(std::to_string(version) + (held_first ? " original first" : " conflicting first"));
      r_->expire(UINT64_MAX);
      counters_ = Counters{};
      Shape s;
      s.version = version;
      TestDatagram d(s);
      Bytes other = d.data();
      other[20] ^= 0xff;  // a byte both fragments carry
      Bytes original = d.fragment(0, 24, true);
      Bytes conflicting = d.fragment(16, 32, true, &other);
      const uint64_t t0 = 5000;
      ASSERT_EQ(add(held_first ? original : conflicting, t0), AddResult::kHeld);
      ASSERT_EQ(add(held_first ? conflicting : original, t0 + 1), AddResult::kDropped);
      expect_counts({.fragments = 2, .overlaps = 1, .dropped = 2});
      EXPECT_EQ(held_mbufs(), 0u);

      // Until the datagram's timeout, its other fragments go too, and nothing starts afresh.
      ASSERT_EQ(add(d.fragment(48, 52, false), t0 + 2), AddResult::kDropped);
      ASSERT_EQ(add(d.fragment(0, 48, true), t0 + kTimeout - 1), AddResult::kDropped);
      expect_counts({.fragments = 4, .overlaps = 1, .dropped = 4});
      EXPECT_EQ(r_->in_use(), 1u);
      r_->expire(t0 + kTimeout);
      EXPECT_EQ(r_->in_use(), 0u);

      // Then the key is free: a new datagram with it completes.
      size_t b = sent_.size();
      ASSERT_EQ(add(d.fragment(48, 52, false), t0 + kTimeout), AddResult::kHeld);
      ASSERT_EQ(add(d.fragment(0, 48, true), t0 + kTimeout), AddResult::kComplete);
      expect_datagram(d, {b, b + 1});
      expect_counts({.fragments = 6, .reassembled = 1, .overlaps = 1, .dropped = 4});
    }
  }
}

TEST_F(ReassemblerTest, PoisonedKeyIsForgottenByTheNextFragmentAfterItsTimeout) {
  TestDatagram d{Shape{}};
  Bytes other = d.data();
  other[36] ^= 1;  // in the overlap [32, 40)
  ASSERT_EQ(add(d.fragment(0, 40, true), 100), AddResult::kHeld);
  ASSERT_EQ(add(d.fragment(32, 16, true, &other), 100), AddResult::kDropped);
  // No expire(): the fragment arriving at the deadline starts a new datagram.
  ASSERT_EQ(add(d.fragment(48, 52, false), 100 + kTimeout), AddResult::kHeld);
  ASSERT_EQ(add(d.fragment(0, 48, true), 100 + kTimeout), AddResult::kComplete);
  expect_datagram(d, {2, 3});
  expect_counts({.fragments = 4, .reassembled = 1, .overlaps = 1, .dropped = 2});
}

TEST_F(ReassemblerTest, ContradictingTheEndDropsTheDatagram) {
  struct Case {
    const char* name;
    std::vector<Cut> cuts;  // the last one contradicts the others
  };
  const Case cases[] = {
      {"second last fragment ending elsewhere", {{0, 24, true}, {48, 24, false}, {64, 16, false}}},
      {"data beyond the end", {{24, 24, false}, {48, 8, true}}},
      {"last fragment ending before held data", {{0, 24, true}, {48, 16, true}, {24, 16, false}}},
  };
  uint8_t host = 1;
  uint64_t fragments = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Shape s;
    s.host = host++;
    TestDatagram d(s);
    for (size_t i = 0; i + 1 < c.cuts.size(); ++i)
      ASSERT_EQ(add(d.fragment(c.cuts[i].offset, c.cuts[i].len, c.cuts[i].more)), AddResult::kHeld);
    const Cut& bad = c.cuts.back();
    ASSERT_EQ(add(d.fragment(bad.offset, bad.len, bad.more)), AddResult::kDropped);
    // Poisoned: a fragment that would have fitted is dropped too.
    ASSERT_EQ(add(d.fragment(0, 24, true)), AddResult::kDropped);
    fragments += c.cuts.size() + 1;
    EXPECT_EQ(held_mbufs(), 0u);
  }
  expect_counts({.fragments = fragments, .invalid = 3, .dropped = fragments});
}

// ---- malformed fragments --------------------------------------------------------------------

TEST_F(ReassemblerTest, FirstFragmentWithoutTheWholeTransportHeaderDropsTheDatagram) {
  struct Case {
    const char* name;
    Shape shape;
    size_t first_len;  // of the first fragment; the rest of the datagram in one more
  };
  Shape v6;
  v6.version = 6;
  Shape tcp_options;
  tcp_options.tcp_options = Bytes(12, 1);  // NOPs: a 32-byte TCP header
  Shape v6_dest;
  v6_dest.version = 6;
  v6_dest.fragmentable = {{test::kIpv6DestOpts, Bytes(14, 0)}};  // 16 bytes before TCP
  Shape v6_nested;
  v6_nested.version = 6;
  v6_nested.fragmentable = {{test::kIpv6Fragment, {0x00, 0x01, 0, 0, 0, 7}}};
  const Case cases[] = {
      {"ipv4, 16 bytes of TCP header", Shape{}, 16},
      {"ipv4, 24 of 32 bytes of TCP header with options", tcp_options, 24},
      {"ipv6, 16 bytes of TCP header", v6, 16},
      {"ipv6, destination options and 16 bytes of TCP header", v6_dest, 32},
      {"ipv6, only the destination options", v6_dest, 16},
      {"ipv6, a fragment header inside the fragment", v6_nested, 48},
  };
  uint8_t host = 1;
  uint64_t fragments = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Shape s = c.shape;
    s.host = host++;
    TestDatagram d(s);
    ASSERT_EQ(add(d.fragment(c.first_len, d.size() - c.first_len, false)), AddResult::kHeld);
    ASSERT_EQ(add(d.fragment(0, c.first_len, true)), AddResult::kDropped);
    // The key is poisoned: a proper first fragment does not revive the datagram.
    ASSERT_EQ(add(d.fragment(0, 48, true)), AddResult::kDropped);
    fragments += 3;
    EXPECT_EQ(held_mbufs(), 0u);
  }
  // A tiny first fragment alone is dropped too (and its datagram's later fragments).
  Shape s;
  s.host = host;
  TestDatagram d(s);
  ASSERT_EQ(add(d.fragment(0, 8, true)), AddResult::kDropped);
  ASSERT_EQ(add(d.fragment(8, 92, false)), AddResult::kDropped);
  fragments += 2;
  expect_counts({.fragments = fragments, .invalid = 7, .dropped = fragments});
}

TEST_F(ReassemblerTest, MalformedFragmentsAreDroppedAlone) {
  struct Case {
    const char* name;
    Shape shape;
    std::function<Bytes(const Shape&)> bad;  // a malformed fragment of the datagram of that shape
  };
  Shape v6;
  v6.version = 6;
  Shape v6_hbh = v6;
  v6_hbh.unfragmentable = {{test::kIpv6HopByHop, {}}};
  const Bytes big(65560, 0);
  const Case cases[] = {
      {"ipv4 header checksum wrong", Shape{},
       [](const Shape& s) {
         Bytes f = TestDatagram(s).fragment(48, 24, true);
         f[test::kEthHdrLen + 10] ^= 0x01;
         return f;
       }},
      {"ipv4 no data", Shape{}, [](const Shape& s) { return TestDatagram(s).fragment(48, 0, true); }},
      {"ipv6 no data", v6, [](const Shape& s) { return TestDatagram(s).fragment(48, 0, true); }},
      {"ipv4 middle fragment of 20 bytes", Shape{},
       [](const Shape& s) { return TestDatagram(s).fragment(48, 20, true); }},
      {"ipv6 middle fragment of 12 bytes", v6, [](const Shape& s) { return TestDatagram(s).fragment(48, 12, true); }},
      {"ipv4 ending beyond 65535 - 20", Shape{},
       [&big](const Shape& s) { return TestDatagram(s).fragment(65496, 24, false, &big); }},
      {"ipv6 ending beyond 65535", v6,
       [&big](const Shape& s) { return TestDatagram(s).fragment(65528, 16, false, &big); }},
      {"ipv6 with hop-by-hop, ending beyond 65535 - 8", v6_hbh,
       [&big](const Shape& s) { return TestDatagram(s).fragment(65512, 16, false, &big); }},
  };
  uint8_t host = 1;
  uint64_t fragments = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Shape s = c.shape;
    s.host = host++;
    TestDatagram d(s);
    size_t b = sent_.size();
    ASSERT_EQ(add(d.fragment(0, 48, true)), AddResult::kHeld);
    ASSERT_EQ(add(c.bad(s)), AddResult::kDropped);
    EXPECT_EQ(held_mbufs(), 1u);
    // The datagram goes on.
    ASSERT_EQ(add(d.fragment(48, 52, false)), AddResult::kComplete);
    expect_datagram(d, {b, b + 2});
    fragments += 3;
  }
  expect_counts({.fragments = fragments, .reassembled = 8, .invalid = 8, .dropped = 8});
}

TEST_F(ReassemblerTest, RoutingHeaderWithSegmentsLeftIsDropped) {
  // Not yet at its final destination, which may see other bytes: every fragment is malformed.
  Shape s;
  s.version = 6;
  s.unfragmentable = {{test::kIpv6Routing, {0, 1, 0, 0, 0, 0}}};  // type 0, segments left 1
  TestDatagram d(s);
  ASSERT_EQ(add(d.fragment(0, 48, true)), AddResult::kDropped);
  ASSERT_EQ(add(d.fragment(48, 52, false)), AddResult::kDropped);
  expect_counts({.fragments = 2, .invalid = 2, .dropped = 2});
  EXPECT_EQ(r_->in_use(), 0u);
}

TEST_F(ReassemblerTest, FragmentsUpToTheLengthLimitAreHeld) {
  Shape v6;
  v6.version = 6;
  const Bytes big(65560, 0);
  // IPv4: offset + length = 65515 = 65535 - 20. IPv6: 65535.
  ASSERT_EQ(add(TestDatagram(Shape{}).fragment(65488, 27, false, &big)), AddResult::kHeld);
  ASSERT_EQ(add(TestDatagram(v6).fragment(65512, 23, false, &big)), AddResult::kHeld);
  expect_counts({.fragments = 2});
  EXPECT_EQ(r_->in_use(), 2u);
}

TEST_F(ReassemblerTest, TooManyPiecesForTheLibraryDropTheDatagram) {
  // Five originals, but the last one covers the four held with equal bytes and fills the five
  // gaps between them: nine pieces for the library's eight slots.
  TestDatagram d{Shape{}};
  for (size_t off : {8, 24, 40, 56}) ASSERT_EQ(add(d.fragment(off, 8, true)), AddResult::kHeld);
  ASSERT_EQ(add(d.fragment(0, 72, true)), AddResult::kDropped);
  expect_counts({.fragments = 5, .too_many = 1, .dropped = 5});
  ASSERT_EQ(add(d.fragment(72, 28, false)), AddResult::kDropped);  // poisoned
  expect_counts({.fragments = 6, .too_many = 1, .dropped = 6});
  EXPECT_EQ(held_mbufs(), 0u);
}

TEST_F(ReassemblerTest, FailsClosedWhenTheLibraryCannotBeFed) {
  // Take all but three mbufs of the module's copy pool: the first piece's copy (two segments) is
  // fed, the second's cannot be made. Everything is dropped and the library's table purged, so
  // the same datagram (same key) completes once the pool is back.
  rte_mempool* copies = rte_mempool_lookup(kCopyPool);
  ASSERT_NE(copies, nullptr);
  std::vector<rte_mbuf*> hog(rte_mempool_avail_count(copies) - 3);
  ASSERT_EQ(rte_pktmbuf_alloc_bulk(copies, hog.data(), static_cast<unsigned>(hog.size())), 0);
  Shape s;
  s.udp = true;
  s.payload = 8000 - 8;
  TestDatagram d(s);
  ASSERT_EQ(add_no_pool_check(d.fragment(4000, 4000, false)), AddResult::kHeld);
  ASSERT_EQ(add_no_pool_check(d.fragment(0, 4000, true)), AddResult::kDropped);
  expect_counts({.fragments = 2, .invalid = 1, .dropped = 2});
  EXPECT_EQ(rte_mempool_avail_count(copies), 3u);
  EXPECT_EQ(r_->in_use(), 0u);
  for (rte_mbuf* m : hog) rte_pktmbuf_free(m);

  ASSERT_EQ(add(d.fragment(4000, 4000, false)), AddResult::kHeld);
  ASSERT_EQ(add(d.fragment(0, 4000, true)), AddResult::kComplete);
  expect_datagram(d, {2, 3});
  expect_counts({.fragments = 4, .reassembled = 1, .invalid = 1, .dropped = 2});
}

// ---- time and room --------------------------------------------------------------------------

TEST_F(ReassemblerTest, IncompleteDatagramTimesOut) {
  Shape v6;
  v6.version = 6;
  TestDatagram d4{Shape{}};
  TestDatagram d6(v6);
  ASSERT_EQ(add(d4.fragment(0, 48, true), 100), AddResult::kHeld);
  ASSERT_EQ(add(d6.fragment(48, 52, false), 150), AddResult::kHeld);
  ASSERT_EQ(add(d4.fragment(72, 28, false), 900), AddResult::kHeld);
  EXPECT_EQ(held_mbufs(), 3u);
  r_->expire(100 + kTimeout - 1);
  expect_counts({.fragments = 3});
  EXPECT_EQ(r_->in_use(), 2u);
  r_->expire(100 + kTimeout);  // the IPv4 datagram: timed from its first fragment
  expect_counts({.fragments = 3, .timeouts = 1, .dropped = 2});
  EXPECT_EQ(held_mbufs(), 1u);
  r_->expire(150 + kTimeout);
  expect_counts({.fragments = 3, .timeouts = 2, .dropped = 3});
  EXPECT_EQ(held_mbufs(), 0u);
  EXPECT_EQ(r_->in_use(), 0u);
}

TEST_F(ReassemblerTest, LateFragmentDoesNotCompleteATimedOutDatagram) {
  TestDatagram d{Shape{}};
  ASSERT_EQ(add(d.fragment(0, 48, true), 0), AddResult::kHeld);
  // No expire() in between: add() itself drops the old datagram, and this one starts anew.
  ASSERT_EQ(add(d.fragment(48, 52, false), kTimeout), AddResult::kHeld);
  expect_counts({.fragments = 2, .timeouts = 1, .dropped = 1});
  EXPECT_EQ(held_mbufs(), 1u);
  ASSERT_EQ(add(d.fragment(0, 48, true), kTimeout + 1), AddResult::kComplete);
  expect_datagram(d, {1, 2});
}

TEST_F(ReassemblerTest, TableFullDropsNewDatagramsOnly) {
  make(2);
  Shape s;
  std::vector<TestDatagram> d;
  for (uint8_t h = 1; h <= 3; ++h) {
    s.host = h;
    d.emplace_back(s);
  }
  ASSERT_EQ(add(d[0].fragment(0, 48, true), 10), AddResult::kHeld);
  ASSERT_EQ(add(d[1].fragment(0, 48, true), 20), AddResult::kHeld);
  ASSERT_EQ(add(d[2].fragment(0, 48, true), 30), AddResult::kDropped);
  expect_counts({.fragments = 3, .table_full = 1, .dropped = 1});
  // Pending datagrams go on.
  ASSERT_EQ(add(d[1].fragment(48, 52, false), 40), AddResult::kComplete);
  expect_datagram(d[1], {1, 3});
  // Room again: the third starts, the first times out when the table is full once more.
  ASSERT_EQ(add(d[2].fragment(0, 48, true), 50), AddResult::kHeld);
  s.host = 4;
  TestDatagram fourth(s);
  ASSERT_EQ(add(fourth.fragment(0, 48, true), 10 + kTimeout - 1), AddResult::kDropped);
  ASSERT_EQ(add(fourth.fragment(0, 48, true), 10 + kTimeout), AddResult::kHeld);
  expect_counts({.fragments = 7, .reassembled = 1, .timeouts = 1, .table_full = 2, .dropped = 3});
  EXPECT_EQ(r_->in_use(), 2u);
}

TEST_F(ReassemblerTest, DestructorFreesWhatIsHeld) {
  TestDatagram d{Shape{}};
  ASSERT_EQ(add(d.fragment(0, 48, true)), AddResult::kHeld);
  ASSERT_EQ(add(d.fragment(72, 28, false)), AddResult::kHeld);
  EXPECT_EQ(held_mbufs(), 2u);
  r_.reset();
  EXPECT_EQ(held_mbufs(), 0u);
  expect_counts({.fragments = 2, .dropped = 2});
}

TEST(ReassemblerConfig, BadConfigsAreRefused) {
  Counters c;
  Config good;
  good.name = "cfg";
  good.timeout_ticks = 1;
  Config no_name = good;
  no_name.name = "";
  Config long_name = good;
  long_name.name = std::string(kMaxNameLength + 1, 'x');
  Config no_room = good;
  no_room.max_datagrams = 0;
  Config no_timeout = good;
  no_timeout.timeout_ticks = 0;
  for (const Config* bad : {&no_name, &long_name, &no_room, &no_timeout})
    EXPECT_FALSE(Reassembler::create(*bad, c).ok());
  auto r = Reassembler::create(good, c);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_FALSE(Reassembler::create(good, c).ok());  // the name is taken
}

}  // namespace
}  // namespace imf::dp::defrag

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new imf::test::PrivateEal("defrag_test", 256));
  return RUN_ALL_TESTS();
}
