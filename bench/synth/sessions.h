// The traffic profiles: MQTT 3.1.1 sessions over TCP (mixed, full) and 64-byte pass-through
// frames (small). Packets stream out through a Capture as they are made; per-flow state is 16 bytes.
#pragma once

#include <cstdint>
#include <vector>

#include "capture.h"
#include "message_log_writer.h"
#include "messages.h"

namespace imf::bench::synth {

struct SessionConfig {
  uint64_t flows = 0;
  uint64_t messages = 0;
  double match_fraction = 0;
  SizeModel sizes = SizeModel::kChat;
  uint64_t seed = 1;
  uint16_t server_port = 1883;
};

struct MessageStats {
  uint64_t messages = 0;
  uint64_t planted = 0;
  uint64_t payload_bytes = 0;
  std::vector<uint64_t> size_counts;  // messages by payload size in bytes

  void add(uint32_t size, bool planted_one) {
    ++messages;
    planted += planted_one;
    payload_bytes += size;
    if (size >= size_counts.size()) size_counts.resize(size + 1);
    ++size_counts[size];
  }
};

// One TCP connection per flow, all concurrent: every flow's handshake, CONNECT/CONNACK and
// SUBSCRIBE/SUBACK (flows interleaved in groups), then `messages` PUBLISHes on random flows in
// random directions (QoS 0, or QoS 1 answered by PUBACK), then every flow's DISCONNECT and FIN
// exchange. Each PUBLISH starts a segment; segments are at most kMss; the receiver of data sends
// a pure ACK after every second data segment it has not yet acknowledged. The topic and payload of
// each PUBLISH go to `log` cut where the segments cut them.
void generate_mqtt_sessions(const SessionConfig& cfg, BodyMaker& bodies, Capture& capture, MessageLogWriter& log,
                            MessageStats* stats);

// `messages` 60-byte frames on random flows to port 443: flows with an even index send pure TCP
// ACKs (6 bytes of Ethernet padding), odd ones 18-byte UDP datagrams. No MQTT.
void generate_small(const SessionConfig& cfg, Capture& capture);

}  // namespace imf::bench::synth
