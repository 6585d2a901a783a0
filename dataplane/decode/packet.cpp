#include "decode/packet.h"

#include <cstring>

namespace imf::dp::decode {

namespace {

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86dd;
constexpr uint16_t kEthVlan = 0x8100;     // 802.1Q
constexpr uint16_t kEthQinQ = 0x88a8;     // 802.1ad service tag
constexpr uint16_t kEthQinQOld = 0x9100;  // pre-standard service tag, still seen
constexpr uint16_t kEthMpls = 0x8847;
constexpr uint16_t kEthMplsMulticast = 0x8848;
constexpr uint16_t kEthPppoeSession = 0x8864;
constexpr uint16_t kPppIpv4 = 0x0021;
constexpr uint16_t kPppIpv6 = 0x0057;
constexpr unsigned kMaxVlanTags = 2;
constexpr unsigned kMaxMplsLabels = 8;
constexpr uint32_t kPppoeHdr = 6 + 2;  // PPPoE session header and the PPP protocol field
constexpr uint32_t kEthHdr = 14;
constexpr uint32_t kVlanHdr = 4;
constexpr uint32_t kIpv6Hdr = 40;
constexpr uint32_t kUdpHdr = 8;

// IPv6 next-header values that are extension headers.
constexpr uint8_t kIp6HopByHop = 0, kIp6Routing = 43, kIp6Fragment = 44, kIp6Auth = 51, kIp6DestOpts = 60,
                  kIp6Mobility = 135, kIp6Hip = 139, kIp6Shim6 = 140;

inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

// The window-scale option of a SYN's options [p, end), or 0xff. Malformed options end the walk:
// the end host ignores what it cannot parse the same way.
uint8_t syn_window_scale(const uint8_t* p, const uint8_t* end) {
  while (p < end) {
    uint8_t kind = p[0];
    if (kind == 0) break;  // end of options
    if (kind == 1) {       // no-op
      ++p;
      continue;
    }
    if (end - p < 2 || p[1] < 2 || p[1] > end - p) break;
    if (kind == 3 && p[1] == 3) return p[2];
    p += p[1];
  }
  return 0xff;
}

// Decodes TCP or UDP at `off`; `end` is where the IP payload ends.
DecodeStatus decode_l4(const uint8_t* f, uint32_t off, uint32_t end, PacketMeta* m) {
  m->l4_offset = static_cast<uint16_t>(off);
  if (m->l4_proto == kProtoTcp) {
    if (end - off < 20) return DecodeStatus::kTruncated;
    const uint8_t* t = f + off;
    uint32_t hlen = (t[12] >> 4) * 4u;
    if (hlen < 20) return DecodeStatus::kBadHeader;
    if (end - off < hlen) return DecodeStatus::kTruncated;
    m->src_port = be16(t);
    m->dst_port = be16(t + 2);
    m->seq = be32(t + 4);
    m->ack = be32(t + 8);
    m->tcp_flags = t[13];
    m->tcp_window = be16(t + 14);
    m->tcp_urgent = be16(t + 18);
    if ((m->tcp_flags & kTcpSyn) && hlen > 20) m->tcp_wscale = syn_window_scale(t + 20, t + hlen);
    m->payload_offset = static_cast<uint16_t>(off + hlen);
    m->payload_len = static_cast<uint16_t>(end - off - hlen);
  } else if (m->l4_proto == kProtoUdp) {
    if (end - off < kUdpHdr) return DecodeStatus::kTruncated;
    const uint8_t* u = f + off;
    uint16_t ulen = be16(u + 4);
    if (ulen < kUdpHdr) return DecodeStatus::kBadHeader;
    if (ulen > end - off) return DecodeStatus::kTruncated;
    m->src_port = be16(u);
    m->dst_port = be16(u + 2);
    m->payload_offset = static_cast<uint16_t>(off + kUdpHdr);
    m->payload_len = static_cast<uint16_t>(ulen - kUdpHdr);
  } else {
    m->payload_offset = static_cast<uint16_t>(off);
    m->payload_len = static_cast<uint16_t>(end - off);
  }
  return DecodeStatus::kOk;
}

DecodeStatus decode_ipv4(const uint8_t* f, uint32_t off, uint32_t len, PacketMeta* m) {
  if (len - off < 20) return DecodeStatus::kTruncated;
  const uint8_t* ip = f + off;
  if ((ip[0] >> 4) != 4) return DecodeStatus::kBadHeader;
  uint32_t ihl = (ip[0] & 0x0f) * 4u;
  uint32_t total = be16(ip + 2);
  if (ihl < 20 || total < ihl) return DecodeStatus::kBadHeader;
  if (total > len - off) return DecodeStatus::kTruncated;
  m->ip_version = 4;
  m->ttl = ip[8];
  m->l4_proto = ip[9];
  std::memcpy(m->src_ip, ip + 12, 4);
  std::memcpy(m->dst_ip, ip + 16, 4);
  uint16_t frag = be16(ip + 6);
  if ((frag & 0x3fff) != 0) {  // MF set or offset non-zero
    m->frag_id = be16(ip + 4);
    m->frag_offset = static_cast<uint16_t>((frag & 0x1fff) * 8u);
    m->frag_more = (frag & 0x2000) != 0;
    m->l4_offset = static_cast<uint16_t>(off + ihl);
    m->payload_offset = m->l4_offset;
    m->payload_len = static_cast<uint16_t>(total - ihl);
    return DecodeStatus::kFragment;
  }
  return decode_l4(f, off + ihl, off + total, m);
}

DecodeStatus decode_ipv6(const uint8_t* f, uint32_t off, uint32_t len, PacketMeta* m) {
  if (len - off < kIpv6Hdr) return DecodeStatus::kTruncated;
  const uint8_t* ip = f + off;
  if ((ip[0] >> 4) != 6) return DecodeStatus::kBadHeader;
  uint32_t end = off + kIpv6Hdr + be16(ip + 4);
  if (end > len) return DecodeStatus::kTruncated;
  m->ip_version = 6;
  m->ttl = ip[7];
  std::memcpy(m->src_ip, ip + 8, 16);
  std::memcpy(m->dst_ip, ip + 24, 16);
  uint8_t next = ip[6];
  uint32_t pos = off + kIpv6Hdr;
  // Walk extension headers to the transport header.
  for (unsigned n = 0;; ++n) {
    uint32_t ext_len;
    switch (next) {
      case kIp6HopByHop:
      case kIp6Routing:
      case kIp6DestOpts:
      case kIp6Mobility:
      case kIp6Hip:
      case kIp6Shim6:
        if (end - pos < 8) return DecodeStatus::kTruncated;
        ext_len = (f[pos + 1] + 1u) * 8u;
        break;
      case kIp6Auth:  // length in 4-byte units, minus 2
        if (end - pos < 8) return DecodeStatus::kTruncated;
        ext_len = (f[pos + 1] + 2u) * 4u;
        break;
      case kIp6Fragment: {
        if (end - pos < 8) return DecodeStatus::kTruncated;
        uint16_t offset_flags = be16(f + pos + 2);
        if ((offset_flags & 0xfff9) == 0) {  // offset 0, M clear: an atomic fragment, RFC 6946
          ext_len = 8;
          break;
        }
        m->l4_proto = f[pos];
        m->frag_header = static_cast<uint16_t>(pos);
        m->frag_id = be32(f + pos + 4);
        m->frag_offset = static_cast<uint16_t>(offset_flags & 0xfff8);
        m->frag_more = (offset_flags & 1) != 0;
        m->l4_offset = static_cast<uint16_t>(pos + 8);
        m->payload_offset = m->l4_offset;
        m->payload_len = static_cast<uint16_t>(end - pos - 8);
        return DecodeStatus::kFragment;
      }
      default: m->l4_proto = next; return decode_l4(f, pos, end, m);
    }
    if (n == kMaxIpv6ExtHeaders) return DecodeStatus::kBadHeader;
    if (end - pos < ext_len) return DecodeStatus::kTruncated;
    next = f[pos];
    pos += ext_len;
  }
}

}  // namespace

DecodeStatus decode_packet(const uint8_t* frame, uint32_t len, PacketMeta* meta) {
  *meta = PacketMeta{};
  if (len < kEthHdr) return DecodeStatus::kTruncated;
  uint32_t off = 12;
  uint16_t type = be16(frame + off);
  for (unsigned tags = 0; type == kEthVlan || type == kEthQinQ || type == kEthQinQOld; ++tags) {
    if (tags == kMaxVlanTags) return DecodeStatus::kBadHeader;
    if (len < off + 2 + kVlanHdr) return DecodeStatus::kTruncated;
    meta->has_vlan = true;
    meta->vlan_tci = be16(frame + off + 2);
    off += kVlanHdr;
    type = be16(frame + off);
  }
  off += 2;
  if (len > UINT16_MAX) return DecodeStatus::kBadHeader;  // offsets are 16-bit; no such frame on a wire
  if (type == kEthMpls || type == kEthMplsMulticast) {
    // Labels until the bottom of the stack; the IP version nibble then names the payload.
    for (unsigned n = 0;; ++n) {
      if (n == kMaxMplsLabels) return DecodeStatus::kBadHeader;
      if (len - off < 4) return DecodeStatus::kTruncated;
      bool bottom = frame[off + 2] & 1;
      off += 4;
      if (bottom) break;
    }
    if (len - off < 1) return DecodeStatus::kTruncated;
    uint8_t version = frame[off] >> 4;
    type = version == 4 ? kEthIpv4 : version == 6 ? kEthIpv6 : 0;
  } else if (type == kEthPppoeSession) {
    if (len - off < kPppoeHdr) return DecodeStatus::kTruncated;
    if (frame[off] != 0x11 || frame[off + 1] != 0) return DecodeStatus::kNonIp;  // version 1 type 1, session data
    meta->pppoe_offset = static_cast<uint16_t>(off);
    uint16_t ppp = be16(frame + off + 6);
    off += kPppoeHdr;
    type = ppp == kPppIpv4 ? kEthIpv4 : ppp == kPppIpv6 ? kEthIpv6 : 0;
  }
  meta->l3_offset = static_cast<uint16_t>(off);
  if (type == kEthIpv4) return decode_ipv4(frame, off, len, meta);
  if (type == kEthIpv6) return decode_ipv6(frame, off, len, meta);
  return DecodeStatus::kNonIp;
}

}  // namespace imf::dp::decode
