#include "rules/topic_filter.h"

#include <gtest/gtest.h>

#include <string>

namespace imf::rules {
namespace {

TEST(TopicFilter, MatchesLikeMqtt) {
  struct Case {
    const char* filter;
    const char* topic;
    bool match;
  } cases[] = {
      {"a/b", "a/b", true},
      {"a/b", "a/c", false},
      {"a/b", "a/b/c", false},
      {"a/b/c", "a/b", false},
      {"a/+", "a/b", true},
      {"a/+", "a/", true},  // an empty level is a level
      {"a/+", "a", false},
      {"a/+", "a/b/c", false},
      {"+/+", "/x", true},
      {"+", "a", true},
      {"+", "a/b", false},
      {"a/#", "a", true},  // '#' includes the parent level
      {"a/#", "a/", true},
      {"a/#", "a/b/c", true},
      {"a/#", "ab", false},
      {"a/#", "b/a", false},
      {"#", "a/b/c", true},
      {"#", "/", true},
      {"a/+/c/#", "a/x/c", true},
      {"a/+/c/#", "a/x/d", false},
      {"sport/tennis/+", "sport/tennis/player1", true},
      {"sport/+", "sport", false},
      {"/+", "/finance", true},
      {"+", "/finance", false},
      {"#", "$SYS/broker", false},  // MQTT 4.7.2
      {"+/broker", "$SYS/broker", false},
      {"$SYS/#", "$SYS/broker", true},
      {"$SYS/+", "$SYS/broker", true},
      {"a/$x", "a/$x", true},
      {"a/+", "a/$x", true},  // only a leading '$' is special
      {"A/b", "a/b", false},
  };
  for (const auto& c : cases) EXPECT_EQ(topic_matches(c.filter, c.topic), c.match) << c.filter << " vs " << c.topic;
}

TEST(TopicFilter, ChecksWildcardPlacementAndLength) {
  for (const char* ok : {"a", "#", "+", "a/#", "+/+/#", "/", "a//b", "$SYS/+", "a/+/c"})
    EXPECT_TRUE(check_topic_filter(ok).ok()) << ok;
  struct Case {
    std::string filter;
    const char* error;
  } bad[] = {
      {"", "1-128 bytes"},
      {std::string(129, 'a'), "1-128 bytes"},
      {"a#", "'#' must be the last level"},
      {"a/#/b", "'#' must be the last level"},
      {"#/", "'#' must be the last level"},
      {"a+", "'+' must fill a whole level"},
      {"a/+b", "'+' must fill a whole level"},
      {"++", "'+' must fill a whole level"},
      {std::string("a\0b", 3), "NUL"},
  };
  for (const auto& c : bad) {
    auto st = check_topic_filter(c.filter);
    ASSERT_FALSE(st.ok()) << c.filter;
    EXPECT_NE(st.error().find(c.error), std::string::npos) << st.error();
  }
  EXPECT_TRUE(check_topic_filter(std::string(128, 'a')).ok());
}

TEST(ChannelGlob, MatchesCaselessWithStarAndQuestionMark) {
  struct Case {
    const char* glob;
    const char* text;
    bool match;
  } cases[] = {
      {"#kids", "#kids", true},
      {"#kids", "#KIDS", true},
      {"#kids", "#kids2", false},
      {"#kids*", "#kids-room", true},
      {"#kids*", "#kid", false},
      {"*@muc.example.org", "lobby@muc.example.org", true},
      {"*@muc.example.org", "lobby@MUC.Example.org", true},
      {"*@muc.example.org", "lobby@muc.example.org.evil", false},
      {"alice@*", "alice@example.org", true},
      {"a?c", "abc", true},
      {"a?c", "ac", false},
      {"*", "", true},
      {"*a*b*", "xxaxxbxx", true},
      {"*a*b*", "xxbxxaxx", false},
      {"sip:*@example.com", "sip:bob@example.com", true},
  };
  for (const Case& c : cases) EXPECT_EQ(glob_matches(c.glob, c.text), c.match) << c.glob << " vs " << c.text;
  EXPECT_TRUE(check_glob("#kids*").ok());
  EXPECT_FALSE(check_glob("").ok());
  EXPECT_FALSE(check_glob("a b").ok());
  EXPECT_FALSE(check_glob(std::string(257, 'a')).ok());
}

TEST(ChannelGlob, PathologicalPatternsStayCheap) {
  std::string text(20000, 'a');
  std::string glob;
  for (int i = 0; i < 100; ++i) glob += "*a";
  glob += "b";
  EXPECT_FALSE(glob_matches(glob, text));  // exponential with recursive backtracking
}

}  // namespace
}  // namespace imf::rules
