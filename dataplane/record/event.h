// A verdict event as it travels from a worker lcore to the writer: fixed size, no pointers,
// so it is copied into a ring without allocation. It carries no message content.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "inspect/measure.h"
#include "policy/policy_config.h"
#include "rules/rule.h"

namespace imf::dp::record {

struct Event {
  static constexpr uint32_t kAccountCap = 96;
  static constexpr uint32_t kChannelCap = 128;
  static constexpr uint32_t kRuleIdCap = 64;    // the parser's limit on rule ids
  static constexpr uint32_t kCategoryCap = 32;  // the parser's limit on categories
  uint64_t tsc;                                 // rte_rdtsc() at the verdict
  uint64_t version;                             // rule-set version that judged the message
  int64_t until_s;                              // state_after's end (unix s), 0 = indefinite
  uint8_t src_ip[16];                           // sender of the message
  uint8_t dst_ip[16];
  uint16_t src_port;
  uint16_t dst_port;
  uint16_t vlan;
  uint8_t ip_version;
  uint8_t lcore;
  uint8_t account_len;
  uint8_t channel_len;
  uint8_t rule_len;
  uint8_t category_len;
  uint8_t measure;       // inspect::Measure
  uint8_t state_before;  // policy::AccountState
  uint8_t state_after;
  uint8_t to_client;  // 1: a message from the server to the client
  uint8_t has_digest;
  uint8_t account_known;  // the connection's account was named by its login
  uint8_t protocol;       // proto::Protocol (0xff: not yet known)
  uint8_t message_kind;   // proto::MessageKind, with has_message
  uint8_t has_message;    // the measure is about a message (else the connection)
  uint8_t l4_proto;       // IPPROTO_TCP or IPPROTO_UDP
  uint32_t digest_bytes;  // body bytes the digest covers
  uint8_t digest[32];     // HMAC-SHA256 of those bytes, keyed: proves a message without holding it
  char account[kAccountCap];
  char channel[kChannelCap];
  char rule[kRuleIdCap];  // the rule's id: events outlive the rule set that produced them
  char category[kCategoryCap];
};
static_assert(sizeof(Event) % 8 == 0, "ring elements must be a multiple of 4 bytes; keep 8");

// Wall-clock conversion of event timestamps: realtime = base_ns + (tsc - base_tsc) / hz.
struct Clock {
  uint64_t base_tsc;
  int64_t base_realtime_ns;
  uint64_t tsc_hz;
};

// Unix time in ns of a timestamp counter value.
int64_t event_time_ns(const Event& e, const Clock& clock);

// The record members of an event, JSON object members without braces (what a records chain
// line holds between its own fields): kind, action, flow, account, topic, rule, category,
// rules_version, states, digest. Account and topic bytes that are not valid UTF-8 become U+FFFD;
// control characters are escaped. No message content. Any thread.
std::string event_fields(const Event& e);

// One event as a JSON line (with '\n'): {"ts":..., "lcore":..., <event_fields>}. Any thread.
std::string event_to_json(const Event& e, const Clock& clock);
// The same line from event_fields(e) already made (the writer makes them once for both outputs).
std::string event_line(const Event& e, const Clock& clock, std::string_view fields);

// JSON string escaping as events use it (exposed for the writer's own records).
void append_json_string(std::string& out, const char* s, uint32_t n);

}  // namespace imf::dp::record
