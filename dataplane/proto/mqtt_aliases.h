// The topics MQTT 5 topic aliases stand for, per flow direction, for one worker lcore.
//
// A PUBLISH may name its topic by an alias set earlier on the same connection and direction
// (MQTT 5.0 3.3.2.3.4); rules scoped to channels must see that topic, or an alias would walk a
// message around them. The table is bounded and allocated once: 4-way sets, the oldest entry of a
// set giving way. An alias the table lost (or never saw) makes a message unjudgeable; the
// inspector then resets the connection, as a broker does for an alias it does not know, and the
// client reconnects with its topics in full.
//
// Owning lcore only; no allocation after construction.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>

namespace imf::dp::proto {

class MqttAliasTable {
 public:
  static constexpr uint32_t kTopicCap = 128;  // as much of a topic as the inspector keeps
  struct Topic {
    uint8_t len = 0;
    bool truncated = false;  // the topic was longer than kTopicCap
    char text[kTopicCap];
  };

  // Room for `entries` aliases (rounded up to whole sets of 4).
  explicit MqttAliasTable(uint32_t entries) : sets_((entries + kWays - 1) / kWays), slots_(new Slot[sets_ * kWays]) {}

  // `flow` names one flow direction of one connection: (flow epoch << 1) | direction, where the
  // epoch is unique per connection on this lcore, so a reused flow slot never finds old aliases.
  void set(uint64_t flow, uint16_t alias, const Topic& topic) {
    Slot* set = set_of(flow, alias);
    Slot* victim = set;
    for (uint32_t i = 0; i < kWays; ++i) {
      Slot& s = set[i];
      if (s.flow == flow && s.alias == alias) {
        victim = &s;
        break;
      }
      if (s.stamp < victim->stamp) victim = &s;
    }
    victim->flow = flow;
    victim->alias = alias;
    victim->stamp = ++clock_;
    victim->topic = topic;
  }

  // The topic `alias` stands for on `flow`, or null.
  const Topic* find(uint64_t flow, uint16_t alias) const {
    const Slot* set = set_of(flow, alias);
    for (uint32_t i = 0; i < kWays; ++i) {
      if (set[i].stamp && set[i].flow == flow && set[i].alias == alias) return &set[i].topic;
    }
    return nullptr;
  }

 private:
  static constexpr uint32_t kWays = 4;
  struct Slot {
    uint64_t flow = 0;
    uint64_t stamp = 0;  // 0: empty
    uint16_t alias = 0;
    Topic topic;
  };
  Slot* set_of(uint64_t flow, uint16_t alias) const {
    uint64_t h = (flow ^ (uint64_t{alias} << 48)) * 0x9e3779b97f4a7c15ull;
    return &slots_[(h >> 32) % sets_ * kWays];
  }

  uint64_t sets_;
  std::unique_ptr<Slot[]> slots_;
  uint64_t clock_ = 0;
};

}  // namespace imf::dp::proto
