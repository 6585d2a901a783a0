// Builds the TCP RST segments that end a blocked connection at both ends.
// Pure functions over bytes: any lcore may call them; no mbufs, no allocation.
#pragma once

#include <cstdint>

#include "decode/packet.h"

namespace imf::dp::action {

enum class ResetTarget : uint8_t {
  kReceiver,  // onward, as if from the sender: seq = the dropped segment's seq
  kSender,    // back, as if from the receiver: seq = the segment's ack, RST|ACK
};

// Largest frame build_reset writes: the longest L2 header decode accepts + IPv6 + TCP.
inline constexpr uint16_t kResetFrameMax = decode::kMaxL2Header + 40 + 20;

// Writes into `out` (kResetFrameMax bytes) a frame resetting the connection of the TCP segment
// `frame`/`m` (decoded, kOk) towards `target`, and returns its length. The L2 header and VLAN tag
// are copied (MACs swapped for kSender); IP and TCP checksums are computed.
uint16_t build_reset(const uint8_t* frame, const decode::PacketMeta& m, ResetTarget target, uint8_t* out);

}  // namespace imf::dp::action
