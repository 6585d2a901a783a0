#include "action/tcp_reset.h"

#include <cstring>

#include "decode/checksum.h"

namespace imf::dp::action {

namespace {

void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, static_cast<uint16_t>(v >> 16));
  put16(p + 2, static_cast<uint16_t>(v));
}

}  // namespace

uint16_t build_reset(const uint8_t* frame, const decode::PacketMeta& m, ResetTarget target, uint8_t* out) {
  using namespace decode;
  bool back = target == ResetTarget::kSender;
  uint16_t l3 = m.l3_offset;
  std::memcpy(out, frame, l3);
  if (back) {
    std::memcpy(out, frame + 6, 6);
    std::memcpy(out + 6, frame, 6);
  }
  size_t ip_len = m.ip_version == 4 ? 4 : 16;
  const uint8_t* src = back ? m.dst_ip : m.src_ip;
  const uint8_t* dst = back ? m.src_ip : m.dst_ip;

  uint8_t* ip = out + l3;
  uint16_t ip_hdr = m.ip_version == 4 ? 20 : 40;
  uint8_t* tcp = ip + ip_hdr;
  if (m.ip_version == 4) {
    std::memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, 40);
    put16(ip + 6, 0x4000);  // DF
    ip[8] = 64;
    ip[9] = kProtoTcp;
    std::memcpy(ip + 12, src, 4);
    std::memcpy(ip + 16, dst, 4);
    put16(ip + 10, static_cast<uint16_t>(~decode::checksum_fold(decode::checksum_add(ip, 20, 0))));
  } else {
    std::memset(ip, 0, 40);
    ip[0] = 0x60;
    put16(ip + 4, 20);
    ip[6] = kProtoTcp;
    ip[7] = 64;
    std::memcpy(ip + 8, src, 16);
    std::memcpy(ip + 24, dst, 16);
  }

  std::memset(tcp, 0, 20);
  put16(tcp, back ? m.dst_port : m.src_port);
  put16(tcp + 2, back ? m.src_port : m.dst_port);
  if (back) {
    // The sender accepts a RST whose seq is its rcv_nxt: the ack it just sent.
    uint32_t seg_end = m.seq + m.payload_len + ((m.tcp_flags & kTcpSyn) ? 1 : 0) + ((m.tcp_flags & kTcpFin) ? 1 : 0);
    put32(tcp + 4, (m.tcp_flags & kTcpAck) ? m.ack : 0);
    put32(tcp + 8, seg_end);
    tcp[13] = kTcpRst | kTcpAck;
  } else {
    // The receiver never gets the dropped segment, so its rcv_nxt is that segment's seq.
    put32(tcp + 4, m.seq);
    tcp[13] = kTcpRst;
  }
  tcp[12] = 5 << 4;

  // Pseudo-header: addresses, protocol, TCP length.
  const uint8_t proto_and_length[8] = {0, 0, 0, kProtoTcp, 0, 0, 0, 20};
  uint64_t acc = decode::checksum_add(src, static_cast<uint32_t>(ip_len), 0);
  acc = decode::checksum_add(dst, static_cast<uint32_t>(ip_len), acc);
  acc = decode::checksum_add(proto_and_length, sizeof(proto_and_length), acc);
  put16(tcp + 16, static_cast<uint16_t>(~decode::checksum_fold(decode::checksum_add(tcp, 20, acc))));
  // A PPPoE session header counts the PPP protocol field and the IP packet.
  if (m.pppoe_offset) put16(out + m.pppoe_offset + 4, static_cast<uint16_t>(2 + ip_hdr + 20));
  return static_cast<uint16_t>(l3 + ip_hdr + 20);
}

}  // namespace imf::dp::action
