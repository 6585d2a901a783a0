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
  e.action = static_cast<uint8_t>(rules::Action::kDrop);
  e.version = 7;
  e.ip_version = 4;
  e.lcore = 3;
  e.account_len = static_cast<uint8_t>(account.size());
  std::memcpy(e.account, account.data(), account.size());
  e.topic_len = static_cast<uint8_t>(topic.size());
  std::memcpy(e.topic, topic.data(), topic.size());
  return e;
}

// base 2026-01-01T00:00:00Z at tsc 1000, 1 GHz: tsc 3000 is 2 us later.
const Clock kClock{1000, 1767225600LL * 1000000000LL, 1000000000};

TEST(EventJson, HasEveryFieldAndNoContent) {
  std::string j = event_to_json(make_event("alice", "chat/room1"), kClock);
  EXPECT_EQ(j,
            "{\"ts\":\"2026-01-01T00:00:00.000002Z\",\"lcore\":3,\"flow\":{\"proto\":\"tcp\",\"src\":\"10.0.0.1\","
            "\"sport\":40000,\"dst\":\"10.0.0.2\",\"dport\":1883,\"vlan\":12},\"account\":\"alice\","
            "\"topic\":\"chat/room1\",\"rule\":\"spam.x\",\"action\":\"drop\",\"rules_version\":7}\n");
}

TEST(EventJson, EscapesQuotesControlsAndInvalidUtf8) {
  std::string j = event_to_json(make_event("a\"b\\c\n", "t\x01\xff\xc3\xa9"), kClock);
  EXPECT_NE(j.find("\"account\":\"a\\\"b\\\\c\\u000a\""), std::string::npos) << j;
  // \x01 escaped, lone \xff replaced by U+FFFD, valid "é" (c3 a9) kept.
  EXPECT_NE(j.find("\"topic\":\"t\\u0001\xef\xbf\xbd\xc3\xa9\""), std::string::npos) << j;
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
