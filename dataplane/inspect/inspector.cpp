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

void Inspector::reset_messages(FlowState& fs, uint32_t slot) {
  fs.blocked = false;
  fs.uninspected = false;
  fs.keepalive_s = 0;
  fs.epoch = ++epochs_;
  fs.session = proto::MqttSession{};
  fs.account = AccountRef{};
  for (uint8_t i = 0; i < 2; ++i) {
    fs.dir[i] = DirState{};
    fs.dir[i].decoder = proto::MqttDecoder(cfg_.max_mqtt_packet);
    match::Matcher::reset(streams_->get(slot * 2 + i));
  }
}

void Inspector::init_flow(FlowState& fs, uint32_t slot, const decode::PacketMeta& m, bool from_a, uint8_t in_port) {
  reset_messages(fs, slot);
  fs.client_is_a = from_a;
  tcp_.open(fs.tcp, m, in_port);
}

void Inspector::init_uninspected(FlowState& fs, const decode::PacketMeta& /*m*/, bool from_a, bool to_server_port) {
  tcp_.release(fs.tcp);
  fs.tcp = stream::TcpConn{};
  fs.tcp.state = stream::ConnState::kEstablished;  // for its flow class: it idles like a live connection
  fs.blocked = false;
  fs.uninspected = true;
  fs.keepalive_s = 0;
  fs.session = proto::MqttSession{};
  fs.account = AccountRef{};
  // The side talking to a server port is the client.
  fs.client_is_a = to_server_port == from_a;
}

}  // namespace imf::dp::inspect
