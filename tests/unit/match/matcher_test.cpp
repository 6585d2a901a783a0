#include "match/matcher.h"

#include <gtest/gtest.h>

#include <string>

#include "rules/rule_parser.h"

namespace imf::dp::match {
namespace {

// Rule indices below follow the order of kRules.
constexpr const char* kRules =
    "money     drop   payload        /free\\s+money/i\n"  // 0
    "hello     alert  payload        \"hello\"\n"         // 1
    "tail      alert  payload        /bye$/\n"            // 2
    "topic     alert  topic          \"secret\"\n"        // 3
    "both      alert  payload,topic  \"shared\"\n";       // 4

class MatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto set = rules::parse_rules(kRules, "t.rules");
    ASSERT_TRUE(set.ok()) << set.error();
    auto compiled = rules::compile_rules(set.value());
    ASSERT_TRUE(compiled.ok()) << compiled.error();
    auto gen = install_generation(compiled.value(), 7, [](const std::vector<std::string>&) { return uint64_t{0}; });
    ASSERT_TRUE(gen.ok()) << gen.error();
    gen_ = std::move(gen.value());
    auto pool = StreamPool::create(*gen_, 2);
    ASSERT_TRUE(pool.ok()) << pool.error();
    pool_ = std::move(pool.value());
    auto m = Matcher::create(*gen_);
    ASSERT_TRUE(m.ok()) << m.error();
    matcher_ = std::move(m.value());
  }

  ScanResult scan(const std::string& s, Field f = Field::kPayload, uint32_t stream = 0) {
    return matcher_->scan(pool_->get(stream), f, reinterpret_cast<const uint8_t*>(s.data()),
                          static_cast<uint32_t>(s.size()), MessageContext{});
  }
  ScanResult end(Field f = Field::kPayload, uint32_t stream = 0) {
    return matcher_->end_field(pool_->get(stream), f, MessageContext{});
  }

  std::unique_ptr<RuleGeneration> gen_;
  std::unique_ptr<StreamPool> pool_;
  std::unique_ptr<Matcher> matcher_;
};

TEST_F(MatcherTest, GenerationReportsSizesAndScopes) {
  EXPECT_EQ(gen_->version, 7u);
  EXPECT_EQ(gen_->rules.size(), 5u);
  EXPECT_GT(gen_->stream_size, 0u);
  EXPECT_GT(gen_->db_size, 0u);
  EXPECT_EQ(gen_->scopes, rules::kScopePayload | rules::kScopeTopic);
}

TEST_F(MatcherTest, DropRuleMatchesAcrossChunksAndStopsTheScan) {
  EXPECT_EQ(scan("get FREE  mo").n_hits, 0);
  ScanResult r = scan("ney now");
  ASSERT_EQ(r.n_hits, 1);
  EXPECT_TRUE(r.drop);
  EXPECT_EQ(r.hits[0], 0);
  EXPECT_FALSE(r.error);
}

TEST_F(MatcherTest, PatternSplitAtEveryByteStillMatches) {
  const std::string msg = "xx free money yy";
  for (size_t cut = 0; cut <= msg.size(); ++cut) {
    Matcher::reset(pool_->get(0));
    ScanResult a = scan(msg.substr(0, cut));
    ScanResult b = scan(msg.substr(cut));
    EXPECT_TRUE(a.drop || b.drop) << "cut at " << cut;
  }
}

TEST_F(MatcherTest, AlertsAreReportedOncePerField) {
  ScanResult r = scan("hello hello");
  ASSERT_EQ(r.n_hits, 1);
  EXPECT_FALSE(r.drop);
  EXPECT_EQ(r.hits[0], 1);
  EXPECT_EQ(scan(" hello").n_hits, 0);  // single match per field
  end();
  EXPECT_EQ(scan("hello").n_hits, 1);  // a new field reports again
}

TEST_F(MatcherTest, EndAnchoredMatchIsReportedAtEndOfField) {
  EXPECT_EQ(scan("good bye").n_hits, 0);
  ScanResult r = end();
  ASSERT_EQ(r.n_hits, 1);
  EXPECT_EQ(r.hits[0], 2);
  // "bye" not at the end of the field does not match.
  EXPECT_EQ(scan("bye now").n_hits, 0);
  EXPECT_EQ(end().n_hits, 0);
}

TEST_F(MatcherTest, ScopeDecidesWhichRulesApplyToAField) {
  EXPECT_EQ(scan("secret").n_hits, 0);  // topic-only rule in a payload
  end();
  ScanResult t = scan("a/secret", Field::kTopic);
  ASSERT_EQ(t.n_hits, 1);
  EXPECT_EQ(t.hits[0], 3);
  end(Field::kTopic);
  EXPECT_EQ(scan("hello", Field::kTopic).n_hits, 0);  // payload-only rule in a topic
  end(Field::kTopic);
  EXPECT_EQ(scan("shared", Field::kTopic).n_hits, 1);
  end(Field::kTopic);
  EXPECT_EQ(scan("shared", Field::kPayload).n_hits, 1);
}

TEST_F(MatcherTest, NoMatchAcrossFieldsOrStreams) {
  scan("free ");
  end();
  EXPECT_EQ(scan("money").n_hits, 0);  // the field boundary reset the stream
  end();
  scan("free ", Field::kPayload, 0);
  EXPECT_EQ(scan("money", Field::kPayload, 1).n_hits, 0);  // other stream
}

// Rules with conditions: channels, markers (bit 0 = verified, bit 1 = press), dry-run, no pattern.
constexpr const char* kScopedRules =
    "pub.unverified drop payload channel=public/# without=verified *\n"        // 0
    "news.link      drop payload channel=news/+,alerts with=press \"http\"\n"  // 1
    "spam.try       drop payload mode=dry-run category=spam \"buy now\"\n"     // 2
    "spam.real      drop payload \"spam spam\"\n";                             // 3

class ScopedMatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto set = rules::parse_rules(kScopedRules, "s.rules");
    ASSERT_TRUE(set.ok()) << set.error();
    auto compiled = rules::compile_rules(set.value());
    ASSERT_TRUE(compiled.ok()) << compiled.error();
    auto gen = install_generation(compiled.value(), 1, [](const std::vector<std::string>& names) {
      uint64_t m = 0;
      for (const std::string& n : names) m |= n == "verified" ? 1 : n == "press" ? 2 : 4;
      return Result<uint64_t>(m);
    });
    ASSERT_TRUE(gen.ok()) << gen.error();
    gen_ = std::move(gen.value());
    pool_ = std::move(StreamPool::create(*gen_, 1).value());
    matcher_ = std::move(Matcher::create(*gen_).value());
  }
  ScanResult message(const std::string& topic, const std::string& body, uint64_t markers, bool known = true) {
    MessageContext m{topic.data(), static_cast<uint32_t>(topic.size()), markers, known};
    ScanResult any = matcher_->judge_any_body(m);
    if (any.n_hits) return any;
    ScanResult r = matcher_->scan(pool_->get(0), Field::kPayload, reinterpret_cast<const uint8_t*>(body.data()),
                                  static_cast<uint32_t>(body.size()), m);
    ScanResult e = matcher_->end_field(pool_->get(0), Field::kPayload, m);
    for (uint8_t i = 0; i < e.n_hits; ++i) r.hits[r.n_hits++] = e.hits[i];
    r.drop |= e.drop;
    return r;
  }
  std::unique_ptr<RuleGeneration> gen_;
  std::unique_ptr<StreamPool> pool_;
  std::unique_ptr<Matcher> matcher_;
};

TEST_F(ScopedMatcherTest, GenerationMapsMarkersAndListsRulesWithoutPattern) {
  EXPECT_TRUE(gen_->conditional);
  ASSERT_EQ(gen_->any_body.size(), 1u);
  EXPECT_EQ(gen_->any_body[0], 0);
  EXPECT_EQ(gen_->scope[0].without_mask, 1u);
  EXPECT_EQ(gen_->scope[1].with_mask, 2u);
  EXPECT_TRUE(gen_->scope[2].dry_run);
  EXPECT_EQ(gen_->rules[2].cond.category, "spam");
}

TEST_F(ScopedMatcherTest, ChannelAndMarkerGateARuleWithoutPattern) {
  ScanResult r = message("public/town", "hello", 0);  // unverified on public/#: dropped
  ASSERT_EQ(r.n_hits, 1);
  EXPECT_EQ(r.hits[0], 0);
  EXPECT_TRUE(r.drop);
  EXPECT_EQ(message("public", "hello", 0).n_hits, 1);              // "public/#" covers "public"
  EXPECT_EQ(message("public/town", "hello", 1).n_hits, 0);         // verified publisher passes
  EXPECT_EQ(message("private/x", "hello", 0).n_hits, 0);           // other channel
  EXPECT_EQ(message("publicity", "hello", 0).n_hits, 0);           // not the same level
  EXPECT_EQ(message("public/town", "hello", 0, false).n_hits, 0);  // sender unknown: marker rules skip
}

TEST_F(ScopedMatcherTest, PatternRuleAppliesOnlyInItsChannelsToMarkedSenders) {
  EXPECT_TRUE(message("news/world", "see http://x", 2).drop);
  EXPECT_TRUE(message("alerts", "see http://x", 2 | 1).drop);
  EXPECT_EQ(message("news/world/extra", "see http://x", 2).n_hits, 0);  // '+' is one level
  EXPECT_EQ(message("news/world", "see http://x", 1).n_hits, 0);        // lacks press
  EXPECT_EQ(message("chat", "see http://x", 2).n_hits, 0);
}

TEST(ProtocolMatcher, ProtocolConditionAndChannelsMatchPerProtocol) {
  auto set = rules::parse_rules(
      "irc.kids drop body protocol=irc channel=#kids* \"badword\"\n"
      "mqtt.kids drop body channel=kids/# \"badword\"\n"
      "xmpp.only alert body protocol=xmpp \"hello\"\n",
      "p.rules");
  ASSERT_TRUE(set.ok()) << set.error();
  auto gen = install_generation(rules::compile_rules(set.value()).value(), 1,
                                [](const std::vector<std::string>&) { return Result<uint64_t>(0); });
  ASSERT_TRUE(gen.ok()) << gen.error();
  auto applies = [&](uint32_t rule, uint8_t protocol, const std::string& channel) {
    MessageContext m{channel.data(), static_cast<uint32_t>(channel.size()), 0, false, protocol};
    return rule_applies(*gen.value(), rule, m);
  };
  constexpr uint8_t kMqtt = 0, kXmpp = 1, kIrc = 3;
  EXPECT_TRUE(applies(0, kIrc, "#KIDS-room"));  // a glob, caseless
  EXPECT_FALSE(applies(0, kIrc, "#adults"));
  EXPECT_FALSE(applies(0, kMqtt, "#kids"));     // protocol=irc
  EXPECT_TRUE(applies(1, kMqtt, "kids/room"));  // an MQTT topic filter for MQTT ...
  EXPECT_TRUE(applies(1, kXmpp, "kids/#"));     // ... and a glob (here: a plain name) for the others
  EXPECT_FALSE(applies(1, kXmpp, "kids/room"));
  EXPECT_TRUE(applies(2, kXmpp, "anything"));
  EXPECT_FALSE(applies(2, kMqtt, "anything"));
  EXPECT_TRUE(gen.value()->conditional);
}

TEST_F(ScopedMatcherTest, DryRunDropIsReportedButDecidesNothing) {
  ScanResult r = message("chat", "buy now", 0);
  ASSERT_EQ(r.n_hits, 1);
  EXPECT_EQ(r.hits[0], 2);
  EXPECT_FALSE(r.drop);
  ScanResult both = message("chat", "buy now spam spam", 0);  // the enforced rule still drops
  EXPECT_TRUE(both.drop);
  EXPECT_EQ(both.hits[both.n_hits - 1], 3);
}

}  // namespace
}  // namespace imf::dp::match
