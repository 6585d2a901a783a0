// What the dataplane did to a message or connection, as records name it. Header-only: the
// inspector produces these, the record writer names them.
#pragma once

#include <cstdint>

namespace imf::dp::inspect {

enum class Measure : uint8_t {
  kRuleAlert,      // a rule matched; the message passes
  kRuleDrop,       // an enforced drop rule matched: the connection is reset
  kRuleWouldDrop,  // a dry-run drop rule matched; the message passes
  kWarned,         // a warned account's message passed
  kRateDrop,       // a restricted account's message over its rate: reset
  kSuspended,      // a suspended account's message or new connection: reset
  kShutdown,       // a shut-down account's connection: reset
  kLapsed,         // the account's timed measure ran out: a state change to none
};

// The record's "action" for each measure. "alert" and "drop" keep the names of rule actions.
inline const char* measure_name(Measure m) {
  switch (m) {
    case Measure::kRuleAlert: return "alert";
    case Measure::kRuleDrop: return "drop";
    case Measure::kRuleWouldDrop: return "would_drop";
    case Measure::kWarned: return "warned";
    case Measure::kRateDrop: return "rate_limited";
    case Measure::kSuspended: return "suspended";
    case Measure::kShutdown: return "shutdown";
    case Measure::kLapsed: return "expired";
  }
  return "?";
}

// Whether the measure carries a rule (id, version, category).
inline bool measure_has_rule(Measure m) { return m <= Measure::kRuleWouldDrop; }

}  // namespace imf::dp::inspect
