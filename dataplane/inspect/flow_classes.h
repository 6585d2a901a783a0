// The flow table's classes as the inspector uses them: how long a connection may sit idle at each
// stage, and which flows give way first when the table is full.
//
// Class 0 holds half-open connections (a client SYN, no SYN/ACK yet): short-lived, capped at half
// the table so a SYN flood only ever evicts its own kind. Class 1 holds closing ones (RST or FIN
// both ways). Classes 2.. hold established connections, by how long they may idle: at least
// --flow-idle, longer when the protocol's own keep-alive says the server waits longer (MQTT's
// CONNECT keep-alive x 1.5), on a ladder of powers of two, so a quiet connection is never aged out
// before its server would drop it. An established flow gives way to a new one only after a minute
// idle; when every flow is busier than that, the new connection is refused instead.
#pragma once

#include <cstdint>
#include <vector>

#include "flow/flow_table.h"

namespace imf::dp::inspect {

struct FlowTimeouts {
  uint32_t handshake_s = 30;
  uint32_t close_s = 30;
  uint32_t idle_s = 3600;      // established, without a longer keep-alive
  uint32_t evict_idle_s = 60;  // established flows idle this long may give way to new ones
};

class FlowClassMap {
 public:
  static constexpr uint8_t kHalfOpen = 0;
  static constexpr uint8_t kClosing = 1;
  static constexpr uint8_t kEstablished = 2;             // the --flow-idle tier; longer tiers follow
  static constexpr uint32_t kMaxTierSeconds = 1u << 17;  // above MQTT's longest keep-alive x 1.5

  FlowClassMap() : FlowClassMap(FlowTimeouts{}) {}
  explicit FlowClassMap(const FlowTimeouts& t) : t_(t) {
    tiers_.push_back(t.idle_s);
    for (uint32_t s = 64; s <= kMaxTierSeconds; s *= 2) {
      if (s > t.idle_s && tiers_.size() + kEstablished < flow::FlowTable::kMaxClasses) tiers_.push_back(s);
    }
  }

  // The flow table's classes, idle times in ticks of `hz`.
  std::vector<flow::FlowClass> classes(uint64_t hz, uint32_t capacity) const {
    std::vector<flow::FlowClass> c;
    c.push_back({hz * t_.handshake_s, capacity / 2, 0});
    c.push_back({hz * t_.close_s, 0, 0});
    for (uint32_t s : tiers_) c.push_back({hz * s, 0, hz * t_.evict_idle_s});
    return c;
  }

  // The class of an established connection whose server keeps it through `keepalive_s` of
  // silence (0: no keep-alive known).
  uint8_t established(uint32_t keepalive_s) const {
    uint8_t i = 0;
    while (i + 1u < tiers_.size() && tiers_[i] < keepalive_s) ++i;
    return static_cast<uint8_t>(kEstablished + i);
  }

 private:
  FlowTimeouts t_;
  std::vector<uint32_t> tiers_;
};

}  // namespace imf::dp::inspect
