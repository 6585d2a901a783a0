// A verdict event as it travels from a worker lcore to the writer: fixed size, no pointers,
// so it is copied into a ring without allocation. It carries no message content.
#pragma once

#include <cstdint>
#include <string>

#include "rules/rule.h"

namespace imf::dp::record {

struct Event {
  static constexpr uint32_t kAccountCap = 96;
  static constexpr uint32_t kTopicCap = 128;
  static constexpr uint32_t kRuleIdCap = 64;  // the parser's limit on rule ids
  uint64_t tsc;                               // rte_rdtsc() at the verdict
  uint8_t src_ip[16];                         // sender of the matching message
  uint8_t dst_ip[16];
  uint16_t src_port;
  uint16_t dst_port;
  uint16_t vlan;
  uint64_t version;  // rule-set version that judged the message
  uint8_t ip_version;
  uint8_t lcore;
  uint8_t account_len;
  uint8_t topic_len;
  uint8_t rule_len;
  uint8_t action;  // rules::Action
  char account[kAccountCap];
  char topic[kTopicCap];
  char rule[kRuleIdCap];  // the rule's id: events outlive the rule set that produced them
};
static_assert(sizeof(Event) % 8 == 0, "ring elements must be a multiple of 4 bytes; keep 8");

// Wall-clock conversion of event timestamps: realtime = base_ns + (tsc - base_tsc) / hz.
struct Clock {
  uint64_t base_tsc;
  int64_t base_realtime_ns;
  uint64_t tsc_hz;
};

// Formats one event as a JSON line (with '\n'). Account and topic bytes that are not valid
// UTF-8 become U+FFFD; control characters are escaped. Any thread.
std::string event_to_json(const Event& e, const Clock& clock);

}  // namespace imf::dp::record
