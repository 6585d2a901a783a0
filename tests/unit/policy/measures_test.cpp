#include "policy/measures.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace imf::dp::policy {
namespace {

constexpr int64_t kS = 1'000'000'000;
constexpr int64_t kT0 = 1'750'000'000 * kS;  // an injected "now"

int takes(std::atomic<uint64_t>& tat, int64_t now, Rate r, int attempts) {
  int n = 0;
  for (int i = 0; i < attempts; ++i) n += rate_take(tat, static_cast<uint64_t>(now), r);
  return n;
}

TEST(Measures, PacksMeasureAndRate) {
  uint64_t m = pack_measure(AccountState::kSuspended, 1767225600);
  EXPECT_EQ(measure_state(m), AccountState::kSuspended);
  EXPECT_EQ(measure_until(m), 1767225600);
  EXPECT_EQ(pack_measure(AccountState::kNone, 0), 0u);
  EXPECT_EQ(measure_until(pack_measure(AccountState::kShutdown, INT64_MAX)), static_cast<int64_t>(kUntilMask));
  EXPECT_EQ(measure_state(pack_measure(AccountState::kShutdown, INT64_MAX)), AccountState::kShutdown);
  EXPECT_EQ(measure_until(pack_measure(AccountState::kWarned, -5)), 1);
  EXPECT_EQ(unpack_rate(pack_rate({10, 60})), (Rate{10, 60}));
  EXPECT_EQ(pack_rate({}), 0u);
}

TEST(Measures, RateBurstsNThenOnePerInterval) {
  const Rate r{10, 60};  // one per 6 s
  std::atomic<uint64_t> tat{0};
  EXPECT_EQ(takes(tat, kT0, r, 25), 10);  // a full bucket: exactly N of M at one instant
  EXPECT_EQ(takes(tat, kT0 + 6 * kS - 1, r, 5), 0);
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(takes(tat, kT0 + i * (6 * kS), r, 5), 1) << i;
  // Idle for a full interval after the last take: the bucket is full again.
  EXPECT_EQ(takes(tat, kT0 + 30 * kS + 60 * kS, r, 25), 10);

  std::atomic<uint64_t> fresh{0};
  EXPECT_EQ(takes(fresh, kT0, r, 10), 10);
  EXPECT_EQ(takes(fresh, kT0 + 60 * kS, r, 25), 10);  // exactly one interval after a burst

  // Intervals not divisible by N: still exactly N at an instant and N again an interval later.
  std::atomic<uint64_t> odd{0};
  EXPECT_EQ(takes(odd, kT0, {3, 1}, 10), 3);
  EXPECT_EQ(takes(odd, kT0 + kS / 3, {3, 1}, 10), 1);
  EXPECT_EQ(takes(odd, kT0 + 2 * kS, {3, 1}, 10), 3);

  std::atomic<uint64_t> unset{0};
  EXPECT_EQ(takes(unset, kT0, {}, 5), 0);
  EXPECT_EQ(takes(unset, kT0, {5, 0}, 5), 0);
}

TEST(Measures, RateHoldsAcrossThreads) {
  const Rate r{1000, 60};
  std::atomic<uint64_t> tat{0};
  std::atomic<int> passed{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < 2; ++t) {
    ts.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      // Both at the same instant, then both a few emission intervals later.
      passed.fetch_add(takes(tat, kT0, r, 100000));
      passed.fetch_add(takes(tat, kT0 + 3 * (60 * kS / 1000), r, 100000));
    });
  }
  go.store(true);
  for (auto& t : ts) t.join();
  EXPECT_EQ(passed.load(), 1000 + 3);
}

TEST(Measures, JudgesEachState) {
  EscalationPolicy p;
  p.restricted_rate = {2, 60};
  auto judge = [&](AccountState s, int64_t until, Rate rate = {}) {
    AccountEntry e;
    e.measure = pack_measure(s, until);
    e.rate = pack_rate(rate);
    AccountState expired = AccountState::kWarned;
    std::vector<MessageAction> out;
    for (int i = 0; i < 3; ++i) out.push_back(judge_message(e, kT0, p, &expired));
    EXPECT_EQ(expired, AccountState::kNone);
    return out;
  };
  using A = MessageAction;
  EXPECT_EQ(judge(AccountState::kNone, 0), (std::vector<A>{A::kPass, A::kPass, A::kPass}));
  EXPECT_EQ(judge(AccountState::kWarned, 0), (std::vector<A>{A::kPassRecorded, A::kPassRecorded, A::kPassRecorded}));
  EXPECT_EQ(judge(AccountState::kRestricted, 0), (std::vector<A>{A::kPass, A::kPass, A::kDropRate}));  // policy 2/60s
  EXPECT_EQ(judge(AccountState::kRestricted, 0, {1, 60}), (std::vector<A>{A::kPass, A::kDropRate, A::kDropRate}));
  EXPECT_EQ(judge(AccountState::kSuspended, 0),
            (std::vector<A>{A::kDropSuspended, A::kDropSuspended, A::kDropSuspended}));
  EXPECT_EQ(judge(AccountState::kShutdown, 0),
            (std::vector<A>{A::kResetShutdown, A::kResetShutdown, A::kResetShutdown}));
  // Not yet expired: until is one second after now.
  EXPECT_EQ(judge(AccountState::kSuspended, kT0 / kS + 1)[0], A::kDropSuspended);
  // A rate on an account that is not restricted does nothing.
  EXPECT_EQ(judge(AccountState::kNone, 0, {1, 60}), (std::vector<A>{A::kPass, A::kPass, A::kPass}));

  AccountEntry e;
  e.measure = pack_measure(AccountState::kSuspended, 0);
  EXPECT_EQ(judge_connect(e, kT0, nullptr), A::kDropSuspended);
  e.measure = pack_measure(AccountState::kShutdown, 0);
  EXPECT_EQ(judge_connect(e, kT0, nullptr), A::kResetShutdown);
  for (auto s : {AccountState::kNone, AccountState::kWarned, AccountState::kRestricted}) {
    e.measure = pack_measure(s, 0);
    EXPECT_EQ(judge_connect(e, kT0, nullptr), A::kPass);
  }
}

TEST(Measures, ExpiredMeasureLapsesOnce) {
  EscalationPolicy p;
  AccountEntry e;
  e.measure = pack_measure(AccountState::kSuspended, kT0 / kS);  // until == now: expired
  AccountState from;
  EXPECT_EQ(judge_message(e, kT0, p, &from), MessageAction::kPass);
  EXPECT_EQ(from, AccountState::kSuspended);
  EXPECT_EQ(e.measure.load(), 0u);
  EXPECT_EQ(judge_message(e, kT0, p, &from), MessageAction::kPass);
  EXPECT_EQ(from, AccountState::kNone);
  e.measure = pack_measure(AccountState::kShutdown, kT0 / kS - 10);  // an explicit until is honoured
  EXPECT_EQ(judge_connect(e, kT0, &from), MessageAction::kPass);
  EXPECT_EQ(from, AccountState::kShutdown);

  // Two threads judge the same expired accounts; each lapse is reported exactly once.
  constexpr int kAccounts = 20000;
  std::vector<AccountEntry> entries(kAccounts);
  for (int i = 0; i < kAccounts; ++i)
    entries[i].measure = pack_measure(i % 2 ? AccountState::kWarned : AccountState::kSuspended, kT0 / kS - i);
  std::atomic<int> lapses[2] = {0, 0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < 2; ++t) {
    ts.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int round = 0; round < 2; ++round) {
        for (int i = 0; i < kAccounts; ++i) {
          AccountState f;
          judge_message(entries[t ? kAccounts - 1 - i : i], kT0, p, &f);
          if (f == AccountState::kWarned) lapses[0].fetch_add(1);
          if (f == AccountState::kSuspended) lapses[1].fetch_add(1);
        }
      }
    });
  }
  go.store(true);
  for (auto& t : ts) t.join();
  EXPECT_EQ(lapses[0].load(), kAccounts / 2);
  EXPECT_EQ(lapses[1].load(), kAccounts / 2);
}

TEST(Escalator, KthViolationInWindowEscalates) {
  EscalationPolicy p;  // 3 in 600 s; warned expires after 1 d, shutdown never
  Escalator esc(p);
  EXPECT_EQ(esc.on_violation("alice", AccountState::kNone, kT0), std::nullopt);
  EXPECT_EQ(esc.on_violation("alice", AccountState::kNone, kT0 + 100 * kS), std::nullopt);
  EXPECT_EQ(esc.on_violation("bob", AccountState::kNone, kT0 + 100 * kS), std::nullopt);
  EXPECT_EQ(esc.tracked(), 2u);
  auto t = esc.on_violation("alice", AccountState::kNone, kT0 + 599 * kS);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->from, AccountState::kNone);
  EXPECT_EQ(t->to, AccountState::kWarned);
  EXPECT_EQ(t->until_s, kT0 / kS + 599 + 86400);
  EXPECT_EQ(esc.tracked(), 1u);  // the count reset

  // The window opens at the first violation: two in it, then the window closes, and the third
  // violation opens a new one.
  EXPECT_EQ(esc.on_violation("carol", AccountState::kWarned, kT0), std::nullopt);
  EXPECT_EQ(esc.on_violation("carol", AccountState::kWarned, kT0 + 300 * kS), std::nullopt);
  EXPECT_EQ(esc.on_violation("carol", AccountState::kWarned, kT0 + 600 * kS), std::nullopt);
  EXPECT_EQ(esc.on_violation("carol", AccountState::kWarned, kT0 + 700 * kS), std::nullopt);
  t = esc.on_violation("carol", AccountState::kWarned, kT0 + 800 * kS);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->to, AccountState::kRestricted);

  for (int i = 0; i < 3; ++i) t = esc.on_violation("dave", AccountState::kSuspended, kT0);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->to, AccountState::kShutdown);
  EXPECT_EQ(t->until_s, 0);  // shutdown is indefinite
  for (int i = 0; i < 5; ++i) EXPECT_EQ(esc.on_violation("dave", AccountState::kShutdown, kT0), std::nullopt);

  // prune drops closed windows only.
  EXPECT_EQ(esc.tracked(), 1u);  // bob
  esc.on_violation("erin", AccountState::kNone, kT0 + 650 * kS);
  esc.prune(kT0 + 699 * kS);
  EXPECT_EQ(esc.tracked(), 2u);  // bob's window opened at +100 s: open until +700 s
  esc.prune(kT0 + 700 * kS);
  EXPECT_EQ(esc.tracked(), 1u);  // only erin's remains
  esc.prune(kT0 + 1250 * kS);
  EXPECT_EQ(esc.tracked(), 0u);
}

TEST(Escalator, OneViolationAndDisabled) {
  EscalationPolicy p;
  p.violations = 1;
  p.expire_s[2] = 0;
  Escalator esc(p);
  auto t = esc.on_violation("a", AccountState::kWarned, kT0);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->to, AccountState::kRestricted);
  EXPECT_EQ(t->until_s, 0);
  EXPECT_EQ(esc.tracked(), 0u);
  p.enabled = false;
  Escalator off(p);
  EXPECT_EQ(off.on_violation("a", AccountState::kNone, kT0), std::nullopt);
  EXPECT_EQ(off.tracked(), 0u);
}

}  // namespace
}  // namespace imf::dp::policy
