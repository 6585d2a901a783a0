// The inspector with a real account table: markers gating rules, each measure and its
// transitions, rate precision and expiry on an injected clock, message digests. The table needs
// EAL (rte_hash, rte_malloc): this test brings its own main() with a private, hugepage-free EAL.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "inspect/inspector.h"
#include "packet_builder.h"
#include "private_eal.h"
#include "records/digest.h"
#include "rules/rule_parser.h"

namespace imf::dp::inspect {
namespace {

using imf::policy::AccountRow;
using imf::policy::Rate;
using test::Bytes;
using test::PacketBuilder;
constexpr uint8_t kSyn = 0x02, kAck = 0x10, kPsh = 0x08;
constexpr int64_t kSec = 1000000000;
constexpr int64_t kT0 = 1767225600 * kSec;  // 2026-01-01T00:00:00Z

constexpr const char* kRules =
    "pub.unverified drop payload channel=public/# without=verified *\n"     // 0
    "news.link      drop payload with=press \"http\"\n"                     // 1
    "spam.trial     drop payload mode=dry-run category=spam \"buy now\"\n"  // 2
    "spam.hard      drop payload category=spam \"spam spam\"\n";            // 3

struct RecordedHit {
  Measure what;
  uint16_t rule;
  AccountState before, after;
  int64_t until_s;
  uint8_t dir;
  std::string digest;  // hex, empty when none
  uint32_t digest_bytes;
};

struct RecordingSink {
  std::vector<RecordedHit> hits;
  void on_hit(const Hit& h) {
    hits.push_back({h.what, h.rule, h.state_before, h.state_after, h.until_s, h.dir_index,
                    h.digest ? records::to_hex(h.digest, 32) : "", h.digest_bytes});
  }
};

// One client connection 10.0.0.1:port <-> broker 10.0.0.2:1883 with its own flow slot.
struct Conn {
  uint32_t slot;
  uint16_t port;
  FlowState fs;
  uint32_t cseq = 1000, sseq = 9000;
  bool created = false;
};

class AccountsTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kSlots = 16;

  void SetUp() override {
    imf::policy::EscalationPolicy pol;
    pol.restricted_rate = Rate{3, 60};
    auto t = policy::AccountTable::create(1024, qsv_.v, pol);
    ASSERT_TRUE(t.ok()) << t.error();
    accounts_ = std::move(t.value());

    auto set = rules::parse_rules(kRules, "a.rules");
    ASSERT_TRUE(set.ok()) << set.error();
    auto compiled = rules::compile_rules(set.value());
    ASSERT_TRUE(compiled.ok()) << compiled.error();
    auto gen = match::install_generation(compiled.value(), 4, [this](const std::vector<std::string>& names) {
      return accounts_->markers().mask_of(names);
    });
    ASSERT_TRUE(gen.ok()) << gen.error();
    gen_ = std::move(gen.value());
    streams_ = std::move(match::StreamPool::create(*gen_, kSlots * 2 + 1).value());
    matcher_ = std::move(match::Matcher::create(*gen_).value());
    key_.fill(0x5a);
    key_state_ = records::prepare_hmac(key_);
    InspectConfig cfg;
    cfg.accounts = accounts_.get();
    cfg.digest_key = &key_state_;
    ins_ = std::make_unique<Inspector>(cfg, *matcher_, *streams_, counters_);
    ins_->set_now(kT0);
  }
  void TearDown() override {
    ins_.reset();
    accounts_.reset();
  }

  void set_account(const std::string& name, AccountState s, int64_t until_s = 0, std::vector<std::string> markers = {},
                   Rate rate = {}) {
    AccountRow row;
    row.account = name;
    row.markers = std::move(markers);
    row.state = s;
    row.until_s = until_s;
    row.rate = rate;
    ASSERT_TRUE(accounts_->set(row).ok());
  }

  Conn& conn() {
    conns_.push_back(std::make_unique<Conn>());
    Conn& c = *conns_.back();
    c.slot = static_cast<uint32_t>(conns_.size() - 1);
    c.port = static_cast<uint16_t>(40000 + c.slot);
    return c;
  }

  Verdict send(Conn& c, bool client, uint8_t flags, const Bytes& data) {
    uint32_t& seq = client ? c.cseq : c.sseq;
    uint32_t ack = client ? c.sseq : c.cseq;
    PacketBuilder b;
    if (client) {
      b.ipv4({10, 0, 0, 1}, {10, 0, 0, 2}).tcp(c.port, 1883, seq, ack, flags);
    } else {
      b.ipv4({10, 0, 0, 2}, {10, 0, 0, 1}).tcp(1883, c.port, seq, ack, flags);
    }
    b.payload(data);
    frame_ = b.build();
    decode::PacketMeta m;
    EXPECT_EQ(decode::decode_packet(frame_.data(), static_cast<uint32_t>(frame_.size()), &m),
              decode::DecodeStatus::kOk);
    if (!c.created) {
      EXPECT_EQ(ins_->classify_new(m), NewFlow::kOpen);
      ins_->init_flow(c.fs, c.slot, m, client, stream::kAnyPort, 0);
      c.created = true;
    }
    uint8_t flow_class;
    Verdict v = ins_->on_segment(c.fs, c.slot, m, frame_.data() + m.payload_offset, client, stream::kAnyPort, sink_,
                                 &flow_class);
    seq += static_cast<uint32_t>(data.size()) + ((flags & kSyn) ? 1 : 0);
    return v;
  }

  // A handshake and a CONNECT as `user`; returns the CONNECT's verdict.
  Verdict open(Conn& c, const std::string& user) {
    EXPECT_EQ(send(c, true, kSyn, {}), Verdict::kForward);
    EXPECT_EQ(send(c, false, kSyn | kAck, {}), Verdict::kForward);
    EXPECT_EQ(send(c, true, kAck, {}), Verdict::kForward);
    return send(c, true, kPsh | kAck, test::mqtt_connect(4, "cid-" + user, user));
  }
  Verdict publish(Conn& c, const std::string& topic, const std::string& body, bool client = true) {
    return send(c, client, kPsh | kAck, test::mqtt_publish(4, topic, body));
  }
  std::string hmac(const std::string& body) { return records::hmac_hex(key_, body); }
  uint64_t count(Counter c) const { return counters_.get(c); }

  test::TestQsbr qsv_{1};
  std::unique_ptr<policy::AccountTable> accounts_;
  std::unique_ptr<match::RuleGeneration> gen_;
  std::unique_ptr<match::StreamPool> streams_;
  std::unique_ptr<match::Matcher> matcher_;
  records::Key key_;
  records::HmacKeyState key_state_;
  Counters counters_;
  std::unique_ptr<Inspector> ins_;
  std::vector<std::unique_ptr<Conn>> conns_;
  RecordingSink sink_;
  Bytes frame_;
};

TEST_F(AccountsTest, UnmarkedAccountsMayNotPostOnPublicChannels) {
  set_account("press-desk", AccountState::kNone, 0, {"verified", "press"});
  Conn& a = conn();
  EXPECT_EQ(open(a, "press-desk"), Verdict::kForward);
  EXPECT_EQ(publish(a, "public/news", "hello town"), Verdict::kForward);
  EXPECT_EQ(publish(a, "chat/1", "see http://example.test"), Verdict::kReset);  // with=press applies
  ASSERT_EQ(sink_.hits.size(), 1u);
  EXPECT_EQ(sink_.hits[0].rule, 1);

  sink_.hits.clear();
  Conn& b = conn();  // not in the table: no markers at all
  EXPECT_EQ(open(b, "stranger"), Verdict::kForward);
  EXPECT_EQ(publish(b, "chat/1", "see http://example.test"), Verdict::kForward);  // lacks press
  EXPECT_EQ(publish(b, "public/news", "hello town"), Verdict::kReset);
  ASSERT_EQ(sink_.hits.size(), 1u);
  EXPECT_EQ(sink_.hits[0].what, Measure::kRuleDrop);
  EXPECT_EQ(sink_.hits[0].rule, 0);
  EXPECT_EQ(sink_.hits[0].digest, hmac("hello town"));

  sink_.hits.clear();
  Conn& c = conn();  // the broker delivering to a client: the sender is unknown, markers never match
  EXPECT_EQ(open(c, "reader"), Verdict::kForward);
  EXPECT_EQ(publish(c, "public/news", "hello town", false), Verdict::kForward);
  EXPECT_TRUE(sink_.hits.empty());
}

TEST_F(AccountsTest, MarkersChangedOnALiveConnectionApplyToItsNextMessage) {
  Conn& a = conn();
  EXPECT_EQ(open(a, "grace"), Verdict::kForward);
  set_account("grace", AccountState::kNone, 0, {"verified"});  // inserted after the CONNECT
  EXPECT_EQ(publish(a, "public/x", "first"), Verdict::kForward);
  set_account("grace", AccountState::kNone, 0, {});
  EXPECT_EQ(publish(a, "public/x", "second"), Verdict::kReset);
}

TEST_F(AccountsTest, DryRunRecordsWouldDropAndPasses) {
  Conn& a = conn();
  EXPECT_EQ(open(a, "trial"), Verdict::kForward);
  EXPECT_EQ(publish(a, "chat/1", "buy now!"), Verdict::kForward);
  ASSERT_EQ(sink_.hits.size(), 1u);
  EXPECT_EQ(sink_.hits[0].what, Measure::kRuleWouldDrop);
  EXPECT_EQ(count(Counter::rule_would_drops), 1u);
  EXPECT_EQ(count(Counter::rule_drops), 0u);
  EXPECT_EQ(publish(a, "chat/1", "spam spam"), Verdict::kReset);  // the enforced rule still acts
}

TEST_F(AccountsTest, WarnedAccountMessagesPassAndAreRecordedWithTheirWholeDigest) {
  set_account("wendy", AccountState::kWarned);
  Conn& a = conn();
  EXPECT_EQ(open(a, "wendy"), Verdict::kForward);
  std::string body(300, 'w');
  EXPECT_EQ(publish(a, "chat/1", body), Verdict::kForward);
  EXPECT_EQ(publish(a, "chat/1", "again"), Verdict::kForward);
  ASSERT_EQ(sink_.hits.size(), 2u);
  EXPECT_EQ(sink_.hits[0].what, Measure::kWarned);
  EXPECT_EQ(sink_.hits[0].before, AccountState::kWarned);
  EXPECT_EQ(sink_.hits[0].after, AccountState::kWarned);
  EXPECT_EQ(sink_.hits[0].digest, hmac(body));
  EXPECT_EQ(sink_.hits[0].digest_bytes, 300u);
  EXPECT_EQ(sink_.hits[1].digest, hmac("again"));
  EXPECT_EQ(count(Counter::account_warned_messages), 2u);
}

TEST_F(AccountsTest, RestrictedAccountSendsExactlyItsRate) {
  set_account("rita", AccountState::kRestricted, 0, {}, Rate{3, 60});
  // Each excess message resets its connection, so each message gets a connection of its own.
  auto one = [&] {
    Conn& c = conn();
    EXPECT_EQ(open(c, "rita"), Verdict::kForward);
    return publish(c, "chat/1", "msg");
  };
  EXPECT_EQ(one(), Verdict::kForward);
  EXPECT_EQ(one(), Verdict::kForward);
  EXPECT_EQ(one(), Verdict::kForward);
  EXPECT_EQ(one(), Verdict::kReset);  // the fourth within the interval
  ASSERT_FALSE(sink_.hits.empty());
  EXPECT_EQ(sink_.hits.back().what, Measure::kRateDrop);
  EXPECT_EQ(sink_.hits.back().digest, hmac("msg"));
  ins_->set_now(kT0 + 19 * kSec);
  EXPECT_EQ(one(), Verdict::kReset);  // 60 s / 3: the next token comes at 20 s
  ins_->set_now(kT0 + 20 * kSec);
  EXPECT_EQ(one(), Verdict::kForward);
  EXPECT_EQ(one(), Verdict::kReset);
  ins_->set_now(kT0 + 200 * kSec);  // a whole interval idle: a full bucket again, not more
  EXPECT_EQ(one(), Verdict::kForward);
  EXPECT_EQ(one(), Verdict::kForward);
  EXPECT_EQ(one(), Verdict::kForward);
  EXPECT_EQ(one(), Verdict::kReset);
  EXPECT_EQ(count(Counter::account_rate_drops), 4u);

  // Without a rate of its own, the policy's (3 per 60 s in this fixture) applies.
  set_account("rob", AccountState::kRestricted);
  int passed = 0;
  for (int i = 0; i < 5; ++i) {
    Conn& c = conn();
    open(c, "rob");
    passed += publish(c, "chat/1", "m") == Verdict::kForward;
  }
  EXPECT_EQ(passed, 3);
}

TEST_F(AccountsTest, SuspendedAccountIsRefusedUntilTheSuspensionLapses) {
  int64_t until = kT0 / kSec + 100;
  set_account("sam", AccountState::kSuspended, until);
  Conn& a = conn();
  EXPECT_EQ(open(a, "sam"), Verdict::kReset);
  ASSERT_EQ(sink_.hits.size(), 1u);
  EXPECT_EQ(sink_.hits[0].what, Measure::kSuspended);
  EXPECT_EQ(sink_.hits[0].until_s, until);    // the record says until when
  EXPECT_TRUE(sink_.hits[0].digest.empty());  // a connection, not a message
  EXPECT_EQ(count(Counter::account_connects_refused), 1u);

  sink_.hits.clear();
  ins_->set_now((until + 1) * kSec);
  Conn& b = conn();
  EXPECT_EQ(open(b, "sam"), Verdict::kForward);
  ASSERT_EQ(sink_.hits.size(), 1u);  // the lapse, recorded once
  EXPECT_EQ(sink_.hits[0].what, Measure::kLapsed);
  EXPECT_EQ(sink_.hits[0].before, AccountState::kSuspended);
  EXPECT_EQ(sink_.hits[0].after, AccountState::kNone);
  EXPECT_EQ(sink_.hits[0].until_s, 0);
  EXPECT_EQ(accounts_->get("sam")->state, AccountState::kNone);
  EXPECT_EQ(publish(b, "chat/1", "back"), Verdict::kForward);
  EXPECT_EQ(sink_.hits.size(), 1u);
  EXPECT_EQ(count(Counter::account_measures_lapsed), 1u);
}

TEST_F(AccountsTest, SuspendingAnOpenConnectionResetsItsNextMessage) {
  Conn& a = conn();
  EXPECT_EQ(open(a, "dave"), Verdict::kForward);
  EXPECT_EQ(publish(a, "chat/1", "before"), Verdict::kForward);
  set_account("dave", AccountState::kSuspended, kT0 / kSec + 3600);
  EXPECT_EQ(publish(a, "chat/1", "after"), Verdict::kReset);
  ASSERT_EQ(sink_.hits.size(), 1u);
  EXPECT_EQ(sink_.hits[0].what, Measure::kSuspended);
  EXPECT_EQ(sink_.hits[0].digest, hmac("after"));
  EXPECT_EQ(sink_.hits[0].digest_bytes, 5u);
}

TEST_F(AccountsTest, ShutdownResetsOpenConnectionsOnTheirNextPacketEitherWay) {
  Conn& a = conn();
  Conn& b = conn();
  EXPECT_EQ(open(a, "erin"), Verdict::kForward);
  EXPECT_EQ(open(b, "erin"), Verdict::kForward);
  set_account("erin", AccountState::kShutdown);
  // The broker's keep-alive answer on one connection, the client's own message on the other.
  EXPECT_EQ(send(a, false, kPsh | kAck, test::mqtt_simple(13)), Verdict::kReset);
  EXPECT_EQ(publish(b, "chat/1", "hi"), Verdict::kReset);
  ASSERT_EQ(sink_.hits.size(), 2u);
  EXPECT_EQ(sink_.hits[0].what, Measure::kShutdown);
  EXPECT_EQ(sink_.hits[0].dir, 1);
  EXPECT_EQ(sink_.hits[1].what, Measure::kShutdown);
  Conn& c = conn();
  EXPECT_EQ(open(c, "erin"), Verdict::kReset);  // and new ones, indefinitely
  ins_->set_now(kT0 + 365LL * 86400 * kSec);
  Conn& d = conn();
  EXPECT_EQ(open(d, "erin"), Verdict::kReset);
}

TEST_F(AccountsTest, ClearingAMeasureLetsTheAccountBackIn) {
  set_account("pat", AccountState::kSuspended);
  Conn& a = conn();
  EXPECT_EQ(open(a, "pat"), Verdict::kReset);
  set_account("pat", AccountState::kNone);
  Conn& b = conn();
  EXPECT_EQ(open(b, "pat"), Verdict::kForward);
  EXPECT_EQ(publish(b, "chat/1", "ok"), Verdict::kForward);
}

TEST_F(AccountsTest, DeletedAccountIsUnknownAgain) {
  set_account("del", AccountState::kNone, 0, {"verified"});
  Conn& a = conn();
  EXPECT_EQ(open(a, "del"), Verdict::kForward);
  EXPECT_EQ(publish(a, "public/x", "m"), Verdict::kForward);
  ASSERT_TRUE(accounts_->del("del"));
  EXPECT_EQ(publish(a, "public/x", "m"), Verdict::kReset);  // no markers any more
}

}  // namespace
}  // namespace imf::dp::inspect

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new imf::test::PrivateEal("inspector_accounts_test", 256));
  return RUN_ALL_TESTS();
}
