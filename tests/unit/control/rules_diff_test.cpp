#include "daemon/rules_diff.h"

#include <gtest/gtest.h>

#include "rules/rule_parser.h"

namespace imf::control {
namespace {

rules::RuleSet parse(const std::string& text) {
  auto r = rules::parse_rules(text, "t.rules");
  EXPECT_TRUE(r.ok()) << r.error();
  return r.value();
}

TEST(RulesDiff, AddedRemovedChangedById) {
  std::string a =
      "# v1\n"
      "same     drop  payload  \"x\"\n"
      "moved    alert payload  /m/\n"
      "gone     drop  topic    \"old\"\n"
      "action   alert payload  \"a\"\n"
      "scope    drop  payload  \"s\"\n"
      "pattern  drop  payload  /p1/\n"
      "flags    drop  payload  /f/\n";
  std::string b =
      "new      drop  payload  \"n\"\n"
      "same  drop payload \"x\"\n"
      "action   drop  payload  \"a\"\n"
      "scope    drop  payload,topic  \"s\"\n"
      "pattern  drop  payload  /p2/\n"
      "flags    drop  payload  /f/i\n"
      "\n"
      "moved    alert payload  /m/\n";
  auto d = diff_rules(parse(a), a, parse(b), b);
  ASSERT_EQ(d.added.size(), 1u);
  EXPECT_EQ(d.added[0].id, "new");
  EXPECT_EQ(d.added[0].to_line, 1u);
  EXPECT_EQ(d.added[0].to_text, "new      drop  payload  \"n\"");
  ASSERT_EQ(d.removed.size(), 1u);
  EXPECT_EQ(d.removed[0].id, "gone");
  EXPECT_EQ(d.removed[0].from_line, 4u);
  EXPECT_EQ(d.removed[0].from_text, "gone     drop  topic    \"old\"");
  std::vector<std::string> changed;
  for (const RuleChange& c : d.changed) changed.push_back(c.id);
  EXPECT_EQ(changed, (std::vector<std::string>{"action", "scope", "pattern", "flags"}));
  EXPECT_EQ(d.changed[2].from_text, "pattern  drop  payload  /p1/");
  EXPECT_EQ(d.changed[2].to_text, "pattern  drop  payload  /p2/");
  EXPECT_EQ(d.changed[2].from_line, 7u);
  EXPECT_EQ(d.changed[2].to_line, 5u);
}

TEST(RulesDiff, LiteralAndRegexOfTheSameTextDiffer) {
  std::string a = "r drop payload \"abc\"\n";
  std::string b = "r drop payload /abc/\n";
  auto d = diff_rules(parse(a), a, parse(b), b);
  EXPECT_TRUE(d.added.empty());
  EXPECT_TRUE(d.removed.empty());
  ASSERT_EQ(d.changed.size(), 1u);
}

TEST(RulesDiff, IdenticalSetsHaveNoDifferences) {
  std::string a = "r drop payload \"abc\"\nq alert topic /x/\n";
  auto d = diff_rules(parse(a), a, parse(a), a);
  EXPECT_TRUE(d.added.empty() && d.removed.empty() && d.changed.empty());
}

}  // namespace
}  // namespace imf::control
