#include "inspect/inspector.h"

namespace imf::dp::inspect {

NewFlow Inspector::classify_new(const decode::PacketMeta& m) const {
  using namespace decode;
  if ((m.tcp_flags & (kTcpSyn | kTcpAck | kTcpRst)) == kTcpSyn) return NewFlow::kOpen;
  // Bare ACKs, FINs and RSTs carry nothing to judge (e.g. the last ACK after a close).
  if (m.payload_len == 0) return NewFlow::kForward;
  switch (cfg_.midstream) {
    case MidstreamPolicy::kPass: counters_.add(Counter::flows_midstream); return NewFlow::kOpenUninspected;
    case MidstreamPolicy::kDrop: counters_.add(Counter::midstream_drops); return NewFlow::kDrop;
    case MidstreamPolicy::kReset: counters_.add(Counter::midstream_resets); return NewFlow::kReset;
  }
  return NewFlow::kReset;
}

bool Inspector::reset_messages(FlowState& fs, uint32_t slot, uint8_t protocol) {
  release_decoders(fs);
  fs.blocked = false;
  fs.uninspected = false;
  fs.protocol = protocol;
  fs.keepalive_s = 0;
  fs.epoch = ++epochs_;
  fs.session = proto::Session{};
  fs.account = AccountRef{};
  for (uint8_t i = 0; i < 2; ++i) {
    fs.dir[i] = DirState{};
    fs.dir[i].mqtt = proto::MqttDecoder(cfg_.max_mqtt_packet);
    match::Matcher::reset(streams_->get(slot * 2 + i));
  }
  if (protocol == kProtocolPending || protocol == static_cast<uint8_t>(proto::Protocol::kMqtt)) return true;
  fs.decoders = decoders_.acquire(static_cast<proto::Protocol>(protocol));
  return fs.decoders != DecoderPool::kNone;
}

bool Inspector::init_flow(FlowState& fs, uint32_t slot, const decode::PacketMeta& m, bool from_a, uint8_t in_port,
                          uint8_t protocol) {
  tcp_.release(fs.tcp);
  if (!reset_messages(fs, slot, protocol)) {
    counters_.add(Counter::decoders_full);
    return false;
  }
  fs.client_is_a = from_a;
  tcp_.open(fs.tcp, m, in_port);
  return true;
}

void Inspector::init_uninspected(FlowState& fs, const decode::PacketMeta& /*m*/, bool from_a, bool to_server_port) {
  tcp_.release(fs.tcp);
  release_decoders(fs);
  fs.tcp = stream::TcpConn{};
  fs.tcp.state = stream::ConnState::kEstablished;  // for its flow class: it idles like a live connection
  fs.blocked = false;
  fs.uninspected = true;
  fs.keepalive_s = 0;
  fs.session = proto::Session{};
  fs.account = AccountRef{};
  // The side talking to a server port is the client.
  fs.client_is_a = to_server_port == from_a;
}

void Inspector::detect(FlowState& fs, uint32_t slot, const uint8_t* p, uint32_t n) {
  std::optional<proto::Protocol> found = proto::detect_protocol(p, n);
  if (!found) {
    counters_.add(Counter::protocols_undetected);
    fs.uninspected = true;
    return;
  }
  counters_.add(Counter::protocols_detected);
  if (!reset_messages(fs, slot, static_cast<uint8_t>(*found))) {
    counters_.add(Counter::decoders_full);
    fs.protocol = kProtocolPending;
  }
}

}  // namespace imf::dp::inspect
