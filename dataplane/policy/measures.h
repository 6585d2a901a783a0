// The per-account state the fast path reads and updates lock-free, and the escalation bookkeeping
// the record thread keeps.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "policy/policy_config.h"

namespace imf::dp::policy {

using imf::policy::AccountState;
using imf::policy::EscalationPolicy;
using imf::policy::Rate;

// One account's live entry. Each field is one 64-bit word, so every reader sees a consistent value
// without locks; fields are independent (no invariant spans two of them), so relaxed ordering
// suffices between them. Several lcores may update measure and tat_ns concurrently with CAS.
struct AccountEntry {
  std::atomic<uint64_t> markers{0};  // MarkerRegistry bits
  std::atomic<uint64_t> measure{0};  // pack_measure(state, until_s)
  std::atomic<uint64_t> rate{0};     // pack_rate(); 0 = the policy's restricted_rate
  std::atomic<uint64_t> tat_ns{0};   // GCRA theoretical arrival time for the restricted rate
};
static_assert(sizeof(AccountEntry) == 32);

inline constexpr uint64_t kUntilMask = (uint64_t{1} << 56) - 1;

// State in the top 8 bits, until (unix seconds, 0 = indefinite) in the low 56. until is clamped:
// negative values become 1 (long expired), values beyond 56 bits the largest one.
uint64_t pack_measure(AccountState s, int64_t until_s);
inline AccountState measure_state(uint64_t m) { return static_cast<AccountState>(m >> 56); }
inline int64_t measure_until(uint64_t m) { return static_cast<int64_t>(m & kUntilMask); }

// messages in the high 32 bits, interval_s in the low 32; an unset rate packs to 0.
inline uint64_t pack_rate(Rate r) { return (uint64_t{r.messages} << 32) | r.interval_s; }
inline Rate unpack_rate(uint64_t v) { return Rate{static_cast<uint32_t>(v >> 32), static_cast<uint32_t>(v)}; }

// Token bucket as GCRA with emission interval T = interval/N and burst N: from a full bucket N
// messages pass at once, then one per T; an idle interval refills the bucket. (Like any token
// bucket, a span of one interval can therefore see up to about 2N: a full burst plus the refill.)
// tat_ns starts at 0 = full bucket. One CAS loop on tat_ns; any lcore, lock-free. A rate with 0
// messages or a 0 interval lets nothing pass. Returns true if the message may pass.
bool rate_take(std::atomic<uint64_t>& tat_ns, uint64_t now_ns, Rate r);

enum class MessageAction : uint8_t {
  kPass,
  kPassRecorded,  // warned: delivered, but recorded
  kDropRate,      // restricted and over its rate
  kDropSuspended,
  kResetShutdown,
};

// Judges one PUBLISH sent by the account at now_ns (unix ns). A measure whose until has passed
// (until != 0, until <= now) lapses: the caller whose CAS moves it back to none gets
// *expired_from = the old state (so exactly one caller emits the lapse event); every other caller
// gets kNone there. The message is then judged as state none. expired_from may be null.
// Any lcore, lock-free.
MessageAction judge_message(AccountEntry& e, int64_t now_ns, const EscalationPolicy& p, AccountState* expired_from);

// Judges a CONNECT: kResetShutdown for shutdown, kDropSuspended for suspended, else kPass; expiry
// as judge_message. Any lcore, lock-free.
MessageAction judge_connect(AccountEntry& e, int64_t now_ns, AccountState* expired_from);

struct Transition {
  AccountState from, to;
  int64_t until_s;  // 0 = indefinite
};

// Escalation bookkeeping for ONE thread (imfd's record thread); not thread-safe. Counts violations
// per account in a fixed window that opens at the first violation; the k-th within window_s yields
// the transition one step up the ladder and closes the window. Time is injected. Memory: one map
// node per account with an open window; prune() drops closed windows.
class Escalator {
 public:
  explicit Escalator(const EscalationPolicy& p) : p_(p) {}

  // current: the account's state now. Returns the transition to apply when this violation is the
  // k-th in its window; nullopt otherwise, when escalation is off, or when current is shutdown.
  std::optional<Transition> on_violation(std::string_view account, AccountState current, int64_t now_ns);
  // Drops windows that have closed by now_ns.
  void prune(int64_t now_ns);
  size_t tracked() const { return windows_.size(); }

 private:
  struct Window {
    int64_t start_ns;
    uint32_t count;
  };
  // Transparent so lookups by string_view do not build a string.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  EscalationPolicy p_;
  std::unordered_map<std::string, Window, Hash, std::equal_to<>> windows_;
};

}  // namespace imf::dp::policy
