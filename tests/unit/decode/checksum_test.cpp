#include "decode/checksum.h"

#include <gtest/gtest.h>

#include <string>

#include "packet_builder.h"

namespace imf::dp::decode {
namespace {

using test::Bytes;
using test::PacketBuilder;

constexpr test::Ip6 kSrc6{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
constexpr test::Ip6 kDst6{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

PacketMeta decoded(const Bytes& f) {
  PacketMeta m;
  EXPECT_EQ(decode_packet(f.data(), static_cast<uint32_t>(f.size()), &m), DecodeStatus::kOk);
  return m;
}

TEST(Checksum, BuiltFramesVerifyAtEveryPayloadLength) {
  // Odd and even lengths, and lengths around the 16-byte stride, for all four L3/L4 pairs.
  for (size_t n = 0; n < 40; ++n) {
    std::string body(n, 'a');
    for (size_t i = 0; i < n; ++i) body[i] = static_cast<char>('a' + i * 7 % 26);
    Bytes frames[] = {
        PacketBuilder().tcp(40000, 1883, 7, 9, kTcpAck | kTcpPsh).payload(body).build(),
        PacketBuilder().udp(5060, 5060).payload(body).build(),
        PacketBuilder().ipv6(kSrc6, kDst6).tcp(40000, 1883, 7, 9).payload(body).build(),
        PacketBuilder().ipv6(kSrc6, kDst6).udp(5060, 5060).payload(body).build(),
    };
    for (const Bytes& f : frames) {
      SCOPED_TRACE("payload " + std::to_string(n));
      PacketMeta m = decoded(f);
      EXPECT_TRUE(l4_checksum_ok(f.data(), m));
      if (m.ip_version == 4) {
        EXPECT_TRUE(ipv4_header_checksum_ok(f.data(), m));
      }
    }
  }
}

TEST(Checksum, AnyFlippedBitIsCaught) {
  Bytes f = PacketBuilder().tcp(40000, 1883, 7, 9).payload("free money here").build();
  PacketMeta m = decoded(f);
  for (size_t at = m.l4_offset; at < f.size(); ++at) {
    Bytes g = f;
    g[at] ^= 0x10;
    EXPECT_FALSE(l4_checksum_ok(g.data(), m)) << "byte " << at;
  }
  Bytes h = f;
  h[14 + 8] ^= 1;  // TTL
  EXPECT_FALSE(ipv4_header_checksum_ok(h.data(), m));
}

TEST(Checksum, UdpZeroMeansNoneOnIpv4OnlyAndIpv4HeaderOptionsCount) {
  Bytes v4 = PacketBuilder().udp(1, 5060).payload("x").build();
  PacketMeta m = decoded(v4);
  test::put_be16(v4, m.l4_offset + 6, 0);
  EXPECT_TRUE(l4_checksum_ok(v4.data(), m));
  Bytes v6 = PacketBuilder().ipv6(kSrc6, kDst6).udp(1, 5060).payload("x").build();
  m = decoded(v6);
  test::put_be16(v6, m.l4_offset + 6, 0);
  EXPECT_FALSE(l4_checksum_ok(v6.data(), m));
  Bytes opts = PacketBuilder().ipv4_options({0x94, 0x04, 0, 0}).tcp(1, 2).build();
  m = decoded(opts);
  EXPECT_TRUE(ipv4_header_checksum_ok(opts.data(), m));
  opts[14 + 21] ^= 4;
  EXPECT_FALSE(ipv4_header_checksum_ok(opts.data(), m));
}

TEST(Checksum, IncrementalUpdateEqualsARecomputation) {
  // Clear URG and the urgent pointer, raise the TTL: the patched frame verifies like a rebuilt one.
  Bytes f = PacketBuilder().tcp(40000, 1883, 7, 9, kTcpAck | kTcpUrg).payload("xy").build();
  PacketMeta m = decoded(f);
  f[m.l4_offset + 19] = 1;  // urgent pointer 1, then fix the checksum as a sender would
  checksum_update16(&f[m.l4_offset + 16], 0, 1);
  ASSERT_TRUE(l4_checksum_ok(f.data(), m));
  uint16_t old_word = static_cast<uint16_t>(f[m.l4_offset + 12] << 8 | f[m.l4_offset + 13]);
  f[m.l4_offset + 13] &= static_cast<uint8_t>(~kTcpUrg);
  uint16_t new_word = static_cast<uint16_t>(f[m.l4_offset + 12] << 8 | f[m.l4_offset + 13]);
  checksum_update16(&f[m.l4_offset + 16], old_word, new_word);
  f[m.l4_offset + 19] = 0;
  checksum_update16(&f[m.l4_offset + 16], 1, 0);
  EXPECT_TRUE(l4_checksum_ok(f.data(), m));
  uint16_t ttl_word = static_cast<uint16_t>(f[22] << 8 | f[23]);
  f[22] = 200;
  checksum_update16(&f[24], ttl_word, static_cast<uint16_t>(f[22] << 8 | f[23]));
  EXPECT_TRUE(ipv4_header_checksum_ok(f.data(), m));
}

}  // namespace
}  // namespace imf::dp::decode
