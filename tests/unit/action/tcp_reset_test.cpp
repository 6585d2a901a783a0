#include "action/tcp_reset.h"

#include <gtest/gtest.h>

#include <cstring>

#include "packet_builder.h"

namespace imf::dp::action {
namespace {

using test::Bytes;
using test::PacketBuilder;

// Internet checksum over a buffer, to verify headers independently of the code under test.
uint16_t csum(const uint8_t* p, size_t n, uint32_t acc = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) acc += uint32_t{p[i]} << 8 | p[i + 1];
  if (n & 1) acc += uint32_t{p[n - 1]} << 8;
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}

uint16_t tcp_checksum_ok(const uint8_t* frame, const decode::PacketMeta& m) {
  size_t ip_len = m.ip_version == 4 ? 4 : 16;
  uint32_t acc = csum(m.src_ip, ip_len);
  acc = csum(m.dst_ip, ip_len, acc);
  acc += decode::kProtoTcp + 20;
  return csum(frame + m.l4_offset, 20, acc) == 0xffff;
}

struct Case {
  const char* name;
  bool ipv6;
  bool vlan;
};

class ResetTest : public ::testing::TestWithParam<Case> {};

TEST_P(ResetTest, BothDirectionsCarryTheRightSequenceNumbers) {
  PacketBuilder b;
  b.eth({2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2});
  if (GetParam().vlan) b.vlan(0x2064);
  if (GetParam().ipv6) {
    test::Ip6 c{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, s = c;
    s[15] = 2;
    b.ipv6(c, s);
  } else {
    b.ipv4({10, 0, 0, 1}, {10, 0, 0, 2});
  }
  b.tcp(40000, 1883, 1000, 5000, 0x18).payload("0123456789");
  Bytes seg = b.build();
  decode::PacketMeta m;
  ASSERT_EQ(decode::decode_packet(seg.data(), static_cast<uint32_t>(seg.size()), &m), decode::DecodeStatus::kOk);

  uint8_t out[kResetFrameMax];
  // Onward: as from the client, seq = the dropped segment's seq.
  uint16_t len = build_reset(seg.data(), m, ResetTarget::kReceiver, out);
  decode::PacketMeta r;
  ASSERT_EQ(decode::decode_packet(out, len, &r), decode::DecodeStatus::kOk);
  EXPECT_EQ(0, std::memcmp(out, seg.data(), 12));  // same MACs
  EXPECT_EQ(r.has_vlan, GetParam().vlan);
  EXPECT_EQ(r.vlan_tci, m.vlan_tci);
  EXPECT_EQ(0, std::memcmp(r.src_ip, m.src_ip, 16));
  EXPECT_EQ(r.src_port, 40000);
  EXPECT_EQ(r.dst_port, 1883);
  EXPECT_EQ(r.seq, 1000u);
  EXPECT_EQ(r.tcp_flags, decode::kTcpRst);
  EXPECT_EQ(r.payload_len, 0);
  EXPECT_TRUE(tcp_checksum_ok(out, r));
  if (!GetParam().ipv6) {
    EXPECT_EQ(csum(out + r.l3_offset, 20), 0xffff);
  }

  // Back: as from the broker, seq = the client's ack, ack = end of the dropped segment.
  len = build_reset(seg.data(), m, ResetTarget::kSender, out);
  ASSERT_EQ(decode::decode_packet(out, len, &r), decode::DecodeStatus::kOk);
  EXPECT_EQ(0, std::memcmp(out, seg.data() + 6, 6));  // MACs swapped
  EXPECT_EQ(0, std::memcmp(out + 6, seg.data(), 6));
  EXPECT_EQ(0, std::memcmp(r.src_ip, m.dst_ip, 16));
  EXPECT_EQ(r.src_port, 1883);
  EXPECT_EQ(r.dst_port, 40000);
  EXPECT_EQ(r.seq, 5000u);
  EXPECT_EQ(r.ack, 1010u);
  EXPECT_EQ(r.tcp_flags, decode::kTcpRst | decode::kTcpAck);
  EXPECT_TRUE(tcp_checksum_ok(out, r));
}

INSTANTIATE_TEST_SUITE_P(All, ResetTest,
                         ::testing::Values(Case{"ipv4", false, false}, Case{"ipv4_vlan", false, true},
                                           Case{"ipv6", true, false}, Case{"ipv6_vlan", true, true}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(TcpReset, APppoeSessionHeaderCountsTheReset) {
  Bytes inner = PacketBuilder().tcp(40000, 1883, 1000, 5000, 0x18).payload("0123456789").build();
  Bytes seg(inner.begin(), inner.begin() + 12);
  uint16_t ppp_len = static_cast<uint16_t>(inner.size() - 14 + 2);
  for (uint8_t b : {uint8_t{0x88}, uint8_t{0x64}, uint8_t{0x11}, uint8_t{0x00}, uint8_t{0x00}, uint8_t{0x07},
                    static_cast<uint8_t>(ppp_len >> 8), static_cast<uint8_t>(ppp_len), uint8_t{0x00}, uint8_t{0x21}})
    seg.push_back(b);
  seg.insert(seg.end(), inner.begin() + 14, inner.end());
  decode::PacketMeta m;
  ASSERT_EQ(decode::decode_packet(seg.data(), static_cast<uint32_t>(seg.size()), &m), decode::DecodeStatus::kOk);
  uint8_t out[kResetFrameMax];
  uint16_t len = build_reset(seg.data(), m, ResetTarget::kReceiver, out);
  decode::PacketMeta r;
  ASSERT_EQ(decode::decode_packet(out, len, &r), decode::DecodeStatus::kOk);
  EXPECT_EQ(r.pppoe_offset, 14);
  EXPECT_EQ(out[14 + 4] << 8 | out[14 + 5], 2 + 40);  // PPP protocol + IPv4 + TCP
  EXPECT_EQ(out[14 + 2] << 8 | out[14 + 3], 7);       // the session id kept
  EXPECT_TRUE(tcp_checksum_ok(out, r));
}

}  // namespace
}  // namespace imf::dp::action
