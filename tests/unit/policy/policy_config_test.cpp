#include "policy/policy_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace imf::policy {
namespace {

TEST(PolicyConfig, StateNamesRoundTrip) {
  for (int i = 0; i < kStateCount; ++i) {
    auto s = static_cast<AccountState>(i);
    EXPECT_EQ(parse_state(state_name(s)), s);
  }
  EXPECT_EQ(parse_state("Warned"), std::nullopt);
  EXPECT_EQ(parse_state(""), std::nullopt);
  EXPECT_EQ(next_state(AccountState::kNone), AccountState::kWarned);
  EXPECT_EQ(next_state(AccountState::kSuspended), AccountState::kShutdown);
  EXPECT_EQ(next_state(AccountState::kShutdown), AccountState::kShutdown);
}

TEST(PolicyConfig, Durations) {
  EXPECT_EQ(parse_duration("30s").value(), 30u);
  EXPECT_EQ(parse_duration("10m").value(), 600u);
  EXPECT_EQ(parse_duration("2h").value(), 7200u);
  EXPECT_EQ(parse_duration("7d").value(), 7u * 86400);
  EXPECT_EQ(parse_duration("600").value(), 600u);
  for (const char* bad : {"", "0", "0s", "s", "-5", "5x", "1.5h", " 5", "5 s", "99999999999999999999d"}) {
    auto r = parse_duration(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_NE(parse_duration("5x").error().find("Nm"), std::string::npos);
}

TEST(PolicyConfig, Rates) {
  EXPECT_EQ(parse_rate("10/60s").value(), (Rate{10, 60}));
  EXPECT_EQ(parse_rate("10/1m").value(), (Rate{10, 60}));
  EXPECT_EQ(parse_rate("100/1h").value(), (Rate{100, 3600}));
  EXPECT_EQ(parse_rate("5/1d").value(), (Rate{5, 86400}));
  EXPECT_EQ(parse_rate("3/7").value(), (Rate{3, 7}));
  for (const char* bad : {"", "10", "/60s", "0/60s", "10/", "10/0s", "-1/60s", "10/60q", "10/99999999999s"}) {
    auto r = parse_rate(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().find("bad rate"), std::string::npos) << r.error();
  }
  EXPECT_NE(parse_rate("10").error().find("e.g. 10/60s"), std::string::npos);
  EXPECT_EQ(format_rate({10, 60}), "10/60s");
  EXPECT_EQ(format_rate({}), "");
  EXPECT_EQ(parse_rate(format_rate({7, 3600})).value(), (Rate{7, 3600}));
}

TEST(PolicyConfig, ParsesTheDocumentedExample) {
  const char* text =
      "# comment\n"
      "escalation on\n"
      "violations 4   # k\n"
      "window 15m\n"
      "\n"
      "expire warned 2d\r\n"
      "expire restricted never\n"
      "expire suspended 7d\n"
      "restricted-rate 5/1m\n"
      "report-threshold 0\n";
  auto p = parse_policy(text, "policy.conf");
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_TRUE(p->enabled);
  EXPECT_EQ(p->violations, 4u);
  EXPECT_EQ(p->window_s, 900u);
  EXPECT_EQ(p->expire_s[1], 2u * 86400);
  EXPECT_EQ(p->expire_s[2], 0u);
  EXPECT_EQ(p->expire_s[3], 7u * 86400);
  EXPECT_EQ(p->expire_s[4], 0u);
  EXPECT_EQ(p->restricted_rate, (Rate{5, 60}));
  EXPECT_EQ(p->report_threshold, 0u);

  auto d = parse_policy("", "x");  // defaults
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->violations, 3u);
  EXPECT_EQ(d->window_s, 600u);
  EXPECT_EQ(d->restricted_rate, (Rate{10, 60}));
  EXPECT_FALSE(parse_policy("escalation off", "x")->enabled);
}

TEST(PolicyConfig, ErrorsNameSourceAndLine) {
  struct Case {
    const char* text;
    const char* error;
  } cases[] = {
      {"violations 3\nbogus 1\n", "p.conf:2: unknown key 'bogus' (known: escalation, violations, window, expire,"},
      {"expire shutdown 1d\n", "p.conf:1: expire shutdown: shutdown is indefinite"},
      {"expire none 1d\n", "p.conf:1: expire none:"},
      {"expire banned 1d\n", "p.conf:1: expire: unknown state 'banned'"},
      {"expire warned\n", "p.conf:1: 'expire' takes 2 values, got 1"},
      {"violations\n", "p.conf:1: 'violations' takes 1 value, got 0"},
      {"violations 0\n", "p.conf:1: violations must be a whole number >= 1"},
      {"window 10x\n", "p.conf:1: window: bad duration '10x'"},
      {"escalation yes\n", "p.conf:1: escalation is 'on' or 'off'"},
      {"restricted-rate 10\n", "p.conf:1: restricted-rate: bad rate '10'"},
      {"report-threshold -1\n", "p.conf:1: report-threshold must be a whole number"},
      {"window 1m\n# c\nwindow 2m\n", "p.conf:3: 'window' given twice"},
      {"expire warned 1d\nexpire warned 2d\n", "p.conf:2: 'expire warned' given twice"},
  };
  for (const auto& c : cases) {
    auto p = parse_policy(c.text, "p.conf");
    ASSERT_FALSE(p.ok()) << c.text;
    EXPECT_EQ(p.error().rfind(c.error, 0), 0u) << p.error();
  }
  EXPECT_TRUE(parse_policy("expire warned 1d\nexpire restricted 2d\n", "p").ok());
}

TEST(PolicyConfig, LoadsAFile) {
  std::string path = ::testing::TempDir() + "/policy_" + std::to_string(getpid()) + ".conf";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("violations 5\nwindow 1h\n", f);
  std::fclose(f);
  auto p = load_policy_file(path);
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->violations, 5u);
  EXPECT_EQ(p->window_s, 3600u);
  std::remove(path.c_str());
  auto missing = load_policy_file(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().rfind(path + ": cannot open", 0), 0u) << missing.error();
}

TEST(PolicyConfig, AccountRowsRoundTrip) {
  auto r = parse_account_row("alice@example,zz;press;a.b-c_1;press,restricted,1767225600,5/1m\r");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->account, "alice@example");
  EXPECT_EQ(r->markers, (std::vector<std::string>{"a.b-c_1", "press", "zz"}));
  EXPECT_EQ(r->state, AccountState::kRestricted);
  EXPECT_EQ(r->until_s, 1767225600);
  EXPECT_EQ(r->rate, (Rate{5, 60}));
  EXPECT_EQ(format_account_row(r.value()), "alice@example,a.b-c_1;press;zz,restricted,1767225600,5/60s");
  EXPECT_EQ(parse_account_row(format_account_row(r.value())).value(), r.value());

  auto bare = parse_account_row("bob with spaces,,,,");
  ASSERT_TRUE(bare.ok()) << bare.error();
  EXPECT_TRUE(bare->markers.empty());
  EXPECT_EQ(bare->state, AccountState::kNone);
  EXPECT_EQ(bare->until_s, 0);
  EXPECT_TRUE(bare->rate.unset());
  EXPECT_EQ(format_account_row(bare.value()), "bob with spaces,,,,");
  EXPECT_EQ(parse_account_row("c,,none,0,").value(), (AccountRow{"c", {}, AccountState::kNone, 0, {}}));

  AccountRow full{std::string(96, 'x'), {}, AccountState::kShutdown, 1, {1, 1}};
  for (int i = 0; i < 64; ++i) full.markers.push_back("m" + std::to_string(100 + i));
  EXPECT_EQ(parse_account_row(format_account_row(full)).value(), full);
}

TEST(PolicyConfig, AccountRowErrorsNameTheColumn) {
  std::string many;
  for (int i = 0; i < 65; ++i) many += (i ? ";m" : "m") + std::to_string(i);
  struct Case {
    std::string line;
    const char* error;
  } cases[] = {
      {"alice", "expected 5 columns"},
      {"alice,,,", "expected 5 columns"},
      {"alice,,,,,", "expected 5 columns"},
      {",,,,", "account: "},
      {std::string(97, 'a') + ",,,,", "account: account of 97 bytes"},
      {"al\tice,,,,", "account: account contains a control character"},
      {"alice,Press,,,", "markers: marker name 'Press'"},
      {"alice,a;;b,,,", "markers: marker name ''"},
      {"alice,a;,,,", "markers: marker name ''"},
      {"alice," + std::string(33, 'm') + ",,,", "markers: marker name"},
      {"alice," + many + ",,,", "markers: 65 distinct, at most 64"},
      {"alice,,banned,,", "state: unknown 'banned'"},
      {"alice,,warned,-5,", "until: '-5'"},
      {"alice,,warned,soon,", "until: 'soon'"},
      {"alice,,warned,,fast", "rate: bad rate 'fast'"},
  };
  for (const auto& c : cases) {
    auto r = parse_account_row(c.line);
    ASSERT_FALSE(r.ok()) << c.line;
    EXPECT_EQ(r.error().rfind(c.error, 0), 0u) << c.line << " -> " << r.error();
  }
  EXPECT_TRUE(check_marker_name("verified_publisher").ok());
  EXPECT_FALSE(check_marker_name("a b").ok());
  EXPECT_TRUE(check_account_name("ünïcode user").ok());
  EXPECT_FALSE(check_account_name("a,b").ok());
}

}  // namespace
}  // namespace imf::policy
