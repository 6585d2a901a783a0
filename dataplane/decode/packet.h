// Ethernet / 802.1Q / 802.1ad / MPLS / PPPoE / IPv4 / IPv6 / TCP / UDP decoding into packet
// metadata.
// Pure functions over a byte buffer: no mbufs, no EAL, no state. Any lcore may call them.
#pragma once

#include <cstdint>

namespace imf::dp::decode {

enum class DecodeStatus : uint8_t {
  kOk,         // IP packet decoded down to L4 (TCP/UDP) or to L3 for other protocols
  kNonIp,      // not IPv4/IPv6 (ARP, LLDP, ...): forward untouched
  kTruncated,  // a header or an IP length runs past the end of the frame
  kBadHeader,  // impossible field: IP version, IHL < 5, TCP data offset < 5, too many headers, ...
  kFragment,   // IPv4/IPv6 fragment: the frag_* fields and payload_* (the fragment's data) are set
};

inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;

// TCP flag bits as on the wire.
inline constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08, kTcpAck = 0x10, kTcpUrg = 0x20;

// More than this many IPv6 extension headers is a bad header: no real packet carries so many,
// and walking an unbounded chain costs per packet what an attacker chooses.
inline constexpr unsigned kMaxIpv6ExtHeaders = 32;

// The longest header before L3 decode_packet() accepts: Ethernet, two VLAN tags and eight MPLS
// labels (a PPPoE session header is shorter).
inline constexpr uint16_t kMaxL2Header = 14 + 2 * 4 + 8 * 4;

struct PacketMeta {
  uint16_t l3_offset = 0;
  uint16_t l4_offset = 0;
  uint16_t payload_offset = 0;
  uint16_t payload_len = 0;   // from the IP length, so Ethernet padding is excluded
  uint16_t vlan_tci = 0;      // the innermost tag's TCI, valid when has_vlan
  uint16_t pppoe_offset = 0;  // where a PPPoE session header sits (0: none); its length covers L3
  bool has_vlan = false;
  uint8_t ip_version = 0;  // 4 or 6
  uint8_t l4_proto = 0;    // IPPROTO_*; for a fragment, the protocol of the whole datagram
  uint8_t ttl = 0;         // IPv4 TTL or IPv6 hop limit
  uint8_t tcp_flags = 0;
  uint8_t tcp_wscale = 0xff;  // window-scale option of a SYN (0xff: none)
  uint16_t tcp_window = 0;    // the raw window field
  uint16_t tcp_urgent = 0;    // the urgent pointer field
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  // Fragments (kFragment). payload_offset/len are the fragment's data; its offset in the datagram
  // is frag_offset bytes. IPv6: frag_header is where the fragment header sits, after the
  // unfragmentable part.
  uint32_t frag_id = 0;
  uint16_t frag_offset = 0;
  uint16_t frag_header = 0;
  bool frag_more = false;
  uint8_t src_ip[16] = {};  // IPv4 uses the first 4 bytes
  uint8_t dst_ip[16] = {};
};

// Decodes `frame` of `len` bytes. On kOk the L3/L4 fields are set; ports, seq and payload only
// for TCP/UDP. Never reads outside [frame, frame + len). An IPv6 "atomic" fragment (offset 0, no
// more fragments, RFC 6946) is an ordinary packet. IP inside up to two VLAN tags, an MPLS label
// stack (up to 8 labels) or a PPPoE session is decoded: the next hop unwraps it and the server
// reads what it carries.
DecodeStatus decode_packet(const uint8_t* frame, uint32_t len, PacketMeta* meta);

}  // namespace imf::dp::decode
