#include "inspect/inspector.h"

namespace imf::dp::inspect {

void Inspector::init_flow(FlowState& fs, uint32_t slot, const decode::PacketMeta& m, bool from_a, bool to_server_port) {
  using namespace decode;
  fs.blocked = false;
  fs.session = proto::MqttSession{};
  fs.account = AccountRef{};
  for (uint8_t i = 0; i < 2; ++i) {
    fs.dir[i] = DirState{};
    fs.dir[i].decoder = proto::MqttDecoder(cfg_.max_mqtt_packet);
    match::Matcher::reset(streams_->get(slot * 2 + i));
  }
  bool syn_only = (m.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn;
  // The SYN's sender is the client; without a SYN, the side talking to a server port is.
  bool from_client = syn_only || to_server_port;
  fs.client_is_a = from_client == from_a;
  fs.uninspected = !syn_only;
  if (fs.uninspected) counters_.add(Counter::flows_midstream);
}

}  // namespace imf::dp::inspect
