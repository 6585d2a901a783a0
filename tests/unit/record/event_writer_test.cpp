// The record thread: events from the rings into the records chain, losses written into the chain,
// and escalation applied to the account table. Rings and the table need EAL.
#include "record/event_writer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "private_eal.h"
#include "proto/json.h"

namespace imf::dp::record {
namespace {

using imf::policy::AccountState;

// base 2026-01-01T00:00:00Z at tsc 0, 1 GHz: tsc == ns since then.
constexpr int64_t kBase = 1767225600LL * 1000000000LL;
const Clock kClock{0, kBase, 1000000000};

Event drop_event(const std::string& account, uint64_t tsc) {
  Event e{};
  e.tsc = tsc;
  e.ip_version = 4;
  e.measure = static_cast<uint8_t>(inspect::Measure::kRuleDrop);
  e.account_known = 1;
  e.account_len = static_cast<uint8_t>(account.size());
  std::memcpy(e.account, account.data(), account.size());
  std::memcpy(e.rule, "abuse.x", 7);
  e.rule_len = 7;
  e.version = 3;
  return e;
}

class EventWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) / ("writer_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    policy_.violations = 2;
    policy_.window_s = 600;
    policy_.expire_s[static_cast<size_t>(AccountState::kWarned)] = 86400;
    accounts_ = std::move(policy::AccountTable::create(64, qsv_.v, policy_).value());
    auto ring = EventRing::create("wtest" + std::to_string(++rings_made_), 16, 0);
    ASSERT_TRUE(ring.ok()) << ring.error();
    ring_ = std::make_unique<EventRing>(ring.value());
  }
  void TearDown() override {
    accounts_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<EventWriter> writer(std::atomic<uint64_t>* lost) {
    records::ChainConfig cc;
    cc.dir = dir_.string();
    cc.source = "dataplane";
    cc.appliance = "t";
    WriterOutputs out;
    out.chain = std::move(records::ChainWriter::open(cc).value());
    out.accounts = accounts_.get();
    out.escalator = std::make_unique<policy::Escalator>(policy_);
    out.events_lost = [lost] { return lost->load(); };
    return std::move(EventWriter::open(std::move(out), {ring_.get()}, kClock).value());
  }

  std::vector<json::Value> records() {
    std::vector<json::Value> out;
    for (const auto& f : std::filesystem::directory_iterator(dir_)) {
      if (f.path().extension() != ".jsonl") continue;
      std::ifstream in(f.path());
      for (std::string line; std::getline(in, line);) out.push_back(json::parse(line).value());
    }
    return out;
  }
  static std::string str(const json::Value& v, const char* k) {
    const json::Value* m = v.find(k);
    return !m ? "<absent>" : m->is_string() ? m->as_string() : json::to_string(*m);
  }

  static inline int rings_made_ = 0;
  std::filesystem::path dir_;
  test::TestQsbr qsv_{1};
  imf::policy::EscalationPolicy policy_;
  std::unique_ptr<policy::AccountTable> accounts_;
  std::unique_ptr<EventRing> ring_;
};

TEST_F(EventWriterTest, ViolationsEscalateAndTheChangeIsRecorded) {
  std::atomic<uint64_t> lost{0};
  auto w = writer(&lost);
  ASSERT_TRUE(ring_->push(drop_event("mal", 1000)));
  ASSERT_TRUE(ring_->push(drop_event("mal", 2000)));  // the second within the window
  w->start();
  w->stop();
  auto recs = records();
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(str(recs[0], "action"), "drop");
  EXPECT_EQ(str(recs[2], "kind"), "state_change");
  EXPECT_EQ(str(recs[2], "cause"), "violations");
  EXPECT_EQ(str(recs[2], "account"), "mal");
  EXPECT_EQ(str(recs[2], "state_before"), "none");
  EXPECT_EQ(str(recs[2], "state_after"), "warned");
  EXPECT_EQ(str(recs[2], "until"), std::to_string(kBase / 1000000000 + 86400));
  EXPECT_EQ(str(recs[2], "rule"), "abuse.x");
  auto row = accounts_->get("mal");  // the table the workers read changed too
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->state, AccountState::kWarned);
  EXPECT_EQ(w->escalations(), 1u);
}

TEST_F(EventWriterTest, EscalationStepsUpFromTheAccountsCurrentState) {
  ASSERT_TRUE(accounts_->set({"op", {}, AccountState::kSuspended, 0, {}}).ok());
  std::atomic<uint64_t> lost{0};
  auto w = writer(&lost);
  // An operator suspended the account; two more violations (e.g. judged before the suspension
  // reached the workers) take it one step further.
  Event a = drop_event("op", 1000), b = drop_event("op", 2000);
  ASSERT_TRUE(ring_->push(a));
  ASSERT_TRUE(ring_->push(b));
  w->start();
  w->stop();
  EXPECT_EQ(accounts_->get("op")->state, AccountState::kShutdown);  // one step up from where it is
  auto recs = records();
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(str(recs[2], "state_before"), "suspended");
}

TEST_F(EventWriterTest, EventsTheWorkersCouldNotQueueAreWrittenIntoTheChain) {
  std::atomic<uint64_t> lost{0};
  auto w = writer(&lost);
  w->start();
  lost = 7;  // a worker's ring was full seven times
  w->stop();
  auto recs = records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(str(recs[0], "kind"), "records_lost");
  EXPECT_EQ(str(recs[0], "count"), "7");
  EXPECT_EQ(str(recs[0], "total"), "7");
}

}  // namespace
}  // namespace imf::dp::record

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new imf::test::PrivateEal("event_writer_test", 256));
  return RUN_ALL_TESTS();
}
