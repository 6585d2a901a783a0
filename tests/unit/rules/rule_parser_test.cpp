#include "rules/rule_parser.h"

#include <gtest/gtest.h>

namespace imf::rules {
namespace {

TEST(RuleParser, ParsesEveryFieldForm) {
  auto r = parse_rules(
      "# comment\n"
      "\n"
      "spam.a   drop   payload        /fr[e3]{2}\\s+money/is\n"
      "phish:b  alert  topic          \"verify \\\"now\\\" \\x41\\\\\"i\n"
      "mal-c    drop   payload,topic  /a/b/c/mu\n",
      "t.rules");
  ASSERT_TRUE(r.ok()) << r.error();
  const auto& rules = r->rules;
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules[0].id, "spam.a");
  EXPECT_EQ(rules[0].action, Action::kDrop);
  EXPECT_EQ(rules[0].scope, kScopePayload);
  EXPECT_FALSE(rules[0].literal);
  EXPECT_EQ(rules[0].pattern, "fr[e3]{2}\\s+money");
  EXPECT_EQ(rules[0].flags, kFlagCaseless | kFlagDotAll);
  EXPECT_EQ(rules[0].line, 3u);
  EXPECT_EQ(rules[1].action, Action::kAlert);
  EXPECT_EQ(rules[1].scope, kScopeTopic);
  EXPECT_TRUE(rules[1].literal);
  EXPECT_EQ(rules[1].pattern, "verify \"now\" A\\");
  EXPECT_EQ(rules[1].flags, kFlagCaseless);
  EXPECT_EQ(rules[2].scope, kScopePayload | kScopeTopic);
  EXPECT_EQ(rules[2].pattern, "a/b/c");  // the regex runs to the last '/'
  EXPECT_EQ(rules[2].flags, kFlagMultiline | kFlagUtf8);
}

struct BadCase {
  const char* line;
  const char* error;  // expected substring, after "t.rules:1: "
};

class RuleParserErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(RuleParserErrors, NamesFileLineRuleAndProblem) {
  auto r = parse_rules(GetParam().line, "t.rules");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().rfind("t.rules:1: ", 0), 0u) << r.error();
  EXPECT_NE(r.error().find(GetParam().error), std::string::npos) << r.error();
}

INSTANTIATE_TEST_SUITE_P(
    All, RuleParserErrors,
    ::testing::Values(
        BadCase{"bad/id drop payload \"x\"", "bad rule id"},
        BadCase{"x block payload \"x\"", "rule 'x': unknown action 'block'"}, BadCase{"x", "rule 'x': missing action"},
        BadCase{"x drop text \"x\"", "rule 'x': unknown scope 'text'"}, BadCase{"x drop", "rule 'x': missing scope"},
        BadCase{"x drop payload", "rule 'x': missing pattern"},
        BadCase{"x drop payload xyz", "must be \"literal\" or /regex/"},
        BadCase{"x drop payload \"abc", "no closing '\"'"}, BadCase{"x drop payload \"\"", "empty literal"},
        BadCase{"x drop payload \"a\\q\"", "unknown escape"}, BadCase{"x drop payload \"a\\x4\"", "two hex digits"},
        BadCase{"x drop payload /abc", "no closing '/'"}, BadCase{"x drop payload //", "empty regex"},
        BadCase{"x drop payload /a/z", "unknown pattern flag 'z'"}, BadCase{"x drop payload /a/ii", "given twice"},
        BadCase{"x drop payload colour=red \"x\"", "unknown option 'colour'"},
        BadCase{"x drop payload channel=a/#/b \"x\"", "'#' must be the last level"},
        BadCase{"x drop payload channel=a/b+ \"x\"", "'+' must fill a whole level"},
        BadCase{"x drop payload with=Verified \"x\"", "marker 'Verified'"},
        BadCase{"x drop payload mode=later \"x\"", "unknown mode 'later'"},
        BadCase{"x drop payload category= \"x\"", "option 'category' has no value"},
        BadCase{"x drop payload *", "needs channel=, with= or without="},
        BadCase{"x drop topic channel=a/# *", "it takes scope body"},
        BadCase{"x drop body protocol=aim \"x\"", "unknown protocol 'aim'"},
        BadCase{"x drop body protocol=irc protocol=sip \"x\"", "protocol given twice"},
        BadCase{"x drop body channel=#kids \"x\"", "channel '#kids' is not an MQTT topic filter"},
        BadCase{"x drop body protocol=irc channel=#ki\x01ds \"x\"", "no spaces or control characters"},
        BadCase{"x drop payload channel=a/# category=spam", "missing pattern"}));

TEST(RuleParser, ParsesConditionsAndRulesWithoutPattern) {
  auto r = parse_rules(
      "pub  drop  payload  channel=public/#,news/+ without=verified_publisher category=publishing *\n"
      "try  drop  payload  mode=dry-run with=a,b \"free money\"i\n",
      "t.rules");
  ASSERT_TRUE(r.ok()) << r.error();
  const RuleConditions& c0 = r->rules[0].cond;
  EXPECT_TRUE(c0.any_body);
  EXPECT_EQ(c0.channels, (std::vector<std::string>{"public/#", "news/+"}));
  EXPECT_EQ(c0.without_markers, std::vector<std::string>{"verified_publisher"});
  EXPECT_EQ(c0.category, "publishing");
  EXPECT_FALSE(c0.dry_run);
  const RuleConditions& c1 = r->rules[1].cond;
  EXPECT_TRUE(c1.dry_run);
  EXPECT_FALSE(c1.any_body);
  EXPECT_EQ(c1.with_markers, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r->rules[1].pattern, "free money");
}

TEST(RuleParser, ProtocolsScopesAndChannelsOfEveryProtocol) {
  auto r = parse_rules(
      "a drop body \"free money\"\n"
      "b alert channel,body protocol=xmpp,sip \"x\"\n"
      "c drop body protocol=irc channel=#kids*,&local \"badword\"\n"
      "d drop payload protocol=mqtt channel=kids/# \"y\"\n"
      "e alert payload,topic \"z\"\n",
      "p.rules");
  ASSERT_TRUE(r.ok()) << r.error();
  const auto& rules = r->rules;
  EXPECT_EQ(rules[0].scope, kScopeBody);
  EXPECT_EQ(rules[0].cond.protocols, 0);  // every protocol
  EXPECT_EQ(rules[1].scope, kScopeBody | kScopeChannel);
  EXPECT_EQ(rules[1].cond.protocols, kProtoXmpp | kProtoSip);
  EXPECT_EQ(rules[2].cond.protocols, kProtoIrc);
  EXPECT_EQ(rules[2].cond.channels, (std::vector<std::string>{"#kids*", "&local"}));  // globs: not MQTT filters
  EXPECT_EQ(rules[3].scope, kScopeBody);
  EXPECT_EQ(rules[3].cond.protocols, kProtoMqtt);
  EXPECT_EQ(rules[4].scope, kScopeBody | kScopeChannel);  // MQTT's names for the same scopes
}

TEST(RuleParser, ReportsEveryBadLineAndDuplicates) {
  auto r = parse_rules("a drop payload \"x\"\nb nope payload \"x\"\na alert payload \"y\"\n", "f");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("f:2: rule 'b': unknown action"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("f:3: rule 'a': duplicate rule id"), std::string::npos) << r.error();
}

TEST(RuleParser, EmptyFileIsAnError) {
  auto r = parse_rules("# only a comment\n\n", "f");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "f: no rules");
}

TEST(RuleParser, MissingFileIsAnError) {
  auto r = load_rules_file("/nonexistent/x.rules");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("cannot open"), std::string::npos);
}

TEST(RuleParser, ExampleRuleSetParses) {
  auto r = load_rules_file(IMF_SOURCE_ROOT "/config/rules/example.rules");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_GE(r->rules.size(), 8u);
}

}  // namespace
}  // namespace imf::rules
