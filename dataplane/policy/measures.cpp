#include "policy/measures.h"

#include <algorithm>
#include <cstdint>

namespace imf::dp::policy {

namespace {

constexpr int64_t kNsPerS = 1'000'000'000;

// A policy duration in ns, saturating (a window of centuries is as good as forever).
int64_t to_ns(uint64_t s) {
  constexpr uint64_t kMax = INT64_MAX / kNsPerS;
  return static_cast<int64_t>(s < kMax ? s : kMax) * kNsPerS;
}

// Lapses an expired measure. Returns the measure to judge by (none after a lapse). Only the
// caller whose CAS succeeds reports the old state, so a lapse is emitted once.
uint64_t current_measure(AccountEntry& e, int64_t now_ns, AccountState* expired_from) {
  if (expired_from) *expired_from = AccountState::kNone;
  uint64_t m = e.measure.load(std::memory_order_relaxed);
  for (;;) {
    int64_t until = measure_until(m);
    // until <= floor(now_s) <=> until * 1e9 <= now_ns, without overflow for any until.
    if (measure_state(m) == AccountState::kNone || until == 0 || until > now_ns / kNsPerS) return m;
    // Relaxed: the measure word is self-contained; on failure m is reloaded and re-judged.
    if (e.measure.compare_exchange_weak(m, 0, std::memory_order_relaxed, std::memory_order_relaxed)) {
      if (expired_from) *expired_from = measure_state(m);
      return 0;
    }
  }
}

}  // namespace

uint64_t pack_measure(AccountState s, int64_t until_s) {
  uint64_t u = until_s < 0 ? 1 : static_cast<uint64_t>(until_s) > kUntilMask ? kUntilMask : until_s;
  return (uint64_t{static_cast<uint8_t>(s)} << 56) | u;
}

bool rate_take(std::atomic<uint64_t>& tat_ns, uint64_t now_ns, Rate r) {
  if (r.messages == 0 || r.interval_s == 0) return false;
  // T rounded down (at least 1 ns) so that after a burst the bucket is full again within one
  // interval; tolerance (N-1)T admits exactly N at one instant.
  uint64_t interval_ns = uint64_t{r.interval_s} * kNsPerS;
  uint64_t t = interval_ns / r.messages;
  if (t == 0) t = 1;
  uint64_t tolerance = (r.messages - 1) * t;
  // Relaxed: tat_ns is the only shared word; the CAS orders competing takes among themselves.
  uint64_t tat = tat_ns.load(std::memory_order_relaxed);
  for (;;) {
    uint64_t base = tat > now_ns ? tat : now_ns;
    if (base - now_ns > tolerance) return false;
    if (tat_ns.compare_exchange_weak(tat, base + t, std::memory_order_relaxed, std::memory_order_relaxed)) return true;
  }
}

MessageAction judge_message(AccountEntry& e, int64_t now_ns, const EscalationPolicy& p, AccountState* expired_from) {
  switch (measure_state(current_measure(e, now_ns, expired_from))) {
    case AccountState::kNone: return MessageAction::kPass;
    case AccountState::kWarned: return MessageAction::kPassRecorded;
    case AccountState::kRestricted: {
      Rate r = unpack_rate(e.rate.load(std::memory_order_relaxed));
      if (r.unset()) r = p.restricted_rate;
      return rate_take(e.tat_ns, static_cast<uint64_t>(now_ns), r) ? MessageAction::kPass : MessageAction::kDropRate;
    }
    case AccountState::kSuspended: return MessageAction::kDropSuspended;
    case AccountState::kShutdown: return MessageAction::kResetShutdown;
  }
  return MessageAction::kPass;  // a state value from the future: judge as none
}

MessageAction judge_connect(AccountEntry& e, int64_t now_ns, AccountState* expired_from) {
  switch (measure_state(current_measure(e, now_ns, expired_from))) {
    case AccountState::kShutdown: return MessageAction::kResetShutdown;
    case AccountState::kSuspended: return MessageAction::kDropSuspended;
    default: return MessageAction::kPass;
  }
}

std::optional<Transition> Escalator::on_violation(std::string_view account, AccountState current, int64_t now_ns) {
  if (!p_.enabled || current == AccountState::kShutdown) return std::nullopt;
  const int64_t window_ns = to_ns(p_.window_s);
  auto it = windows_.find(account);
  if (it == windows_.end()) it = windows_.emplace(std::string(account), Window{now_ns, 0}).first;
  Window& w = it->second;
  if (now_ns - w.start_ns >= window_ns) w = Window{now_ns, 0};  // the old window closed: open a new one
  if (++w.count < p_.violations) return std::nullopt;
  windows_.erase(it);
  AccountState to = imf::policy::next_state(current);
  uint64_t expire = std::min<uint64_t>(p_.expire_s[static_cast<size_t>(to)], kUntilMask);
  return Transition{current, to, expire == 0 ? 0 : now_ns / kNsPerS + static_cast<int64_t>(expire)};
}

void Escalator::prune(int64_t now_ns) {
  const int64_t window_ns = to_ns(p_.window_s);
  std::erase_if(windows_, [&](const auto& kv) { return now_ns - kv.second.start_ns >= window_ns; });
}

}  // namespace imf::dp::policy
