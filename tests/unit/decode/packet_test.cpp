#include "decode/packet.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "packet_builder.h"

namespace imf::dp::decode {
namespace {

using test::Bytes;
using test::Ip4;
using test::Ip6;
using test::PacketBuilder;

constexpr Ip4 kSrc4{192, 168, 1, 10};
constexpr Ip4 kDst4{10, 20, 30, 40};
constexpr Ip6 kSrc6{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55};
constexpr Ip6 kDst6{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x18, 0x83};

// Decodes a heap copy of exactly `len` bytes of `frame`, so the sanitizer sees any overread.
DecodeStatus decode(const Bytes& frame, PacketMeta* m, size_t len) {
  std::vector<uint8_t> copy(frame.begin(), frame.begin() + static_cast<ptrdiff_t>(len));
  return decode_packet(copy.data(), static_cast<uint32_t>(len), m);
}
DecodeStatus decode(const Bytes& frame, PacketMeta* m) { return decode(frame, m, frame.size()); }

template <size_t N>
void expect_ip(const uint8_t (&got)[16], const std::array<uint8_t, N>& want) {
  uint8_t full[16] = {};
  std::memcpy(full, want.data(), N);
  EXPECT_EQ(0, std::memcmp(got, full, 16)) << "address mismatch";
}

// ---- Well-formed frames -------------------------------------------------------------------------

TEST(DecodePacket, Ipv4Tcp) {
  PacketBuilder b;
  b.ipv4(kSrc4, kDst4).tcp(51000, 1883, 0x01020304, 0xa0b0c0d0, kTcpPsh | kTcpAck).payload("MQTT bytes");
  Bytes f = b.build();
  PacketMeta m;
  ASSERT_EQ(decode(f, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.l3_offset, 14);
  EXPECT_EQ(m.l4_offset, 34);
  EXPECT_EQ(m.payload_offset, 54);
  EXPECT_EQ(m.payload_len, 10);
  EXPECT_FALSE(m.has_vlan);
  EXPECT_EQ(m.vlan_tci, 0);
  EXPECT_EQ(m.ip_version, 4);
  EXPECT_EQ(m.l4_proto, kProtoTcp);
  EXPECT_EQ(m.tcp_flags, kTcpPsh | kTcpAck);
  EXPECT_EQ(m.src_port, 51000);
  EXPECT_EQ(m.dst_port, 1883);
  EXPECT_EQ(m.seq, 0x01020304u);
  EXPECT_EQ(m.ack, 0xa0b0c0d0u);
  expect_ip(m.src_ip, kSrc4);
  expect_ip(m.dst_ip, kDst4);
  EXPECT_EQ(std::string(f.begin() + m.payload_offset, f.begin() + m.payload_offset + m.payload_len), "MQTT bytes");
}

TEST(DecodePacket, Ipv4TcpWithIpAndTcpOptions) {
  PacketBuilder b;
  b.ipv4(kSrc4, kDst4)
      .ipv4_options({0x94, 0x04, 0, 0, 0x01})  // router alert + NOP, padded to 8
      .tcp(1883, 40000, 7, 9, kTcpSyn | kTcpAck)
      .tcp_options({0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07, 0x04, 0x02})  // MSS, WS, SACK ok
      .payload("xyz");
  Bytes f = b.build();
  PacketMeta m;
  ASSERT_EQ(decode(f, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.l4_offset, 14 + 28);
  EXPECT_EQ(m.payload_offset, 14 + 28 + 32);
  EXPECT_EQ(m.payload_offset, b.payload_offset());
  EXPECT_EQ(m.payload_len, 3);
  EXPECT_EQ(m.tcp_flags, kTcpSyn | kTcpAck);
  EXPECT_EQ(m.src_port, 1883);
  EXPECT_EQ(m.dst_port, 40000);
}

TEST(DecodePacket, Ipv4Udp) {
  Bytes f = PacketBuilder().ipv4(kSrc4, kDst4).udp(5353, 53).payload("query").build();
  PacketMeta m;
  ASSERT_EQ(decode(f, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.ip_version, 4);
  EXPECT_EQ(m.l4_proto, kProtoUdp);
  EXPECT_EQ(m.l4_offset, 34);
  EXPECT_EQ(m.payload_offset, 42);
  EXPECT_EQ(m.payload_len, 5);
  EXPECT_EQ(m.src_port, 5353);
  EXPECT_EQ(m.dst_port, 53);
  EXPECT_EQ(m.seq, 0u);
  EXPECT_EQ(m.ack, 0u);
  EXPECT_EQ(m.tcp_flags, 0);
  expect_ip(m.src_ip, kSrc4);
  expect_ip(m.dst_ip, kDst4);
}

TEST(DecodePacket, UdpLengthShorterThanIpPayloadWins) {
  Bytes f = PacketBuilder().udp(1, 2).payload("abcdef").build();
  test::put_be16(f, 34 + test::kOffUdpLen, 8 + 2);
  PacketMeta m;
  ASSERT_EQ(decode(f, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.payload_len, 2);
}

TEST(DecodePacket, Ipv4OtherProtocolStopsAtL3) {
  Bytes f = PacketBuilder().ipv4(kSrc4, kDst4).ip_proto(1).payload(Bytes{8, 0, 0, 0, 0, 1, 0, 1}).build();
  PacketMeta m;
  ASSERT_EQ(decode(f, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.l4_proto, 1);
  EXPECT_EQ(m.l4_offset, 34);
  EXPECT_EQ(m.payload_offset, 34);
  EXPECT_EQ(m.payload_len, 8);
  EXPECT_EQ(m.src_port, 0);
  EXPECT_EQ(m.dst_port, 0);
}

TEST(DecodePacket, Ipv6Tcp) {
  Bytes f = PacketBuilder().ipv6(kSrc6, kDst6).tcp(40001, 8883, 100, 200, kTcpAck).payload("v6!").build();
  PacketMeta m;
  ASSERT_EQ(decode(f, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.ip_version, 6);
  EXPECT_EQ(m.l3_offset, 14);
  EXPECT_EQ(m.l4_offset, 54);
  EXPECT_EQ(m.payload_offset, 74);
  EXPECT_EQ(m.payload_len, 3);
  EXPECT_EQ(m.l4_proto, kProtoTcp);
  EXPECT_EQ(m.src_port, 40001);
  EXPECT_EQ(m.dst_port, 8883);
  EXPECT_EQ(m.seq, 100u);
  EXPECT_EQ(m.ack, 200u);
  EXPECT_EQ(m.tcp_flags, kTcpAck);
  expect_ip(m.src_ip, kSrc6);
  expect_ip(m.dst_ip, kDst6);
}

TEST(DecodePacket, Ipv6Udp) {
  Bytes f = PacketBuilder().ipv6(kSrc6, kDst6).udp(546, 547).payload("dhcp").build();
  PacketMeta m;
  ASSERT_EQ(decode(f, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.l4_proto, kProtoUdp);
  EXPECT_EQ(m.payload_offset, 14 + 40 + 8);
  EXPECT_EQ(m.payload_len, 4);
}

TEST(DecodePacket, Ipv6ExtensionHeadersAreWalked) {
  PacketBuilder b;
  b.ipv6(kSrc6, kDst6)
      .ipv6_ext(test::kIpv6HopByHop, {5, 2, 0, 0, 1, 0})  // router alert + PadN: 8 bytes
      .ipv6_ext(test::kIpv6DestOpts, Bytes(12, 0))        // 16 bytes
      .ipv6_ext(test::kIpv6Routing, {0, 0, 0, 0, 0, 0})   // 8 bytes
      .tcp(1234, 1883, 1, 2, kTcpAck)
      .payload("after ext");
  Bytes f = b.build();
  PacketMeta m;
  ASSERT_EQ(decode(f, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.l4_proto, kProtoTcp);
  EXPECT_EQ(m.l4_offset, 14 + 40 + 8 + 16 + 8);
  EXPECT_EQ(m.l4_offset, b.l4_offset());
  EXPECT_EQ(m.payload_offset, b.payload_offset());
  EXPECT_EQ(m.payload_len, 9);
  EXPECT_EQ(m.src_port, 1234);
  expect_ip(m.src_ip, kSrc6);
  expect_ip(m.dst_ip, kDst6);
}

TEST(DecodePacket, Ipv6ExtensionHeaderChainsUpToTheLimitAreWalked) {
  PacketBuilder most;
  most.ipv6(kSrc6, kDst6).tcp(1, 2).payload("p");
  for (unsigned i = 0; i < kMaxIpv6ExtHeaders; ++i) most.ipv6_ext(i % 2 ? test::kIpv6DestOpts : test::kIpv6HopByHop);
  PacketMeta m;
  ASSERT_EQ(decode(most.build(), &m), DecodeStatus::kOk);
  EXPECT_EQ(m.l4_offset, 14 + 40 + 8 * kMaxIpv6ExtHeaders);
  EXPECT_EQ(m.payload_len, 1);

  PacketBuilder too_many = most;
  too_many.ipv6_ext(test::kIpv6DestOpts);
  EXPECT_EQ(decode(too_many.build(), &m), DecodeStatus::kBadHeader);
}

TEST(DecodePacket, Ipv6AuthenticationHeaderIsWalkedByItsOwnLengthUnit) {
  // AH counts 4-byte units minus 2: length 4 means 24 bytes.
  Bytes ah(22, 0);
  ah[0] = 4;
  Bytes f = PacketBuilder().ipv6(kSrc6, kDst6).ipv6_ext(51, ah).tcp(1, 1883).payload("x").build();
  f[14 + 40 + 1] = 4;
  // The builder pads to 8-byte multiples (24 is one), so the TCP header follows at 24.
  PacketMeta m;
  ASSERT_EQ(decode(f, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.l4_offset, 14 + 40 + 24);
  EXPECT_EQ(m.dst_port, 1883);
}

TEST(DecodePacket, Ipv6AtomicFragmentIsAnOrdinaryPacket) {
  // RFC 6946: offset 0 and no more fragments: processed as if unfragmented.
  Bytes f = PacketBuilder()
                .ipv6(kSrc6, kDst6)
                .ipv6_ext(test::kIpv6HopByHop)
                .ipv6_ext(test::kIpv6Fragment, {0, 0, 0, 0, 0, 9})
                .tcp(4000, 1883)
                .payload("atomic")
                .build();
  PacketMeta m;
  ASSERT_EQ(decode(f, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.l4_proto, kProtoTcp);
  EXPECT_EQ(m.dst_port, 1883);
  EXPECT_EQ(m.payload_len, 6);
}

TEST(DecodePacket, FragmentFieldsDescribeTheFragment) {
  PacketMeta m;
  Bytes v4 = PacketBuilder()
                 .ipv4(kSrc4, kDst4)
                 .ipv4_fragment(false, true, 3)
                 .raw_l4(kProtoTcp, test::to_bytes("12345678"))
                 .build();
  test::put_be16(v4, 14 + 4, 0xbeef);
  ASSERT_EQ(decode(v4, &m), DecodeStatus::kFragment);
  EXPECT_EQ(m.frag_id, 0xbeefu);
  EXPECT_EQ(m.frag_offset, 24);
  EXPECT_TRUE(m.frag_more);
  EXPECT_EQ(m.l4_proto, kProtoTcp);
  EXPECT_EQ(m.payload_offset, 34);
  EXPECT_EQ(m.payload_len, 8);

  Bytes v6 = PacketBuilder()
                 .ipv6(kSrc6, kDst6)
                 .ipv6_ext(test::kIpv6DestOpts)
                 .ipv6_ext(test::kIpv6Fragment, {0x00, 0x10, 0x12, 0x34, 0x56, 0x78})  // offset 16, last
                 .raw_l4(kProtoUdp, test::to_bytes("abcdefgh"))
                 .build();
  ASSERT_EQ(decode(v6, &m), DecodeStatus::kFragment);
  EXPECT_EQ(m.frag_header, 14 + 40 + 8);
  EXPECT_EQ(m.frag_id, 0x12345678u);
  EXPECT_EQ(m.frag_offset, 16);
  EXPECT_FALSE(m.frag_more);
  EXPECT_EQ(m.l4_proto, kProtoUdp);
  EXPECT_EQ(m.payload_offset, 14 + 40 + 16);
  EXPECT_EQ(m.payload_len, 8);
}

// Wraps an Ethernet IP frame's L3 in an outer header `shim` with EtherType `type`.
Bytes wrapped(const Bytes& frame, uint16_t type, const Bytes& shim) {
  Bytes out(frame.begin(), frame.begin() + 12);
  out.push_back(static_cast<uint8_t>(type >> 8));
  out.push_back(static_cast<uint8_t>(type));
  test::append(out, shim);
  out.insert(out.end(), frame.begin() + 14, frame.end());
  return out;
}

TEST(DecodePacket, IpInsideMplsLabelStacksIsDecoded) {
  Bytes v4 = PacketBuilder().tcp(40000, 1883).payload("m").build();
  Bytes v6 = PacketBuilder().ipv6(kSrc6, kDst6).tcp(40000, 1883).payload("m").build();
  const Bytes two_labels = {0x00, 0x01, 0x00, 64, 0x00, 0x02, 0x01, 64};  // the second is the bottom
  PacketMeta m;
  ASSERT_EQ(decode(wrapped(v4, 0x8847, two_labels), &m), DecodeStatus::kOk);
  EXPECT_EQ(m.l3_offset, 22);
  EXPECT_EQ(m.dst_port, 1883);
  ASSERT_EQ(decode(wrapped(v6, 0x8847, two_labels), &m), DecodeStatus::kOk);
  EXPECT_EQ(m.ip_version, 6);
  Bytes nine;
  for (int i = 0; i < 9; ++i) test::append(nine, Bytes{0, 0, 0, 64});
  nine[nine.size() - 2] = 1;
  EXPECT_EQ(decode(wrapped(v4, 0x8847, nine), &m), DecodeStatus::kBadHeader);
  // A stack whose bottom never comes runs off the frame.
  Bytes open_stack = wrapped(v4, 0x8847, {0, 0, 0, 64});
  open_stack.resize(14 + 4 + 2);
  EXPECT_EQ(decode(open_stack, &m), DecodeStatus::kTruncated);
}

TEST(DecodePacket, IpInsideAPppoeSessionIsDecoded) {
  Bytes v4 = PacketBuilder().tcp(40000, 1883).payload("p").build();
  uint16_t ip_len = static_cast<uint16_t>(v4.size() - 14);
  Bytes shim = {0x11, 0x00, 0x12, 0x34, static_cast<uint8_t>((ip_len + 2) >> 8), static_cast<uint8_t>(ip_len + 2),
                0x00, 0x21};
  PacketMeta m;
  ASSERT_EQ(decode(wrapped(v4, 0x8864, shim), &m), DecodeStatus::kOk);
  EXPECT_EQ(m.pppoe_offset, 14);
  EXPECT_EQ(m.l3_offset, 22);
  EXPECT_EQ(m.dst_port, 1883);
  shim[7] = 0x23;  // another PPP protocol (LCP is 0xc021): not IP
  EXPECT_EQ(decode(wrapped(v4, 0x8864, shim), &m), DecodeStatus::kNonIp);
}

TEST(DecodePacket, TwoVlanTagsAreDecodedThreeAreNot) {
  Bytes f = PacketBuilder().vlan(0x0123).tcp(40000, 1883).payload("x").build();
  // Put an 802.1ad service tag in front of the customer tag.
  Bytes qinq(f.begin(), f.begin() + 12);
  for (uint8_t b : {0x88, 0xa8, 0x00, 0x64}) qinq.push_back(b);
  qinq.insert(qinq.end(), f.begin() + 12, f.end());
  PacketMeta m;
  ASSERT_EQ(decode(qinq, &m), DecodeStatus::kOk);
  EXPECT_TRUE(m.has_vlan);
  EXPECT_EQ(m.vlan_tci, 0x0123);  // the innermost tag
  EXPECT_EQ(m.l3_offset, 22);
  EXPECT_EQ(m.dst_port, 1883);
  Bytes triple(qinq.begin(), qinq.begin() + 12);
  for (uint8_t b : {0x81, 0x00, 0x00, 0x07}) triple.push_back(b);
  triple.insert(triple.end(), qinq.begin() + 12, qinq.end());
  EXPECT_EQ(decode(triple, &m), DecodeStatus::kBadHeader);
}

TEST(DecodePacket, SynOptionsGiveTheWindowScaleAndTtlIsKept) {
  PacketMeta m;
  Bytes syn = PacketBuilder()
                  .tcp(40000, 1883, 1, 0, kTcpSyn)
                  .tcp_options({0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07})
                  .tcp_window(1234)
                  .build();
  syn[14 + 8] = 3;  // TTL
  ASSERT_EQ(decode(syn, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.tcp_wscale, 7);
  EXPECT_EQ(m.tcp_window, 1234);
  EXPECT_EQ(m.ttl, 3);
  // Not a SYN: options are not looked at; a SYN without the option has none.
  ASSERT_EQ(decode(PacketBuilder().tcp(1, 2, 1, 0, kTcpSyn).build(), &m), DecodeStatus::kOk);
  EXPECT_EQ(m.tcp_wscale, 0xff);
  // A lying option length ends the walk without reading past the header.
  ASSERT_EQ(decode(PacketBuilder().tcp(1, 2, 1, 0, kTcpSyn).tcp_options({0x01, 0x03, 0x09, 0x07}).build(), &m),
            DecodeStatus::kOk);
  EXPECT_EQ(m.tcp_wscale, 0xff);
}

TEST(DecodePacket, Ipv6ExtensionHeaderPastPayloadIsTruncated) {
  Bytes f = PacketBuilder().ipv6(kSrc6, kDst6).ipv6_ext(test::kIpv6HopByHop).tcp(1, 2).build();
  f[14 + 40 + 1] = 10;  // claims 88 bytes
  PacketMeta m;
  EXPECT_EQ(decode(f, &m), DecodeStatus::kTruncated);
  // Only the IPv6 payload length counts, not bytes left in the frame.
  Bytes g = PacketBuilder().ipv6(kSrc6, kDst6).ipv6_ext(test::kIpv6HopByHop).tcp(1, 2).pad_to(200).build();
  test::put_be16(g, 14 + test::kOffIpv6PayloadLen, 4);
  EXPECT_EQ(decode(g, &m), DecodeStatus::kTruncated);
}

TEST(DecodePacket, VlanTaggedIpv4) {
  PacketBuilder b;
  b.vlan(0xa123).ipv4(kSrc4, kDst4).tcp(40000, 1883, 5, 6, kTcpFin | kTcpAck).payload("vlan");
  Bytes f = b.build();
  PacketMeta m;
  ASSERT_EQ(decode(f, &m), DecodeStatus::kOk);
  EXPECT_TRUE(m.has_vlan);
  EXPECT_EQ(m.vlan_tci, 0xa123);
  EXPECT_EQ(m.l3_offset, 18);
  EXPECT_EQ(m.l4_offset, 38);
  EXPECT_EQ(m.payload_offset, 58);
  EXPECT_EQ(m.payload_len, 4);
  EXPECT_EQ(m.tcp_flags, kTcpFin | kTcpAck);
  expect_ip(m.src_ip, kSrc4);
}

TEST(DecodePacket, VlanTaggedIpv6) {
  Bytes f = PacketBuilder().vlan(7).ipv6(kSrc6, kDst6).udp(1, 2).payload("x").build();
  PacketMeta m;
  ASSERT_EQ(decode(f, &m), DecodeStatus::kOk);
  EXPECT_TRUE(m.has_vlan);
  EXPECT_EQ(m.vlan_tci, 7);
  EXPECT_EQ(m.l3_offset, 18);
  EXPECT_EQ(m.payload_offset, 18 + 40 + 8);
}

TEST(DecodePacket, EthernetPaddingIsNotPayload) {
  Bytes tcp = PacketBuilder().tcp(1, 2).pad_to(60).build();  // 54 bytes of headers + 6 padding
  ASSERT_EQ(tcp.size(), 60u);
  PacketMeta m;
  ASSERT_EQ(decode(tcp, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.payload_offset, 54);
  EXPECT_EQ(m.payload_len, 0);

  Bytes udp = PacketBuilder().udp(1, 2).payload("ab").pad_to(60).build();
  ASSERT_EQ(udp.size(), 60u);
  ASSERT_EQ(decode(udp, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.payload_len, 2);

  Bytes tcp_data = PacketBuilder().vlan(1).tcp(1, 2).payload("a").pad_to(64).build();
  ASSERT_EQ(decode(tcp_data, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.payload_len, 1);

  // IPv6: the padding is outside the payload length too.
  Bytes v6 = PacketBuilder().ipv6(kSrc6, kDst6).tcp(1, 2).payload("q").pad_to(120).build();
  ASSERT_EQ(decode(v6, &m), DecodeStatus::kOk);
  EXPECT_EQ(m.payload_len, 1);
}

// ---- Not decoded --------------------------------------------------------------------------------

TEST(DecodePacket, NonIpFrames) {
  const Bytes arp_body(28, 0x11);
  struct Case {
    const char* name;
    Bytes frame;
    bool vlan;
  } cases[] = {
      {"arp", PacketBuilder().ethertype(test::kEtherArp).payload(arp_body).build(), false},
      {"arp_in_vlan", PacketBuilder().vlan(3).ethertype(test::kEtherArp).payload(arp_body).build(), true},
      {"lldp", PacketBuilder().ethertype(0x88cc).payload(Bytes(40, 0)).build(), false},
      {"qinq_tag_then_no_ip", PacketBuilder().ethertype(0x88a8).payload(Bytes(60, 0)).build(), true},
      {"eth_header_only", PacketBuilder().ethertype(test::kEtherArp).build(), false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    PacketMeta m;
    EXPECT_EQ(decode(c.frame, &m), DecodeStatus::kNonIp);
    EXPECT_EQ(m.has_vlan, c.vlan);
    EXPECT_EQ(m.l3_offset, c.vlan ? 18 : 14);
  }
}

TEST(DecodePacket, FramesAboveSixteenBitsAreRejected) {
  Bytes f = PacketBuilder().tcp(1, 2).payload(Bytes(1000, 'a')).build();
  f.resize(70000, 0);
  PacketMeta m;
  EXPECT_EQ(decode(f, &m), DecodeStatus::kBadHeader);
}

struct BadCase {
  const char* name;
  Bytes frame;
  DecodeStatus expected;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

Bytes patched(Bytes f, size_t off, uint8_t v) {
  f.at(off) = v;
  return f;
}
Bytes patched16(Bytes f, size_t off, uint16_t v) {
  test::put_be16(f, off, v);
  return f;
}
Bytes truncated(Bytes f, size_t len) {
  f.resize(len);
  return f;
}

const Bytes kTcp4 = PacketBuilder().ipv4(kSrc4, kDst4).tcp(1, 2).payload("data").build();  // 58 bytes
const Bytes kUdp4 = PacketBuilder().ipv4(kSrc4, kDst4).udp(1, 2).payload("data").build();  // 46 bytes
const Bytes kTcp6 = PacketBuilder().ipv6(kSrc6, kDst6).tcp(1, 2).payload("data").build();  // 78 bytes
const Bytes kVlanTcp4 = PacketBuilder().vlan(5).tcp(1, 2).payload("data").build();         // 62 bytes

// IPv4 + TCP where the IP total length leaves only `tcp_bytes` for the TCP header.
Bytes short_tcp4(size_t tcp_bytes) {
  Bytes f = truncated(kTcp4, 34 + tcp_bytes);
  test::put_be16(f, 14 + test::kOffIpv4TotalLen, static_cast<uint16_t>(20 + tcp_bytes));
  return f;
}

class MalformedFrameTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(MalformedFrameTest, IsRejected) {
  const BadCase& c = GetParam();
  PacketMeta m;
  EXPECT_EQ(decode(c.frame, &m), c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Decode, MalformedFrameTest,
    ::testing::Values(
        // Truncated at each header.
        BadCase{"empty", {}, DecodeStatus::kTruncated},
        BadCase{"eth_13", truncated(kTcp4, 13), DecodeStatus::kTruncated},
        BadCase{"vlan_tag_cut", truncated(kVlanTcp4, 17), DecodeStatus::kTruncated},
        BadCase{"vlan_tag_no_ip", truncated(kVlanTcp4, 18), DecodeStatus::kTruncated},
        BadCase{"ipv4_header_cut", truncated(kTcp4, 14 + 19), DecodeStatus::kTruncated},
        BadCase{"ipv4_options_cut", truncated(PacketBuilder().ipv4_options(Bytes(8, 1)).tcp(1, 2).build(), 14 + 24),
                DecodeStatus::kTruncated},
        BadCase{"ipv6_header_cut", truncated(kTcp6, 14 + 39), DecodeStatus::kTruncated},
        BadCase{"tcp_header_cut_by_frame", truncated(kTcp4, 34 + 19), DecodeStatus::kTruncated},
        BadCase{"tcp_header_cut_by_ip_length", short_tcp4(10), DecodeStatus::kTruncated},
        BadCase{"tcp_options_cut_by_ip_length", patched(short_tcp4(20), 34 + 12, 0x80), DecodeStatus::kTruncated},
        BadCase{"udp_header_cut", truncated(patched16(kUdp4, 14 + 2, 20 + 4), 14 + 24), DecodeStatus::kTruncated},
        BadCase{"udp_length_past_ip", patched16(kUdp4, 34 + 4, 8 + 5), DecodeStatus::kTruncated},
        BadCase{"ipv6_tcp_cut_by_payload_length", patched16(kTcp6, 14 + 4, 12), DecodeStatus::kTruncated},
        // Lengths larger than the frame.
        BadCase{"ipv4_total_length_past_frame", patched16(kTcp4, 14 + 2, 45), DecodeStatus::kTruncated},
        BadCase{"ipv4_total_length_max", patched16(kTcp4, 14 + 2, 0xffff), DecodeStatus::kTruncated},
        BadCase{"ipv6_payload_length_past_frame", patched16(kTcp6, 14 + 4, 25), DecodeStatus::kTruncated},
        BadCase{"vlan_ipv4_total_length_past_frame", patched16(kVlanTcp4, 18 + 2, 45), DecodeStatus::kTruncated},
        // Impossible fields.
        BadCase{"ipv4_ihl_4", patched(kTcp4, 14, 0x44), DecodeStatus::kBadHeader},
        BadCase{"ipv4_ihl_0", patched(kTcp4, 14, 0x40), DecodeStatus::kBadHeader},
        BadCase{"ipv4_total_below_ihl", patched16(kTcp4, 14 + 2, 19), DecodeStatus::kBadHeader},
        BadCase{"ipv4_ethertype_version_6", patched(kTcp4, 14, 0x65), DecodeStatus::kBadHeader},
        BadCase{"ipv4_ethertype_version_0", patched(kTcp4, 14, 0x05), DecodeStatus::kBadHeader},
        BadCase{"ipv6_ethertype_version_4", patched(kTcp6, 14, 0x45), DecodeStatus::kBadHeader},
        BadCase{"tcp_data_offset_4", patched(kTcp4, 34 + 12, 0x40), DecodeStatus::kBadHeader},
        BadCase{"tcp_data_offset_0", patched(kTcp4, 34 + 12, 0x00), DecodeStatus::kBadHeader},
        BadCase{"ipv6_tcp_data_offset_4", patched(kTcp6, 54 + 12, 0x40), DecodeStatus::kBadHeader},
        BadCase{"udp_length_7", patched16(kUdp4, 34 + 4, 7), DecodeStatus::kBadHeader},
        BadCase{"udp_length_0", patched16(kUdp4, 34 + 4, 0), DecodeStatus::kBadHeader},
        // Fragments.
        BadCase{"ipv4_more_fragments", PacketBuilder().ipv4_fragment(false, true, 0).tcp(1, 2).build(),
                DecodeStatus::kFragment},
        BadCase{"ipv4_offset_nonzero", PacketBuilder().ipv4_fragment(false, false, 185).tcp(1, 2).build(),
                DecodeStatus::kFragment},
        BadCase{"ipv4_offset_1_df", PacketBuilder().ipv4_fragment(true, false, 1).udp(1, 2).build(),
                DecodeStatus::kFragment},
        BadCase{"ipv4_middle_fragment",
                PacketBuilder().ipv4_fragment(false, true, 0x1fff).ip_proto(6).payload("x").build(),
                DecodeStatus::kFragment},
        BadCase{"ipv6_fragment_header",
                PacketBuilder().ipv6(kSrc6, kDst6).ipv6_ext(test::kIpv6Fragment, {0, 1, 0, 0, 0, 7}).tcp(1, 2).build(),
                DecodeStatus::kFragment},
        BadCase{"ipv6_fragment_after_hop_by_hop",
                PacketBuilder()
                    .ipv6(kSrc6, kDst6)
                    .ipv6_ext(test::kIpv6HopByHop)
                    .ipv6_ext(test::kIpv6Fragment, {0, 1, 0, 0, 0, 9})
                    .udp(1, 2)
                    .build(),
                DecodeStatus::kFragment}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(DecodePacket, Ipv4DontFragmentAloneIsNotAFragment) {
  PacketMeta m;
  EXPECT_EQ(decode(PacketBuilder().ipv4_fragment(true, false, 0).tcp(1, 2).build(), &m), DecodeStatus::kOk);
  EXPECT_EQ(decode(PacketBuilder().ipv4_fragment(false, false, 0).tcp(1, 2).build(), &m), DecodeStatus::kOk);
  // The reserved (evil) bit is not a fragment bit either.
  Bytes f = PacketBuilder().ipv4_fragment(false, false, 0).tcp(1, 2).build();
  f[14 + test::kOffIpv4Frag] |= 0x80;
  EXPECT_EQ(decode(f, &m), DecodeStatus::kOk);
}

TEST(DecodePacket, FragmentStillReportsAddresses) {
  PacketMeta m;
  ASSERT_EQ(decode(PacketBuilder().ipv4(kSrc4, kDst4).ipv4_fragment(false, true, 0).tcp(1, 2).build(), &m),
            DecodeStatus::kFragment);
  EXPECT_EQ(m.ip_version, 4);
  expect_ip(m.src_ip, kSrc4);
  expect_ip(m.dst_ip, kDst4);
  ASSERT_EQ(decode(PacketBuilder().ipv6(kSrc6, kDst6).ipv6_ext(test::kIpv6Fragment, {0, 1}).tcp(1, 2).build(), &m),
            DecodeStatus::kFragment);
  EXPECT_EQ(m.ip_version, 6);
  expect_ip(m.dst_ip, kDst6);
}

TEST(DecodePacket, MetaIsResetBetweenCalls) {
  PacketMeta m;
  ASSERT_EQ(decode(PacketBuilder().vlan(9).tcp(5, 6, 7, 8, kTcpSyn).payload("abc").build(), &m), DecodeStatus::kOk);
  ASSERT_EQ(decode(PacketBuilder().ethertype(test::kEtherArp).payload(Bytes(28, 0)).build(), &m), DecodeStatus::kNonIp);
  EXPECT_FALSE(m.has_vlan);
  EXPECT_EQ(m.src_port, 0);
  EXPECT_EQ(m.seq, 0u);
  EXPECT_EQ(m.payload_len, 0);
  EXPECT_EQ(m.ip_version, 0);
}

// ---- Every truncation --------------------------------------------------------------------------

TEST(DecodePacket, EveryTruncationIsSafe) {
  const std::vector<std::pair<const char*, Bytes>> frames = {
      {"ipv4_tcp", kTcp4},
      {"ipv4_udp", kUdp4},
      {"ipv6_tcp", kTcp6},
      {"vlan_ipv4_tcp", kVlanTcp4},
      {"ipv4_options_tcp_options",
       PacketBuilder().ipv4_options(Bytes(12, 1)).tcp(1, 2).tcp_options(Bytes(12, 1)).payload("payload").build()},
      {"ipv6_ext_udp", PacketBuilder()
                           .vlan(2)
                           .ipv6(kSrc6, kDst6)
                           .ipv6_ext(test::kIpv6HopByHop, Bytes(6, 0))
                           .ipv6_ext(test::kIpv6DestOpts, Bytes(14, 0))
                           .udp(1, 2)
                           .payload("payload")
                           .build()},
  };
  for (const auto& [name, full] : frames) {
    PacketMeta m;
    ASSERT_EQ(decode(full, &m), DecodeStatus::kOk) << name;
    for (size_t len = 0; len < full.size(); ++len) {
      SCOPED_TRACE(::testing::Message() << name << " cut to " << len);
      DecodeStatus st = decode(full, &m, len);
      // Unpadded frames: the IP length then always runs past the end.
      EXPECT_TRUE(st == DecodeStatus::kTruncated) << "status " << static_cast<int>(st);
      if (st == DecodeStatus::kOk) {
        EXPECT_LE(m.l4_offset, len);
        EXPECT_LE(size_t{m.payload_offset} + m.payload_len, len);
      }
    }
  }
}

TEST(DecodePacket, TruncatingPaddingStillDecodesWithinTheFrame) {
  Bytes f = PacketBuilder().udp(1, 2).payload("ab").pad_to(60).build();
  for (size_t len = 0; len <= f.size(); ++len) {
    SCOPED_TRACE(len);
    PacketMeta m;
    DecodeStatus st = decode(f, &m, len);
    EXPECT_EQ(st, len >= 44 ? DecodeStatus::kOk : DecodeStatus::kTruncated);
    if (st == DecodeStatus::kOk) {
      EXPECT_EQ(m.payload_len, 2);
      EXPECT_LE(size_t{m.payload_offset} + m.payload_len, len);
    }
  }
}

// Random bytes behind valid-looking headers: never an overread, never offsets past the frame.
TEST(DecodePacket, RandomMutationsStayInBounds) {
  std::vector<Bytes> seeds = {kTcp4, kUdp4, kTcp6, kVlanTcp4,
                              PacketBuilder().ipv6(kSrc6, kDst6).ipv6_ext(test::kIpv6HopByHop).udp(1, 2).build()};
  uint64_t x = 0x9e3779b97f4a7c15ull;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int iter = 0; iter < 20000; ++iter) {
    Bytes f = seeds[next() % seeds.size()];
    int n = 1 + static_cast<int>(next() % 4);
    for (int i = 0; i < n; ++i) f[next() % f.size()] = static_cast<uint8_t>(next());
    if (next() % 4 == 0) f.resize(next() % (f.size() + 1));
    PacketMeta m;
    if (decode(f, &m) == DecodeStatus::kOk) {
      ASSERT_LE(m.l3_offset, f.size());
      ASSERT_LE(m.l4_offset, f.size());
      ASSERT_LE(size_t{m.payload_offset} + m.payload_len, f.size()) << "iteration " << iter;
      ASSERT_TRUE(m.ip_version == 4 || m.ip_version == 6);
    }
  }
}

}  // namespace
}  // namespace imf::dp::decode
