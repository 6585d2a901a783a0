// The escalation policy and the account row: shared by imf-control and imfd, pure C++ (no DPDK).
//
// Account states form a ladder none -> warned -> restricted -> suspended -> shutdown. k violations
// within a window move an account one step up; every state but shutdown lapses back to none after
// its expiry. The policy file format is documented in control/policy/README.md.
//
// All functions are pure and may be called from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace imf::policy {

// Crosses the process boundary (CSV rows, records, the measure word): values are fixed.
enum class AccountState : uint8_t { kNone = 0, kWarned = 1, kRestricted = 2, kSuspended = 3, kShutdown = 4 };
inline constexpr int kStateCount = 5;

// "none", "warned", "restricted", "suspended", "shutdown"; "?" for a value outside the enum.
const char* state_name(AccountState s);
// Inverse of state_name; nullopt for anything else.
std::optional<AccountState> parse_state(std::string_view s);
// One step up the ladder; shutdown stays shutdown.
AccountState next_state(AccountState s);

// `messages` per `interval_s` seconds. {0,0} means unset (use the policy's default).
struct Rate {
  uint32_t messages = 0;
  uint32_t interval_s = 0;
  bool unset() const { return messages == 0 && interval_s == 0; }
  friend bool operator==(const Rate&, const Rate&) = default;
};

// "N/DURATION" with N >= 1 and DURATION as parse_duration ("10/60s", "10/1m", "100/1h", "5/1d",
// "10/60"); the interval must fit 32 bits of seconds. Errors quote the input and show the form.
Result<Rate> parse_rate(std::string_view s);
// "N/Ss" in seconds ("10/60s"); "" for an unset rate, so it round-trips through parse_account_row.
std::string format_rate(const Rate& r);

// Seconds from "30s", "10m", "2h", "7d" or plain "600". Must be > 0 and not overflow.
Result<uint64_t> parse_duration(std::string_view s);

struct EscalationPolicy {
  bool enabled = true;
  uint32_t violations = 3;  // k
  uint64_t window_s = 600;
  uint64_t expire_s[kStateCount] = {0, 86400, 86400, uint64_t{7} * 86400, 0};  // indexed by AccountState; 0 = never
  Rate restricted_rate{10, 60};   // for a restricted account without a rate of its own
  uint32_t report_threshold = 3;  // open reports that escalate an account one step; 0 = never
};

// Parses a policy file's text; keys not given keep their defaults. Errors: "SOURCE:LINE: what is
// wrong" (unknown keys list the known ones; a key given twice is refused).
Result<EscalationPolicy> parse_policy(std::string_view text, const std::string& source);
// Reads and parses `path`; errors as parse_policy, or "PATH: cannot open: ...".
Result<EscalationPolicy> load_policy_file(const std::string& path);

// Limits of account rows.
inline constexpr size_t kMaxAccountLen = 96;
inline constexpr size_t kMaxMarkerLen = 32;
inline constexpr size_t kMaxMarkers = 64;

// One account, as a CSV line `account,markers,state,until,rate` (the control process's account
// snapshot and imfd's accounts.load share it):
//   account  everything before the first ',': 1-96 bytes, no control characters
//   markers  names separated by ';', possibly none; each as check_marker_name, at most 64 distinct
//   state    a state_name; empty = none
//   until    unix seconds when the state lapses; empty or 0 = indefinite
//   rate     as parse_rate; empty = unset
struct AccountRow {
  std::string account;
  std::vector<std::string> markers;  // sorted, unique
  AccountState state = AccountState::kNone;
  int64_t until_s = 0;
  Rate rate;
  friend bool operator==(const AccountRow&, const AccountRow&) = default;
};

// Parses one line (a trailing '\r' is ignored). Errors name the column: "markers: ...".
Result<AccountRow> parse_account_row(std::string_view line);
// The inverse: parse_account_row(format_account_row(r)) == r for every valid r with sorted markers.
std::string format_account_row(const AccountRow& r);

// 1-32 characters of [a-z0-9_.-].
Status check_marker_name(std::string_view name);
// 1-96 bytes, no ',' and no control characters.
Status check_account_name(std::string_view account);

}  // namespace imf::policy
