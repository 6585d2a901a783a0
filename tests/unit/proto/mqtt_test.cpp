#include "proto/mqtt.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "packet_builder.h"

namespace imf::dp::proto {
namespace {

using test::Bytes;
using test::mqtt_connect;
using test::mqtt_publish;
using test::mqtt_simple;
using test::mqtt_varint;
using test::MqttConnectSpec;

struct ConnectRec {
  uint8_t version;
  std::string account;
  bool has_username;
  bool truncated;
  bool operator==(const ConnectRec&) const = default;
};

struct MessageRec {
  MessageKind kind = MessageKind::kMqttPublish;
  std::string topic;
  std::string payload;
  bool topic_ended = false;
  bool ended = false;
  uint16_t alias = 0;
  bool operator==(const MessageRec&) const = default;
};

std::ostream& operator<<(std::ostream& os, const ConnectRec& c) {
  return os << "{v" << int{c.version} << " '" << c.account << "' user=" << c.has_username << " trunc=" << c.truncated
            << "}";
}
std::ostream& operator<<(std::ostream& os, const MessageRec& m) {
  return os << "{" << message_kind_name(m.kind) << " topic='" << m.topic << "' payload=" << m.payload.size()
            << "B topic_end=" << m.topic_ended << " end=" << m.ended << " alias=" << m.alias << "}";
}

// Records what the decoder reports and checks the call order decoder.h promises.
// With stop_after = N, the N-th callback returns false.
struct RecordingSink {
  std::vector<ConnectRec> connects;
  std::vector<MessageRec> messages;
  std::vector<std::string> violations;  // callbacks out of order
  int calls = 0;
  int stop_after = -1;
  bool body_open = false;  // bytes came since the last body end

  bool next() { return ++calls != stop_after; }
  bool in_message() const { return !messages.empty() && !messages.back().ended; }

  bool on_account(const MqttSession& s) {
    if (in_message()) violations.push_back("account inside a message");
    if (s.account_len > MqttSession::kAccountCap) violations.push_back("account_len > cap");
    connects.push_back({s.version, std::string(s.account, std::min<uint32_t>(s.account_len, MqttSession::kAccountCap)),
                        s.has_username, s.account_truncated});
    return next();
  }
  bool on_message_begin(MessageKind kind) {
    if (in_message()) violations.push_back("message_begin inside a message");
    if (kind != MessageKind::kMqttPublish && kind != MessageKind::kMqttWill) violations.push_back("not an MQTT kind");
    messages.push_back({});
    messages.back().kind = kind;
    return next();
  }
  bool on_channel(const uint8_t* p, uint32_t n) {
    if (!in_message() || messages.back().topic_ended) violations.push_back("channel outside channel");
    if (n == 0) violations.push_back("empty channel chunk");
    if (in_message()) messages.back().topic.append(reinterpret_cast<const char*>(p), n);
    return next();
  }
  bool on_channel_alias(uint16_t alias) {
    if (!in_message() || messages.back().topic_ended) violations.push_back("alias outside a publish header");
    if (alias == 0) violations.push_back("alias 0");
    if (in_message()) messages.back().alias = alias;
    return next();
  }
  bool on_channel_end() {
    if (!in_message() || messages.back().topic_ended) violations.push_back("stray channel_end");
    if (in_message()) messages.back().topic_ended = true;
    return next();
  }
  bool on_body(const uint8_t* p, uint32_t n) {
    if (!in_message() || !messages.back().topic_ended) violations.push_back("body before channel_end");
    if (n == 0) violations.push_back("empty body chunk");
    if (in_message()) messages.back().payload.append(reinterpret_cast<const char*>(p), n);
    body_open = true;
    return next();
  }
  bool on_body_end() {
    if (!in_message() || !messages.back().topic_ended) violations.push_back("stray body_end");
    body_open = false;
    return next();
  }
  bool on_message_end() {
    if (!in_message() || !messages.back().topic_ended) violations.push_back("stray message_end");
    if (body_open) violations.push_back("message_end with a body open");
    if (in_message()) messages.back().ended = true;
    return next();
  }
};

// One direction of one connection: decoder, session and sink together.
struct Stream {
  MqttDecoder dec;
  MqttSession session;
  RecordingSink sink;
  bool from_client = true;

  Stream() = default;
  explicit Stream(uint32_t max_remaining) : dec(max_remaining) {}

  FeedResult feed(const uint8_t* p, size_t n) {
    return dec.feed(p, static_cast<uint32_t>(n), from_client, session, sink);
  }
  FeedResult feed(const Bytes& b) { return feed(b.data(), b.size()); }
  // Feeds `b` in chunks of `chunk` bytes; stops at the first result other than kOk.
  FeedResult feed_chunked(const Bytes& b, size_t chunk) {
    for (size_t off = 0; off < b.size(); off += chunk) {
      FeedResult r = feed(b.data() + off, std::min(chunk, b.size() - off));
      if (r != FeedResult::kOk) return r;
    }
    return FeedResult::kOk;
  }
  std::string account() const { return std::string(session.account, session.account_len); }
};

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) test::append(out, p);
  return out;
}

// A complete PUBLISH as the sink records it (its QoS is no event: any qos given is ignored).
MessageRec msg(uint8_t /*qos*/, std::string topic, std::string payload) {
  return MessageRec{MessageKind::kMqttPublish, std::move(topic), std::move(payload), true, true, 0};
}
MessageRec will(std::string topic, std::string payload) {
  return MessageRec{MessageKind::kMqttWill, std::move(topic), std::move(payload), true, true, 0};
}

// ---- CONNECT ----------------------------------------------------------------------------------

struct ConnectCase {
  const char* name;
  Bytes packet;
  ConnectRec expected;
};

// The wills of the cases that have one: streamed as a message (the broker publishes it later).
std::vector<MessageRec> expected_will(const std::string& name);

void PrintTo(const ConnectCase& c, std::ostream* os) { *os << c.name; }

class ConnectTest : public ::testing::TestWithParam<ConnectCase> {};

TEST_P(ConnectTest, YieldsAccountAndVersion) {
  const ConnectCase& c = GetParam();
  for (size_t chunk : {c.packet.size(), size_t{1}, size_t{3}}) {
    SCOPED_TRACE(chunk);
    Stream s;
    ASSERT_EQ(s.feed_chunked(c.packet, chunk), FeedResult::kOk) << mqtt_error_name(s.dec.error());
    EXPECT_TRUE(s.dec.at_packet_boundary());
    ASSERT_EQ(s.sink.connects.size(), 1u);
    EXPECT_EQ(s.sink.connects[0], c.expected);
    EXPECT_EQ(s.session.version, c.expected.version);
    EXPECT_EQ(s.account(), c.expected.account);
    EXPECT_EQ(s.session.has_username, c.expected.has_username);
    EXPECT_EQ(s.session.account_truncated, c.expected.truncated);
    EXPECT_EQ(s.sink.messages, expected_will(c.name));
    EXPECT_TRUE(s.sink.violations.empty());
  }
}

// v5 property blocks: session expiry interval, receive maximum, user property.
const Bytes kConnProps = {0x11, 0, 0, 0x0e, 0x10, 0x21, 0x00, 0x10, 0x26, 0, 1, 'k', 0, 1, 'v'};
const Bytes kWillProps = {0x18, 0, 0, 0, 5, 0x01, 0x01, 0x03, 0, 4, 't', 'e', 'x', 't'};

INSTANTIATE_TEST_SUITE_P(
    Mqtt, ConnectTest,
    ::testing::Values(
        ConnectCase{"v311_username", mqtt_connect(4, "cid-1", "alice", "secret"), {4, "alice", true, false}},
        ConnectCase{"v311_no_username", mqtt_connect(4, "cid-1"), {4, "cid-1", false, false}},
        ConnectCase{"v311_password_only", mqtt_connect(4, "cid-2", std::nullopt, "pw"), {4, "cid-2", false, false}},
        ConnectCase{"v311_empty_client_id", mqtt_connect(4, ""), {4, "", false, false}},
        ConnectCase{"v31_mqisdp", mqtt_connect(3, "legacy", "bob"), {3, "bob", true, false}},
        ConnectCase{"v31_no_username", mqtt_connect(3, "legacy"), {3, "legacy", false, false}},
        ConnectCase{"v5_properties",
                    mqtt_connect(MqttConnectSpec{}
                                     .with_level(5)
                                     .with_client_id("c5")
                                     .with_username("carol")
                                     .with_password("pw")
                                     .with_properties(kConnProps)),
                    {5, "carol", true, false}},
        ConnectCase{"v5_empty_properties", mqtt_connect(5, "c5"), {5, "c5", false, false}},
        ConnectCase{"v5_will_properties",
                    mqtt_connect(MqttConnectSpec{}
                                     .with_level(5)
                                     .with_client_id("c5w")
                                     .with_username("dave")
                                     .with_will("last/will", "gone")
                                     .with_properties(kConnProps)
                                     .with_will_properties(kWillProps)),
                    {5, "dave", true, false}},
        ConnectCase{"v5_will_empty_will_properties",
                    mqtt_connect(MqttConnectSpec{}.with_level(5).with_client_id("c5w").with_will("w", "")),
                    {5, "c5w", false, false}},
        ConnectCase{"v311_will_and_username",
                    mqtt_connect(MqttConnectSpec{}
                                     .with_level(4)
                                     .with_client_id("cw")
                                     .with_username("erin")
                                     .with_password("pw")
                                     .with_will("will/t", "bye bye")),
                    {4, "erin", true, false}},
        ConnectCase{"v311_will_no_username",
                    mqtt_connect(MqttConnectSpec{}.with_level(4).with_client_id("cw2").with_will("", "x")),
                    {4, "cw2", false, false}}),
    [](const auto& info) { return std::string(info.param.name); });

std::vector<MessageRec> expected_will(const std::string& name) {
  if (name == "v5_will_properties") return {will("last/will", "gone")};
  if (name == "v5_will_empty_will_properties") return {will("w", "")};
  if (name == "v311_will_and_username") return {will("will/t", "bye bye")};
  if (name == "v311_will_no_username") return {will("", "x")};
  return {};
}

TEST(MqttConnect, PacketsAfterConnectAreDecodedWithItsVersion) {
  Stream s;
  Bytes buf =
      cat({mqtt_connect(5, "c"), mqtt_publish(5, "t", "p", 1, 7, {0x01, 0x01}), mqtt_simple(test::kMqttPingreq)});
  ASSERT_EQ(s.feed(buf), FeedResult::kOk);
  ASSERT_EQ(s.sink.messages.size(), 1u);
  EXPECT_EQ(s.sink.messages[0], msg(1, "t", "p"));
  EXPECT_TRUE(s.dec.at_packet_boundary());
}

TEST(MqttConnect, ClientIdLongerThanCapIsTruncated) {
  std::string id(200, 'x');
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<char>('a' + i % 26);
  for (size_t chunk : {size_t{1000}, size_t{1}, size_t{7}}) {
    Stream s;
    ASSERT_EQ(s.feed_chunked(mqtt_connect(4, id), chunk), FeedResult::kOk);
    ASSERT_EQ(s.sink.connects.size(), 1u);
    EXPECT_TRUE(s.session.account_truncated);
    EXPECT_EQ(s.session.account_len, MqttSession::kAccountCap);
    EXPECT_EQ(s.account(), id.substr(0, MqttSession::kAccountCap));
  }
}

TEST(MqttConnect, AccountExactlyAtCapIsNotTruncated) {
  std::string id(MqttSession::kAccountCap, 'q');
  Stream s;
  ASSERT_EQ(s.feed(mqtt_connect(4, id)), FeedResult::kOk);
  EXPECT_FALSE(s.session.account_truncated);
  EXPECT_EQ(s.account(), id);
}

TEST(MqttConnect, UsernameReplacesTruncatedClientId) {
  Stream s;
  ASSERT_EQ(s.feed(mqtt_connect(4, std::string(300, 'c'), "user")), FeedResult::kOk);
  EXPECT_EQ(s.account(), "user");
  EXPECT_FALSE(s.session.account_truncated);
  EXPECT_TRUE(s.session.has_username);
}

TEST(MqttConnect, LongUsernameIsTruncated) {
  std::string user(150, 'u');
  Stream s;
  ASSERT_EQ(s.feed(mqtt_connect(5, "c", user)), FeedResult::kOk);
  EXPECT_EQ(s.account(), user.substr(0, MqttSession::kAccountCap));
  EXPECT_TRUE(s.session.account_truncated);
}

TEST(MqttConnect, SecondConnectResetsAccount) {
  Stream s;
  ASSERT_EQ(s.feed(cat({mqtt_connect(4, std::string(120, 'a'), "first"), mqtt_connect(4, "second")})), FeedResult::kOk);
  ASSERT_EQ(s.sink.connects.size(), 2u);
  EXPECT_EQ(s.sink.connects[0].account, "first");
  EXPECT_EQ(s.account(), "second");
  EXPECT_FALSE(s.session.has_username);
  EXPECT_FALSE(s.session.account_truncated);
}

TEST(MqttConnect, ConnectFromServerSideIsSkipped) {
  Stream s;
  s.from_client = false;
  Bytes buf = cat({mqtt_connect(5, "cid", "user"), mqtt_publish(4, "t", "p")});
  ASSERT_EQ(s.feed(buf), FeedResult::kOk);
  EXPECT_TRUE(s.sink.connects.empty());
  EXPECT_EQ(s.session.version, 0);
  EXPECT_EQ(s.session.account_len, 0);
  EXPECT_FALSE(s.session.has_username);
  // The CONNECT was skipped as a whole: the PUBLISH after it is decoded (as pre-v5).
  ASSERT_EQ(s.sink.messages.size(), 1u);
  EXPECT_EQ(s.sink.messages[0], msg(0, "t", "p"));
}

TEST(MqttConnect, BadProtocolLevel) {
  for (uint8_t level : {0, 1, 2, 6, 255}) {
    SCOPED_TRACE(int{level});
    Stream s;
    EXPECT_EQ(s.feed(mqtt_connect(level, "cid")), FeedResult::kError);
    EXPECT_EQ(s.dec.error(), MqttError::kBadProtocolLevel);
    EXPECT_TRUE(s.sink.connects.empty());
  }
}

// Every remaining length shorter than the fields a CONNECT announces, up to the end of the
// username, is an overrun; the password after it is skipped unread.
TEST(MqttConnect, TruncatedConnectIsFieldOverrun) {
  const std::vector<MqttConnectSpec> specs = {
      MqttConnectSpec{}.with_level(4).with_client_id("client").with_username("user").with_password("pass"),
      MqttConnectSpec{}.with_level(3).with_client_id("client").with_username("user"),
      MqttConnectSpec{}.with_level(4).with_client_id("client").with_username("u").with_will("wt", "wp"),
      MqttConnectSpec{}
          .with_level(5)
          .with_client_id("client")
          .with_username("user")
          .with_will("wt", "wp")
          .with_properties(kConnProps)
          .with_will_properties(kWillProps),
  };
  for (const MqttConnectSpec& spec : specs) {
    Bytes full = mqtt_connect(spec);
    // Fixed header is 2 bytes for these sizes; the username field ends before the password.
    ASSERT_LT(full.size(), 130u);
    Bytes body(full.begin() + 2, full.end());
    size_t user_end = body.size() - (spec.password ? 2 + spec.password->size() : 0);
    for (size_t k = 0; k < user_end; ++k) {
      SCOPED_TRACE(::testing::Message() << "level " << int{spec.level} << " body cut to " << k);
      Bytes pkt = {0x10, static_cast<uint8_t>(k)};
      pkt.insert(pkt.end(), body.begin(), body.begin() + static_cast<ptrdiff_t>(k));
      // A following packet: an overrun detected only once more input arrives must still fire.
      test::append(pkt, mqtt_simple(test::kMqttPingreq));
      Stream s;
      EXPECT_EQ(s.feed(pkt), FeedResult::kError);
      EXPECT_EQ(s.dec.error(), MqttError::kFieldOverrun) << mqtt_error_name(s.dec.error());
      EXPECT_TRUE(s.sink.connects.empty());
    }
    for (size_t k = user_end; k <= body.size(); ++k) {
      SCOPED_TRACE(::testing::Message() << "password cut to " << k);
      Bytes pkt = {0x10, static_cast<uint8_t>(k)};
      pkt.insert(pkt.end(), body.begin(), body.begin() + static_cast<ptrdiff_t>(k));
      Stream s;
      EXPECT_EQ(s.feed(pkt), FeedResult::kOk);
      EXPECT_EQ(s.sink.connects.size(), 1u);
      EXPECT_TRUE(s.dec.at_packet_boundary());
    }
  }
}

// ---- PUBLISH ----------------------------------------------------------------------------------

struct PublishCase {
  const char* name;
  uint8_t version;
  std::string topic;
  std::string payload;
  uint8_t qos;
  Bytes props;
};

void PrintTo(const PublishCase& c, std::ostream* os) { *os << c.name; }

class PublishTest : public ::testing::TestWithParam<PublishCase> {};

TEST_P(PublishTest, StreamsTopicAndPayload) {
  const PublishCase& c = GetParam();
  Bytes pkt = mqtt_publish(c.version, c.topic, c.payload, c.qos, 0x1234, c.props);
  for (bool from_client : {true, false}) {
    for (size_t chunk : {pkt.size(), size_t{1}, size_t{2}, size_t{5}}) {
      SCOPED_TRACE(::testing::Message() << "chunk " << chunk << " from_client " << from_client);
      Stream s;
      s.from_client = from_client;
      s.session.version = c.version;
      ASSERT_EQ(s.feed_chunked(pkt, chunk), FeedResult::kOk) << mqtt_error_name(s.dec.error());
      ASSERT_EQ(s.sink.messages.size(), 1u);
      MessageRec want = msg(c.qos, c.topic, c.payload);
      // A Topic Alias property is the last three bytes of the cases that carry one.
      if (c.props.size() >= 3 && c.props[c.props.size() - 3] == 0x23)
        want.alias = static_cast<uint16_t>(c.props[c.props.size() - 2] << 8 | c.props.back());
      EXPECT_EQ(s.sink.messages[0], want);
      EXPECT_TRUE(s.dec.at_packet_boundary());
      EXPECT_TRUE(s.sink.violations.empty()) << s.sink.violations[0];
      EXPECT_EQ(s.dec.error(), MqttError::kNone);
    }
  }
}

const Bytes kPubProps = {0x01, 0x01, 0x02, 0, 0, 0, 60, 0x03, 0, 10, 't', 'e', 'x', 't', '/', 'p', 'l', 'a', 'i', 'n'};

INSTANTIATE_TEST_SUITE_P(
    Mqtt, PublishTest,
    ::testing::Values(
        PublishCase{"v4_qos0", 4, "a/b", "hello", 0, {}}, PublishCase{"v4_qos1", 4, "a/b", "hello", 1, {}},
        PublishCase{"v4_qos2", 4, "a/b", "hello", 2, {}}, PublishCase{"v3_qos1", 3, "legacy/topic", "x", 1, {}},
        PublishCase{"v5_qos0_props", 5, "s/t", "world", 0, kPubProps},
        PublishCase{"v5_qos1_props", 5, "s/t", "world", 1, kPubProps},
        PublishCase{"v5_qos2_props", 5, "s/t", "world", 2, kPubProps},
        PublishCase{"v5_qos0_empty_props", 5, "s/t", "world", 0, {}},
        PublishCase{"v5_qos1_empty_props", 5, "s/t", "world", 1, {}},
        PublishCase{"v4_empty_topic", 4, "", "payload", 0, {}},
        PublishCase{"v4_empty_topic_qos1", 4, "", "payload", 1, {}},
        PublishCase{"v5_empty_topic_alias", 5, "", "payload", 0, {0x23, 0, 1}},
        PublishCase{"v4_empty_payload", 4, "t", "", 0, {}}, PublishCase{"v4_empty_payload_qos2", 4, "t", "", 2, {}},
        PublishCase{"v5_empty_payload", 5, "t", "", 1, kPubProps}, PublishCase{"v4_empty_both", 4, "", "", 0, {}},
        PublishCase{"v5_empty_all", 5, "", "", 0, {0x23, 0, 2}},
        PublishCase{
            "v5_every_publish_property", 5, "t/p", "x", 1, {0x01, 0x01, 0x02, 0,    0,   0,   9,    0x03, 0,   1,
                                                            'c',  0x08, 0,    2,    'r', 't', 0x09, 0,    1,   0xff,
                                                            0x0b, 0x80, 0x01, 0x26, 0,   1,   'k',  0,    0,   0x26,
                                                            0,    0,    0,    2,    'v', 'w', 0x23, 0x12, 0x34}},
        PublishCase{"binary_payload", 4, "bin", std::string("\0\xff\x10\x80", 4), 1, {}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(MqttPublish, V5PropertiesThatBreakTheRulesAreMalformed) {
  struct Case {
    const char* name;
    std::string topic;
    Bytes props;
  } cases[] = {
      {"empty_topic_without_alias", "", {}},
      {"empty_topic_other_properties_only", "", {0x01, 0x00}},
      {"alias_zero", "t", {0x23, 0, 0}},
      // Found by fuzz_mqtt_decoder (tests/fuzz/regressions/fuzz_mqtt_decoder/topic-alias-twice).
      {"alias_twice", "t", {0x23, 0, 1, 0x23, 0, 2}},
      {"property_not_allowed_in_publish", "t", {0x11, 0, 0, 0, 1}},  // session expiry
      {"unknown_property", "t", {0x7f, 1}},
      {"alias_cut_by_property_length", "t", {0x23, 0}},
      {"string_cut_by_property_length", "t", {0x03, 0, 5, 'a'}},
      {"user_property_missing_value", "t", {0x26, 0, 1, 'k'}},
      {"varint_five_bytes", "t", {0x0b, 0x80, 0x80, 0x80, 0x80, 0x01}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Bytes pkt = mqtt_publish(5, c.topic, "body", 0, 0, c.props);
    for (size_t chunk : {pkt.size(), size_t{1}}) {
      Stream s;
      s.session.version = 5;
      EXPECT_EQ(s.feed_chunked(pkt, chunk), FeedResult::kError);
      EXPECT_EQ(s.dec.error(), MqttError::kBadProperty);
      for (const MessageRec& m : s.sink.messages) EXPECT_TRUE(m.payload.empty());
    }
  }
}

TEST(MqttConnect, WillQos3IsMalformed) {
  Bytes pkt = mqtt_connect(MqttConnectSpec{}.with_level(4).with_client_id("c").with_will("w", "x"));
  pkt[2 + 6 + 1] |= 0x18;  // connect flags: will QoS 3
  Stream s;
  EXPECT_EQ(s.feed(pkt), FeedResult::kError);
  EXPECT_EQ(s.dec.error(), MqttError::kBadPublishQos);
}

TEST(MqttPublish, NonMinimalRemainingLengthsDecodeTheSame) {
  // 4-byte encodings of small lengths are not minimal (MQTT 5 calls them malformed; brokers differ);
  // either way the decoder must read the packet the receiver reads.
  Bytes body = test::mqtt_string("t/x");
  std::string payload = "free money";
  body.insert(body.end(), payload.begin(), payload.end());
  Bytes pkt{0x30, static_cast<uint8_t>(0x80 | body.size()), 0x80, 0x80, 0x00};
  test::append(pkt, body);
  test::append(pkt, mqtt_publish(4, "t/y", "next"));
  Stream s;
  ASSERT_EQ(s.feed_chunked(pkt, 1), FeedResult::kOk);
  ASSERT_EQ(s.sink.messages.size(), 2u);
  EXPECT_EQ(s.sink.messages[0], msg(0, "t/x", "free money"));
  EXPECT_EQ(s.sink.messages[1], msg(0, "t/y", "next"));
}

TEST(MqttPublish, RetainAndDupFlagsDoNotMatter) {
  Bytes pkt = mqtt_publish(4, "t", "p", 1);
  pkt[0] |= 0x09;  // DUP + RETAIN
  Stream s;
  ASSERT_EQ(s.feed(pkt), FeedResult::kOk);
  ASSERT_EQ(s.sink.messages.size(), 1u);
  EXPECT_EQ(s.sink.messages[0], msg(1, "t", "p"));
}

TEST(MqttPublish, SeveralPacketsInOneBuffer) {
  Stream s;
  Bytes buf =
      cat({mqtt_connect(4, "cid", "user"), mqtt_publish(4, "a", "1"),
           mqtt_simple(test::kMqttSubscribe, {0, 1, 0, 1, 'a', 0}, 2), mqtt_publish(4, "b", "22", 1, 9),
           mqtt_simple(test::kMqttPingreq), mqtt_publish(4, "", "", 2, 10), mqtt_simple(test::kMqttDisconnect)});
  ASSERT_EQ(s.feed(buf), FeedResult::kOk);
  ASSERT_EQ(s.sink.connects.size(), 1u);
  EXPECT_EQ(s.sink.connects[0].account, "user");
  ASSERT_EQ(s.sink.messages.size(), 3u);
  EXPECT_EQ(s.sink.messages[0], msg(0, "a", "1"));
  EXPECT_EQ(s.sink.messages[1], msg(1, "b", "22"));
  EXPECT_EQ(s.sink.messages[2], msg(2, "", ""));
  EXPECT_TRUE(s.dec.at_packet_boundary());
  EXPECT_TRUE(s.sink.violations.empty());
}

// The decoder's output must not depend on how the stream is cut into segments.
TEST(MqttPublish, SplitAnywhereGivesIdenticalResults) {
  for (uint8_t version : {4, 5}) {
    Bytes buf = cat({mqtt_connect(version, "cid", "user"),
                     mqtt_publish(version, "topic/x", "payload bytes", 1, 3, version == 5 ? kPubProps : Bytes{}),
                     mqtt_simple(test::kMqttPingreq), mqtt_publish(version, "t2", "", 0)});
    Stream whole;
    ASSERT_EQ(whole.feed(buf), FeedResult::kOk);
    ASSERT_EQ(whole.sink.messages.size(), 2u);
    EXPECT_EQ(whole.sink.messages[0], msg(1, "topic/x", "payload bytes"));
    EXPECT_EQ(whole.sink.messages[1], msg(0, "t2", ""));

    Stream bytewise;
    ASSERT_EQ(bytewise.feed_chunked(buf, 1), FeedResult::kOk);
    EXPECT_EQ(bytewise.sink.connects, whole.sink.connects);
    EXPECT_EQ(bytewise.sink.messages, whole.sink.messages);
    EXPECT_TRUE(bytewise.sink.violations.empty());

    for (size_t cut = 0; cut <= buf.size(); ++cut) {
      SCOPED_TRACE(::testing::Message() << "v" << int{version} << " cut at " << cut);
      Stream s;
      ASSERT_EQ(s.feed(buf.data(), cut), FeedResult::kOk);
      ASSERT_EQ(s.feed(buf.data() + cut, buf.size() - cut), FeedResult::kOk);
      EXPECT_EQ(s.sink.connects, whole.sink.connects);
      EXPECT_EQ(s.sink.messages, whole.sink.messages);
      EXPECT_TRUE(s.sink.violations.empty());
      EXPECT_TRUE(s.dec.at_packet_boundary());
    }
  }
}

TEST(MqttPublish, LargePayloadInSegmentSizedChunks) {
  std::string payload(100 * 1024 + 17, '\0');
  std::mt19937 rng(7);
  for (char& ch : payload) ch = static_cast<char>(rng());
  Bytes buf = cat({mqtt_publish(4, "big/one", payload, 1), mqtt_publish(4, "small", "s")});
  ASSERT_EQ(buf[1] & 0x80, 0x80);
  Stream s;
  ASSERT_EQ(s.feed_chunked(buf, 1448), FeedResult::kOk);
  ASSERT_EQ(s.sink.messages.size(), 2u);
  EXPECT_EQ(s.sink.messages[0].topic, "big/one");
  EXPECT_TRUE(s.sink.messages[0].payload == payload);
  EXPECT_TRUE(s.sink.messages[0].ended);
  EXPECT_EQ(s.sink.messages[1], msg(0, "small", "s"));
  // Streamed, not buffered: payload arrived in about one call per segment.
  EXPECT_LE(s.sink.calls, static_cast<int>(buf.size() / 1448 + 12));  // + 6 events per message
}

// ---- Remaining length ----------------------------------------------------------------------------

class RemainingLengthTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(RemainingLengthTest, PublishAtVarintBoundary) {
  uint32_t remaining = GetParam();
  const std::string topic = "t/b";
  std::string payload(remaining - 2 - topic.size(), 'p');
  Bytes pkt = mqtt_publish(4, topic, payload);
  size_t varint_len = remaining < 128 ? 1 : remaining < 16384 ? 2 : remaining < 2097152 ? 3 : 4;
  ASSERT_EQ(pkt.size(), 1 + varint_len + remaining);
  test::append(pkt, mqtt_publish(4, "after", "x"));
  Stream s;
  ASSERT_EQ(s.feed_chunked(pkt, 1448), FeedResult::kOk) << mqtt_error_name(s.dec.error());
  ASSERT_EQ(s.sink.messages.size(), 2u);
  EXPECT_EQ(s.sink.messages[0].payload.size(), payload.size());
  EXPECT_TRUE(s.sink.messages[0].ended);
  EXPECT_EQ(s.sink.messages[1], msg(0, "after", "x"));
}

TEST_P(RemainingLengthTest, SkippedPacketAtVarintBoundary) {
  uint32_t remaining = GetParam();
  Bytes pkt = mqtt_simple(test::kMqttSubscribe, Bytes(remaining, 0xab), 2);
  test::append(pkt, mqtt_publish(4, "after", "x"));
  Stream s;
  ASSERT_EQ(s.feed_chunked(pkt, 4096), FeedResult::kOk) << mqtt_error_name(s.dec.error());
  ASSERT_EQ(s.sink.messages.size(), 1u);
  EXPECT_EQ(s.sink.messages[0], msg(0, "after", "x"));
}

INSTANTIATE_TEST_SUITE_P(Mqtt, RemainingLengthTest, ::testing::Values(127u, 128u, 16383u, 16384u, 2097151u, 2097152u));

TEST(MqttRemainingLength, SpecMaximumIsAcceptedAsLength) {
  for (uint8_t first : {0x30, 0x82, 0x20}) {  // PUBLISH, SUBSCRIBE, CONNACK
    SCOPED_TRACE(int{first});
    Bytes hdr = {first};
    test::append(hdr, mqtt_varint(kMqttMaxRemaining));
    ASSERT_EQ(hdr, (Bytes{first, 0xff, 0xff, 0xff, 0x7f}));
    Stream s;
    ASSERT_EQ(s.feed(hdr), FeedResult::kOk);
    EXPECT_FALSE(s.dec.at_packet_boundary());
    EXPECT_EQ(s.dec.error(), MqttError::kNone);
    EXPECT_EQ(s.sink.messages.size(), first == 0x30 ? 1u : 0u);
    // Some body bytes later, still mid-packet.
    Bytes body = test::mqtt_string("topic");
    body.resize(4000, 'z');
    ASSERT_EQ(s.feed(body), FeedResult::kOk);
    EXPECT_FALSE(s.dec.at_packet_boundary());
  }
}

TEST(MqttRemainingLength, FiveByteVarintIsRejected) {
  for (uint8_t first : {0x30, 0xc0, 0x10}) {
    SCOPED_TRACE(int{first});
    Stream s;
    Bytes pkt = {first, 0x80, 0x80, 0x80, 0x80, 0x01};
    EXPECT_EQ(s.feed_chunked(pkt, 1), FeedResult::kError);
    EXPECT_EQ(s.dec.error(), MqttError::kBadRemainingLength);
    EXPECT_TRUE(s.sink.messages.empty());
  }
  Stream s;
  EXPECT_EQ(s.feed(Bytes{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}), FeedResult::kError);
  EXPECT_EQ(s.dec.error(), MqttError::kBadRemainingLength);
}

TEST(MqttRemainingLength, NonMinimalEncodingIsAccepted) {
  // 0x82 0x00 encodes 2 in two bytes; accepted (only the 4-byte limit is enforced).
  Bytes pkt = {0x30, 0x82, 0x00, 0x00, 0x00};
  Stream s;
  ASSERT_EQ(s.feed(pkt), FeedResult::kOk);
  ASSERT_EQ(s.sink.messages.size(), 1u);
  EXPECT_EQ(s.sink.messages[0], msg(0, "", ""));
}

TEST(MqttRemainingLength, AboveConfiguredMaximumIsTooLarge) {
  constexpr uint32_t kMax = 1000;
  {
    Stream s(kMax);
    std::string payload(kMax - 3, 'p');
    Bytes at_max = mqtt_publish(4, "t", payload);
    ASSERT_EQ(s.feed(at_max), FeedResult::kOk);
    ASSERT_EQ(s.sink.messages.size(), 1u);
    EXPECT_EQ(s.sink.messages[0].payload.size(), payload.size());
  }
  for (const Bytes& pkt :
       {mqtt_publish(4, "t", std::string(kMax - 2, 'p')), mqtt_simple(test::kMqttSubscribe, Bytes(kMax + 1, 0), 2),
        Bytes{0x30, 0xff, 0xff, 0xff, 0x7f}}) {
    Stream s(kMax);
    EXPECT_EQ(s.feed(pkt), FeedResult::kError);
    EXPECT_EQ(s.dec.error(), MqttError::kPacketTooLarge);
    EXPECT_TRUE(s.sink.messages.empty());
  }
}

// ---- Malformed packets ------------------------------------------------------------------------

struct ErrorCase {
  const char* name;
  uint8_t session_version;  // as if a CONNECT of this level had been seen
  Bytes bytes;
  MqttError expected;
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

class MalformedTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(MalformedTest, ReportsError) {
  const ErrorCase& c = GetParam();
  for (size_t chunk : {c.bytes.size(), size_t{1}}) {
    SCOPED_TRACE(chunk);
    Stream s;
    s.session.version = c.session_version;
    EXPECT_EQ(s.feed_chunked(c.bytes, chunk), FeedResult::kError);
    EXPECT_EQ(s.dec.error(), c.expected) << "got " << mqtt_error_name(s.dec.error()) << ", want "
                                         << mqtt_error_name(c.expected);
    EXPECT_TRUE(s.sink.violations.empty());
  }
}

Bytes v5_publish_with_props_len(const Bytes& props_len_and_more) {
  Bytes body = test::mqtt_string("t");
  test::append(body, props_len_and_more);
  return mqtt_simple(test::kMqttPublish, body);
}

INSTANTIATE_TEST_SUITE_P(
    Mqtt, MalformedTest,
    ::testing::Values(
        ErrorCase{"type0", 0, {0x00, 0x00}, MqttError::kReservedType},
        ErrorCase{"type0_after_good_packet", 4, cat({mqtt_publish(4, "t", "p"), {0x00, 0x00}}),
                  MqttError::kReservedType},
        ErrorCase{"type15_before_connect", 0, {0xf0, 0x00}, MqttError::kReservedType},
        ErrorCase{"type15_v311", 4, {0xf0, 0x00}, MqttError::kReservedType},
        ErrorCase{"type15_after_v4_connect", 0, cat({mqtt_connect(4, "c"), {0xf0, 0x00}}), MqttError::kReservedType},
        ErrorCase{"type15_v31", 3, {0xf0, 0x00}, MqttError::kReservedType},
        ErrorCase{"publish_qos3", 4, mqtt_publish(4, "t", "p", 3), MqttError::kBadPublishQos},
        ErrorCase{"publish_qos3_v5", 5, mqtt_publish(5, "t", "p", 3), MqttError::kBadPublishQos},
        ErrorCase{"publish_empty_body", 4, {0x30, 0x00}, MqttError::kFieldOverrun},
        ErrorCase{"publish_one_byte_body", 4, {0x30, 0x01, 0x00}, MqttError::kFieldOverrun},
        ErrorCase{"topic_len_lies", 4, {0x30, 0x05, 0x00, 0x0a, 'a', 'b', 'c'}, MqttError::kFieldOverrun},
        ErrorCase{"topic_len_lies_max", 4, {0x30, 0x04, 0xff, 0xff, 'a', 'b'}, MqttError::kFieldOverrun},
        ErrorCase{"packet_id_missing", 4, {0x32, 0x03, 0x00, 0x01, 't', 0x30, 0x00}, MqttError::kFieldOverrun},
        ErrorCase{"packet_id_half", 4, {0x32, 0x04, 0x00, 0x01, 't', 0x00, 0x00, 0x00}, MqttError::kFieldOverrun},
        ErrorCase{"v5_props_len_past_packet", 5, v5_publish_with_props_len({0x0a, 0x01, 0x01}),
                  MqttError::kFieldOverrun},
        ErrorCase{"v5_props_len_past_packet_qos1", 5, mqtt_simple(test::kMqttPublish, {0, 1, 't', 0, 1, 0x7f, 1, 1}, 2),
                  MqttError::kFieldOverrun},
        ErrorCase{"v5_props_varint_runs_off_packet", 5,
                  cat({v5_publish_with_props_len({0x80, 0x80}), mqtt_simple(test::kMqttPingreq)}),
                  MqttError::kFieldOverrun},
        ErrorCase{"v5_no_props_len_at_end_of_data", 5, v5_publish_with_props_len({}), MqttError::kFieldOverrun},
        ErrorCase{"v5_no_props_len_then_next_packet", 5,
                  cat({v5_publish_with_props_len({}), mqtt_simple(test::kMqttPingreq)}), MqttError::kFieldOverrun},
        ErrorCase{"v5_props_5_byte_varint", 5, v5_publish_with_props_len({0x80, 0x80, 0x80, 0x80, 0x01, 0, 0, 0, 0, 0}),
                  MqttError::kBadPropertyLength},
        ErrorCase{"v5_connect_props_5_byte_varint", 0,
                  mqtt_simple(test::kMqttConnect,
                              {0, 4, 'M', 'Q', 'T', 'T', 5, 0, 0, 60, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0, 0, 0}),
                  MqttError::kBadPropertyLength},
        ErrorCase{"v5_connect_props_past_packet", 0,
                  mqtt_simple(test::kMqttConnect, {0, 4, 'M', 'Q', 'T', 'T', 5, 0, 0, 60, 0x20, 0, 0}),
                  MqttError::kFieldOverrun},
        ErrorCase{"v5_will_props_past_packet", 0,
                  mqtt_simple(test::kMqttConnect,
                              {0, 4, 'M', 'Q', 'T', 'T', 5, 0x04, 0, 60, 0, 0, 1, 'c', 0x30, 0, 1, 't', 0, 0}),
                  MqttError::kFieldOverrun},
        ErrorCase{"connect_level_2", 0, mqtt_connect(2, "c"), MqttError::kBadProtocolLevel},
        ErrorCase{"connect_client_id_len_lies", 0,
                  mqtt_simple(test::kMqttConnect, {0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 50, 'c'}),
                  MqttError::kFieldOverrun},
        ErrorCase{"connect_username_missing", 0,
                  mqtt_simple(test::kMqttConnect, {0, 4, 'M', 'Q', 'T', 'T', 4, 0x82, 0, 60, 0, 1, 'c'}),
                  MqttError::kFieldOverrun},
        ErrorCase{"connect_name_len_lies", 0, mqtt_simple(test::kMqttConnect, {0, 200, 'M', 'Q'}),
                  MqttError::kFieldOverrun}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(MqttAuth, AcceptedAfterV5Connect) {
  Stream s;
  Bytes auth = mqtt_simple(test::kMqttAuth, {0x18, 0x00});  // reason code + empty properties
  Bytes buf = cat({mqtt_connect(5, "cid", "u"), auth, mqtt_publish(5, "t", "p", 0, 0, {0x01, 0x00}), auth});
  ASSERT_EQ(s.feed(buf), FeedResult::kOk) << mqtt_error_name(s.dec.error());
  ASSERT_EQ(s.sink.messages.size(), 1u);
  EXPECT_EQ(s.sink.messages[0], msg(0, "t", "p"));
  EXPECT_TRUE(s.dec.at_packet_boundary());

  // The server's direction shares the session: AUTH from the server is accepted too.
  MqttDecoder server;
  RecordingSink sink;
  EXPECT_EQ(server.feed(auth.data(), static_cast<uint32_t>(auth.size()), false, s.session, sink), FeedResult::kOk);
}

TEST(MqttErrors, NamesAreDistinct) {
  const MqttError all[] = {MqttError::kNone,
                           MqttError::kBadRemainingLength,
                           MqttError::kPacketTooLarge,
                           MqttError::kReservedType,
                           MqttError::kBadPublishQos,
                           MqttError::kFieldOverrun,
                           MqttError::kBadProtocolLevel,
                           MqttError::kBadPropertyLength};
  for (MqttError a : all) {
    EXPECT_STRNE(mqtt_error_name(a), "unknown");
    for (MqttError b : all) {
      if (a != b) {
        EXPECT_STRNE(mqtt_error_name(a), mqtt_error_name(b));
      }
    }
  }
}

// ---- Stopping ---------------------------------------------------------------------------------

TEST(MqttStop, SinkReturningFalseStopsAtThatCallback) {
  Bytes buf = cat({mqtt_connect(4, "c", "u"), mqtt_publish(4, "ab", "xy", 1), mqtt_publish(4, "", "", 0),
                   mqtt_publish(4, "c", "z")});
  Stream whole;
  ASSERT_EQ(whole.feed(buf), FeedResult::kOk);
  const int total = whole.sink.calls;
  ASSERT_GE(total, 12);
  for (int n = 1; n <= total; ++n) {
    SCOPED_TRACE(n);
    Stream s;
    s.sink.stop_after = n;
    EXPECT_EQ(s.feed(buf), FeedResult::kStopped);
    EXPECT_EQ(s.sink.calls, n);  // nothing is called after the refusal
  }
  Stream s;
  s.sink.stop_after = total + 1;
  EXPECT_EQ(s.feed(buf), FeedResult::kOk);
}

// ---- Fuzz ---------------------------------------------------------------------------------------

Bytes random_seed_packet(std::mt19937& rng) {
  std::uniform_int_distribution<int> pick(0, 9);
  auto rnd_str = [&](size_t max) {
    std::string s(rng() % (max + 1), 'a');
    for (char& c : s) c = static_cast<char>('a' + rng() % 26);
    return s;
  };
  int kind = pick(rng);
  switch (kind) {
    case 0: {
      std::string client_id = rnd_str(10);
      return mqtt_connect(4, client_id, rnd_str(8));
    }
    case 1: {
      std::string will_topic = rnd_str(4);
      std::string will_payload = rnd_str(6);
      return mqtt_connect(MqttConnectSpec{}
                              .with_level(5)
                              .with_client_id(rnd_str(10))
                              .with_username(rnd_str(5))
                              .with_password(rnd_str(5))
                              .with_will(will_topic, will_payload)
                              .with_properties(kConnProps)
                              .with_will_properties(kWillProps));
    }
    case 2:
    case 3: {
      // Arguments drawn one by one: their evaluation order must not depend on the compiler.
      std::string topic = rnd_str(12);
      std::string payload = rnd_str(40);
      auto qos = static_cast<uint8_t>(rng() % 3);
      return kind == 2 ? mqtt_publish(4, topic, payload, qos, 5) : mqtt_publish(5, topic, payload, qos, 5, kPubProps);
    }
    case 4: return mqtt_simple(test::kMqttPingreq);
    case 5: return mqtt_simple(test::kMqttAuth, {0, 0});
    case 6: return mqtt_connect(3, rnd_str(23));
    default: {
      Bytes b(rng() % 64);
      for (uint8_t& x : b) x = static_cast<uint8_t>(rng());
      return b;
    }
  }
}

struct FuzzOutcome {
  FeedResult result;
  MqttError error;
  bool boundary;
  std::vector<ConnectRec> connects;
  std::vector<MessageRec> messages;
};

FuzzOutcome run_fuzz_input(const Bytes& buf, bool from_client, uint8_t version, std::mt19937* chunker) {
  Stream s;
  s.from_client = from_client;
  s.session.version = version;
  FeedResult r = FeedResult::kOk;
  size_t off = 0;
  while (off < buf.size()) {
    size_t n = buf.size() - off;
    if (chunker) n = std::min(n, size_t{1} + (*chunker)() % 23);
    // Heap copy of exactly the chunk, so the sanitizer sees any read past it.
    std::vector<uint8_t> chunk(buf.begin() + static_cast<ptrdiff_t>(off),
                               buf.begin() + static_cast<ptrdiff_t>(off + n));
    r = s.feed(chunk.data(), chunk.size());
    off += n;
    if (r == FeedResult::kError) {
      EXPECT_NE(s.dec.error(), MqttError::kNone);
      break;
    }
    EXPECT_EQ(s.dec.error(), MqttError::kNone);
    EXPECT_EQ(r, FeedResult::kOk);  // the sink never stops
  }
  EXPECT_TRUE(s.sink.violations.empty()) << s.sink.violations[0];
  EXPECT_LE(s.session.account_len, MqttSession::kAccountCap);
  return {r, s.dec.error(), s.dec.at_packet_boundary(), s.sink.connects, s.sink.messages};
}

TEST(MqttFuzz, RandomAndMutatedInputsAreHandledConsistently) {
  std::mt19937 rng(0x1f2e3d4c);
  int errors = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    Bytes buf;
    int packets = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < packets; ++i) test::append(buf, random_seed_packet(rng));
    int mutations = static_cast<int>(rng() % 4);
    for (int i = 0; i < mutations && !buf.empty(); ++i) {
      size_t at = rng() % buf.size();
      switch (rng() % 3) {
        case 0: buf[at] = static_cast<uint8_t>(rng()); break;
        case 1: buf[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        default: buf.resize(at); break;
      }
    }
    bool from_client = rng() % 4 != 0;
    uint8_t version = static_cast<uint8_t>(std::array<uint8_t, 4>{0, 3, 4, 5}[rng() % 4]);
    SCOPED_TRACE(::testing::Message() << "iteration " << iter);
    FuzzOutcome one = run_fuzz_input(buf, from_client, version, nullptr);
    FuzzOutcome chunked = run_fuzz_input(buf, from_client, version, &rng);
    EXPECT_EQ(one.result, chunked.result);
    EXPECT_EQ(one.error, chunked.error);
    EXPECT_EQ(one.connects, chunked.connects);
    EXPECT_EQ(one.messages, chunked.messages);
    if (one.result == FeedResult::kOk) {
      EXPECT_EQ(one.boundary, chunked.boundary);
    }
    if (one.result == FeedResult::kError) ++errors;
    if (HasFailure()) break;
  }
  // The corpus must reach the error paths, not only the happy ones.
  EXPECT_GT(errors, 200);
}

}  // namespace
}  // namespace imf::dp::proto
