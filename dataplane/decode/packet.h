// Ethernet / 802.1Q / IPv4 / IPv6 / TCP / UDP decoding into packet metadata.
// Pure functions over a byte buffer: no mbufs, no EAL, no state. Any lcore may call them.
#pragma once

#include <cstdint>

namespace imf::dp::decode {

enum class DecodeStatus : uint8_t {
  kOk,         // IP packet decoded down to L4 (TCP/UDP) or to L3 for other protocols
  kNonIp,      // not IPv4/IPv6 (ARP, LLDP, ...): forward untouched
  kTruncated,  // a header or an IP length runs past the end of the frame
  kBadHeader,  // impossible field: IP version, IHL < 5, TCP data offset < 5, ...
  kFragment,   // IPv4/IPv6 fragment: L4 not available
};

inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;

// TCP flag bits as on the wire.
inline constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08, kTcpAck = 0x10;

struct PacketMeta {
  uint16_t l3_offset = 0;
  uint16_t l4_offset = 0;
  uint16_t payload_offset = 0;
  uint16_t payload_len = 0;  // from the IP length, so Ethernet padding is excluded
  uint16_t vlan_tci = 0;     // valid when has_vlan
  bool has_vlan = false;
  uint8_t ip_version = 0;  // 4 or 6
  uint8_t l4_proto = 0;    // IPPROTO_*
  uint8_t tcp_flags = 0;
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint8_t src_ip[16] = {};  // IPv4 uses the first 4 bytes
  uint8_t dst_ip[16] = {};
};

// Decodes `frame` of `len` bytes. On kOk the L3/L4 fields are set; ports, seq and payload only
// for TCP/UDP. Never reads outside [frame, frame + len).
DecodeStatus decode_packet(const uint8_t* frame, uint32_t len, PacketMeta* meta);

}  // namespace imf::dp::decode
