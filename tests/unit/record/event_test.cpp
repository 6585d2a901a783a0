#include "record/event.h"

#include <gtest/gtest.h>

#include <cstring>

namespace imf::dp::record {
namespace {

Event make_event(const std::string& account, const std::string& topic) {
  Event e{};
  e.tsc = 3000;
  const uint8_t src[4] = {10, 0, 0, 1}, dst[4] = {10, 0, 0, 2};
  std::memcpy(e.src_ip, src, 4);
  std::memcpy(e.dst_ip, dst, 4);
  e.src_port = 40000;
  e.dst_port = 1883;
  e.vlan = 12;
  std::memcpy(e.rule, "spam.x", 6);
  e.rule_len = 6;
  e.measure = static_cast<uint8_t>(inspect::Measure::kRuleDrop);
  e.account_known = 1;
  std::memcpy(e.category, "spam", 4);
  e.category_len = 4;
  e.state_before = e.state_after = static_cast<uint8_t>(imf::policy::AccountState::kWarned);
  e.version = 7;
  e.ip_version = 4;
  e.lcore = 3;
  e.account_len = static_cast<uint8_t>(account.size());
  std::memcpy(e.account, account.data(), account.size());
  e.channel_len = static_cast<uint8_t>(topic.size());
  std::memcpy(e.channel, topic.data(), topic.size());
  e.protocol = 0;  // mqtt
  e.has_message = 1;
  e.message_kind = 0;  // publish
  e.l4_proto = 6;
  return e;
}

// base 2026-01-01T00:00:00Z at tsc 1000, 1 GHz: tsc 3000 is 2 us later.
const Clock kClock{1000, 1767225600LL * 1000000000LL, 1000000000};

TEST(EventJson, HasEveryFieldAndNoContent) {
  std::string j = event_to_json(make_event("alice", "chat/room1"), kClock);
  EXPECT_EQ(j,
            "{\"ts\":\"2026-01-01T00:00:00.000002Z\",\"kind\":\"measure\",\"action\":\"drop\",\"lcore\":3,"
            "\"flow\":{\"proto\":\"tcp\",\"src\":\"10.0.0.1\",\"sport\":40000,\"dst\":\"10.0.0.2\",\"dport\":1883,"
            "\"vlan\":12},\"direction\":\"to_server\",\"account\":\"alice\",\"protocol\":\"mqtt\","
            "\"message\":\"publish\",\"channel\":\"chat/room1\","
            "\"rule\":\"spam.x\",\"rules_version\":7,\"category\":\"spam\",\"state_before\":\"warned\","
            "\"state_after\":\"warned\",\"until\":0,\"digest\":null,\"digest_bytes\":0}\n");
}

TEST(EventJson, MeasuresWithoutRuleAndWithDigest) {
  Event e = make_event("bob", "t");
  e.measure = static_cast<uint8_t>(inspect::Measure::kLapsed);
  e.state_before = static_cast<uint8_t>(imf::policy::AccountState::kSuspended);
  e.state_after = static_cast<uint8_t>(imf::policy::AccountState::kNone);
  e.has_digest = 1;
  std::memset(e.digest, 0xab, sizeof(e.digest));
  e.digest_bytes = 42;
  std::string f = event_fields(e);
  EXPECT_EQ(f.rfind("\"kind\":\"state_change\",\"cause\":\"expired\",\"action\":\"expired\"", 0), 0u) << f;
  EXPECT_NE(f.find("\"rule\":null,\"rules_version\":null,\"category\":null"), std::string::npos) << f;
  EXPECT_NE(f.find("\"state_before\":\"suspended\",\"state_after\":\"none\""), std::string::npos) << f;
  std::string hex;
  for (int i = 0; i < 32; ++i) hex += "ab";
  EXPECT_NE(f.find("\"digest\":\"hmac-sha256:" + hex + "\",\"digest_bytes\":42"), std::string::npos) << f;
  e.account_known = 0;  // a connection picked up without its CONNECT
  EXPECT_NE(event_fields(e).find("\"account\":null"), std::string::npos);
}

TEST(EventJson, EscapesQuotesControlsAndInvalidUtf8) {
  std::string j = event_to_json(make_event("a\"b\\c\n", "t\x01\xff\xc3\xa9"), kClock);
  EXPECT_NE(j.find("\"account\":\"a\\\"b\\\\c\\u000a\""), std::string::npos) << j;
  // \x01 escaped, lone \xff replaced by U+FFFD, valid "é" (c3 a9) kept.
  EXPECT_NE(j.find("\"channel\":\"t\\u0001\xef\xbf\xbd\xc3\xa9\""), std::string::npos) << j;
}

TEST(EventJson, RejectsOverlongAndSurrogateUtf8) {
  std::string j = event_to_json(make_event("\xc0\xaf", "\xed\xa0\x80"), kClock);
  EXPECT_EQ(j.find("\xc0\xaf"), std::string::npos) << j;
  EXPECT_EQ(j.find("\xed\xa0\x80"), std::string::npos) << j;
}

TEST(EventJson, FormatsIpv6) {
  Event e = make_event("a", "t");
  e.ip_version = 6;
  std::memset(e.src_ip, 0, 16);
  e.src_ip[0] = 0xfd;
  e.src_ip[15] = 1;
  std::string j = event_to_json(e, kClock);
  EXPECT_NE(j.find("\"src\":\"fd00::1\""), std::string::npos) << j;
}

}  // namespace
}  // namespace imf::dp::record
