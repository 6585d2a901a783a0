#include "action/normalize.h"

#include "decode/checksum.h"

namespace imf::dp::action {

namespace {

uint16_t word(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

}  // namespace

bool raise_ttl(uint8_t* frame, const decode::PacketMeta& m, uint8_t min_ttl) {
  if (m.ttl >= min_ttl) return false;
  uint8_t* ip = frame + m.l3_offset;
  if (m.ip_version == 6) {
    ip[7] = min_ttl;  // no header checksum in IPv6
    return true;
  }
  uint16_t before = word(ip + 8);  // TTL and protocol share a checksummed word
  ip[8] = min_ttl;
  decode::checksum_update16(ip + 10, before, word(ip + 8));
  return true;
}

bool clear_urgent(uint8_t* frame, const decode::PacketMeta& m) {
  if (m.l4_proto != decode::kProtoTcp || !(m.tcp_flags & decode::kTcpUrg)) return false;
  uint8_t* tcp = frame + m.l4_offset;
  uint16_t flags_before = word(tcp + 12);  // data offset and flags
  tcp[13] = static_cast<uint8_t>(tcp[13] & ~decode::kTcpUrg);
  decode::checksum_update16(tcp + 16, flags_before, word(tcp + 12));
  uint16_t pointer_before = word(tcp + 18);
  tcp[18] = tcp[19] = 0;
  decode::checksum_update16(tcp + 16, pointer_before, 0);
  return true;
}

}  // namespace imf::dp::action
