// Ethernet / IPv4 / TCP or UDP frames with correct IPv4 header and L4 checksums.
#pragma once

#include <cstdint>

namespace imf::bench::synth {

inline constexpr uint32_t kMss = 1460;
inline constexpr uint32_t kEthHeader = 14;
inline constexpr uint32_t kIpHeader = 20;
inline constexpr uint32_t kTcpHeader = 20;
inline constexpr uint32_t kMaxFrame = kEthHeader + kIpHeader + kTcpHeader + kMss;  // 1514
inline constexpr uint32_t kMinFrame = 60;  // 64 on the wire with the FCS; shorter frames are padded

inline constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpPsh = 0x08, kTcpAck = 0x10;

// Addresses and ports in host order; `to_server` picks the MAC pair.
struct L4Addr {
  uint32_t src_ip;
  uint32_t dst_ip;
  uint16_t src_port;
  uint16_t dst_port;
  bool to_server;
};

struct TcpFields {
  uint32_t seq;
  uint32_t ack;
  uint8_t flags;
  bool mss_option;  // SYN and SYN-ACK carry MSS 1460
};

// Writes a frame with `len` bytes of payload (len <= kMss) into `out` (at least kMaxFrame bytes)
// and returns the frame length, padded with zeros to kMinFrame. `ip_id` is the IPv4 id; the IPv4
// don't-fragment bit is set unless `dont_fragment` is false.
uint32_t write_tcp_frame(uint8_t* out, const L4Addr& a, const TcpFields& t, uint16_t ip_id, const uint8_t* payload,
                         uint32_t len, bool dont_fragment = true);
uint32_t write_udp_frame(uint8_t* out, const L4Addr& a, uint16_t ip_id, const uint8_t* payload, uint32_t len);

// Writes into `out` (at least kMaxFrame bytes) the IPv4 fragment of `whole` that carries bytes
// [offset, offset + len) of its IP payload, and returns the frame length, padded to kMinFrame.
// `whole` is an unfragmented frame as write_tcp_frame/write_udp_frame write it (20-byte IPv4
// header, DF clear); the fragment keeps its Ethernet and IPv4 header but for the total length,
// the fragment offset (`offset`, a multiple of 8), more-fragments (set unless the fragment ends
// the payload) and the header checksum.
uint32_t write_ipv4_fragment(uint8_t* out, const uint8_t* whole, uint32_t offset, uint32_t len);

// Internet checksum over `n` bytes, added to `acc`, in the byte order of memory (RFC 1071: fold
// and complement, then store the result with memcpy). Exposed for the tests of the checksums.
uint64_t checksum_add(const uint8_t* p, uint32_t n, uint64_t acc);
uint16_t checksum_finish(uint64_t acc);

}  // namespace imf::bench::synth
