#include "frame.h"

#include <bit>
#include <cstring>

namespace imf::bench::synth {

static_assert(std::endian::native == std::endian::little, "frame and log writers assume a little-endian host");

namespace {

constexpr uint8_t kClientMac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr uint8_t kServerMac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17;
constexpr uint16_t kWindow = 64240;

inline void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
inline void store_checksum(uint8_t* p, uint16_t c) { std::memcpy(p, &c, 2); }

// Ethernet + IPv4 header for an L4 segment of `l4_len` bytes; returns the L4 header position.
uint8_t* write_eth_ip(uint8_t* out, const L4Addr& a, uint8_t proto, uint16_t ip_id, uint32_t l4_len,
                      bool dont_fragment) {
  std::memcpy(out, a.to_server ? kServerMac : kClientMac, 6);
  std::memcpy(out + 6, a.to_server ? kClientMac : kServerMac, 6);
  put16(out + 12, 0x0800);
  uint8_t* ip = out + kEthHeader;
  ip[0] = 0x45;
  ip[1] = 0;
  put16(ip + 2, static_cast<uint16_t>(kIpHeader + l4_len));
  put16(ip + 4, ip_id);
  put16(ip + 6, dont_fragment ? 0x4000 : 0);
  ip[8] = 64;
  ip[9] = proto;
  put16(ip + 10, 0);
  put32(ip + 12, a.src_ip);
  put32(ip + 16, a.dst_ip);
  store_checksum(ip + 10, checksum_finish(checksum_add(ip, kIpHeader, 0)));
  return ip + kIpHeader;
}

uint64_t pseudo_header_sum(const uint8_t* ip, uint8_t proto, uint32_t l4_len) {
  uint8_t ph[4] = {0, proto, static_cast<uint8_t>(l4_len >> 8), static_cast<uint8_t>(l4_len)};
  return checksum_add(ph, 4, checksum_add(ip + 12, 8, 0));
}

uint32_t pad(uint8_t* out, uint32_t len) {
  if (len >= kMinFrame) return len;
  std::memset(out + len, 0, kMinFrame - len);
  return kMinFrame;
}

}  // namespace

uint64_t checksum_add(const uint8_t* p, uint32_t n, uint64_t acc) {
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    acc += (w & 0xffffffffu) + (w >> 32);
  }
  if (n >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    acc += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    acc += w;
    p += 2;
    n -= 2;
  }
  if (n) acc += *p;  // the odd byte is the high-order byte of a zero-padded word: low in memory order
  return acc;
}

uint16_t checksum_finish(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(~acc);
}

uint32_t write_tcp_frame(uint8_t* out, const L4Addr& a, const TcpFields& t, uint16_t ip_id, const uint8_t* payload,
                         uint32_t len, bool dont_fragment) {
  uint32_t hdr = kTcpHeader + (t.mss_option ? 4 : 0);
  uint8_t* ip = out + kEthHeader;
  uint8_t* tcp = write_eth_ip(out, a, kProtoTcp, ip_id, hdr + len, dont_fragment);
  put16(tcp, a.src_port);
  put16(tcp + 2, a.dst_port);
  put32(tcp + 4, t.seq);
  put32(tcp + 8, t.ack);
  tcp[12] = static_cast<uint8_t>((hdr / 4) << 4);
  tcp[13] = t.flags;
  put16(tcp + 14, kWindow);
  put16(tcp + 16, 0);
  put16(tcp + 18, 0);
  if (t.mss_option) {
    tcp[20] = 2;
    tcp[21] = 4;
    put16(tcp + 22, kMss);
  }
  if (len) std::memcpy(tcp + hdr, payload, len);
  uint64_t sum = checksum_add(tcp, hdr + len, pseudo_header_sum(ip, kProtoTcp, hdr + len));
  store_checksum(tcp + 16, checksum_finish(sum));
  return pad(out, kEthHeader + kIpHeader + hdr + len);
}

uint32_t write_udp_frame(uint8_t* out, const L4Addr& a, uint16_t ip_id, const uint8_t* payload, uint32_t len) {
  uint32_t l4 = 8 + len;
  uint8_t* ip = out + kEthHeader;
  uint8_t* udp = write_eth_ip(out, a, kProtoUdp, ip_id, l4, true);
  put16(udp, a.src_port);
  put16(udp + 2, a.dst_port);
  put16(udp + 4, static_cast<uint16_t>(l4));
  put16(udp + 6, 0);
  if (len) std::memcpy(udp + 8, payload, len);
  uint16_t c = checksum_finish(checksum_add(udp, l4, pseudo_header_sum(ip, kProtoUdp, l4)));
  if (c == 0) c = 0xffff;  // 0 means "no checksum" in UDP
  store_checksum(udp + 6, c);
  return pad(out, kEthHeader + kIpHeader + l4);
}

uint32_t write_ipv4_fragment(uint8_t* out, const uint8_t* whole, uint32_t offset, uint32_t len) {
  const uint8_t* whole_ip = whole + kEthHeader;
  uint32_t payload = ((whole_ip[2] << 8) | whole_ip[3]) - kIpHeader;
  std::memcpy(out, whole, kEthHeader + kIpHeader);
  uint8_t* ip = out + kEthHeader;
  put16(ip + 2, static_cast<uint16_t>(kIpHeader + len));
  put16(ip + 6, static_cast<uint16_t>((offset + len < payload ? 0x2000 : 0) | (offset / 8)));  // MF, offset
  put16(ip + 10, 0);
  store_checksum(ip + 10, checksum_finish(checksum_add(ip, kIpHeader, 0)));
  std::memcpy(ip + kIpHeader, whole_ip + kIpHeader + offset, len);
  return pad(out, kEthHeader + kIpHeader + len);
}

}  // namespace imf::bench::synth
