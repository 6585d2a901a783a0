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
  // 0: no fragmentation. Else a multiple of 8, at least kTcpHeader: every data segment whose IP
  // payload is longer is sent as IPv4 fragments of at most this many payload bytes.
  uint32_t fragment = 0;
};

// What fragmentation made of the capture (all zero without it).
struct FragmentStats {
  uint64_t datagrams = 0;         // segments sent as fragments
  uint64_t fragments = 0;         // frames that are fragments
  uint32_t max_per_datagram = 0;  // most fragments of one segment
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
//
// IPv4 ids come from one counter for the whole capture, one id per segment, so no two datagrams
// within 65,536 of each other share an id, whatever their flow. With cfg.fragment the DF bit is
// clear on every packet (a path that fragments), and a data segment longer than cfg.fragment goes
// out as consecutive fragments in offset order, under its one id; the bytes, and so the log, are
// those of the capture without fragmentation.
void generate_mqtt_sessions(const SessionConfig& cfg, BodyMaker& bodies, Capture& capture, MessageLogWriter& log,
                            MessageStats* stats, FragmentStats* fragments);

// `messages` 60-byte frames on random flows to port 443: flows with an even index send pure TCP
// ACKs (6 bytes of Ethernet padding), odd ones 18-byte UDP datagrams. No MQTT.
void generate_small(const SessionConfig& cfg, Capture& capture);

}  // namespace imf::bench::synth
