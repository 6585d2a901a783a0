#include "inspect/inspector.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "packet_builder.h"
#include "rules/rule_parser.h"

namespace imf::dp::inspect {
namespace {

using test::Bytes;
using test::PacketBuilder;
constexpr uint8_t kSyn = 0x02, kAck = 0x10, kPsh = 0x08, kFin = 0x01, kRst = 0x04;

constexpr const char* kRules =
    "money   drop   payload  /free\\s+money/i\n"             // 0
    "hello   alert  payload  \"hello\"\n"                    // 1
    "topic   drop   topic    \"forbidden/\"\n"               // 2
    "kids    drop   payload  channel=kids/# \"badword\"\n";  // 3

struct RecordedHit {
  uint16_t rule;
  std::string account;
  std::string topic;
  uint8_t dir;
};

struct RecordingSink {
  std::vector<RecordedHit> hits;
  void on_hit(const Hit& h) {
    hits.push_back({h.rule, std::string(h.flow->session.account, h.flow->session.account_len),
                    std::string(h.dir->channel, h.dir->channel_len), h.dir_index});
  }
};

// One TCP connection client 10.0.0.1:40000 <-> broker 10.0.0.2:1883, driven segment by segment.
class InspectorTest : public ::testing::Test {
 protected:
  void SetUp() override { make(InspectConfig{}); }

  void make(InspectConfig cfg) {
    auto set = rules::parse_rules(kRules, "t.rules");
    ASSERT_TRUE(set.ok()) << set.error();
    auto compiled = rules::compile_rules(set.value());
    ASSERT_TRUE(compiled.ok()) << compiled.error();
    gen_ = std::move(match::install_generation(compiled.value(), 1, [](const std::vector<std::string>&) {
                       return uint64_t{0};
                     }).value());
    streams_ = std::move(match::StreamPool::create(*gen_, 3).value());
    matcher_ = std::move(match::Matcher::create(*gen_).value());
    counters_ = Counters{};
    ins_ = std::make_unique<Inspector>(cfg, *matcher_, *streams_, counters_);
    cseq_ = 1000;
    sseq_ = 9000;
    created_ = false;
  }

  // Sends a segment; client==true means client -> broker. Returns the verdict.
  Verdict send(bool client, uint8_t flags, const Bytes& data, int64_t seq_offset = 0) {
    uint32_t& seq = client ? cseq_ : sseq_;
    uint32_t ack = client ? sseq_ : cseq_;
    PacketBuilder b;
    if (client) {
      b.ipv4({10, 0, 0, 1}, {10, 0, 0, 2}).tcp(40000, 1883, seq + static_cast<uint32_t>(seq_offset), ack, flags);
    } else {
      b.ipv4({10, 0, 0, 2}, {10, 0, 0, 1}).tcp(1883, 40000, seq + static_cast<uint32_t>(seq_offset), ack, flags);
    }
    b.payload(data);
    frame_ = b.build();
    decode::PacketMeta m;
    EXPECT_EQ(decode::decode_packet(frame_.data(), static_cast<uint32_t>(frame_.size()), &m),
              decode::DecodeStatus::kOk);
    bool from_a = client;  // 10.0.0.1 sorts first
    Verdict v;
    if (!created_) {
      // What the worker does for a connection it has no state for.
      NewFlow what = ins_->classify_new(m);
      if (what == NewFlow::kOpen) ins_->init_flow(fs_, 0, m, from_a, stream::kAnyPort, 0);
      if (what == NewFlow::kOpenUninspected) ins_->init_uninspected(fs_, m, from_a, m.dst_port == 1883);
      created_ = what == NewFlow::kOpen || what == NewFlow::kOpenUninspected;
      v = what == NewFlow::kDrop ? Verdict::kDrop : what == NewFlow::kReset ? Verdict::kReset : Verdict::kForward;
    }
    if (created_) {
      v = ins_->on_segment(fs_, 0, m, frame_.data() + m.payload_offset, from_a, stream::kAnyPort, sink_, &class_);
      closed_ = class_ == FlowClassMap::kClosing;
    }
    if (seq_offset == 0) seq += static_cast<uint32_t>(data.size()) + ((flags & (kSyn | kFin)) ? 1 : 0);
    return v;
  }
  void handshake() {
    ASSERT_EQ(send(true, kSyn, {}), Verdict::kForward);
    ASSERT_EQ(send(false, kSyn | kAck, {}), Verdict::kForward);
    ASSERT_EQ(send(true, kAck, {}), Verdict::kForward);
  }
  uint64_t count(Counter c) const { return counters_.get(c); }

  std::unique_ptr<match::RuleGeneration> gen_;
  std::unique_ptr<match::StreamPool> streams_;
  std::unique_ptr<match::Matcher> matcher_;
  Counters counters_;
  std::unique_ptr<Inspector> ins_;
  FlowState fs_;
  RecordingSink sink_;
  Bytes frame_;
  uint32_t cseq_ = 0, sseq_ = 0;
  bool created_ = false;
  bool closed_ = false;
  uint8_t class_ = 0;
};

TEST_F(InspectorTest, CleanMessagePassesAndIsCounted) {
  handshake();
  EXPECT_EQ(send(true, kPsh | kAck, test::mqtt_connect(4, "cid", std::string("alice"))), Verdict::kForward);
  EXPECT_EQ(send(true, kPsh | kAck, test::mqtt_publish(4, "chat/1", "nothing to see")), Verdict::kForward);
  EXPECT_TRUE(sink_.hits.empty());
  EXPECT_EQ(count(Counter::mqtt_connects), 1u);
  EXPECT_EQ(count(Counter::mqtt_publishes), 1u);
  EXPECT_EQ(count(Counter::mqtt_payload_bytes), 14u);
  EXPECT_FALSE(fs_.blocked);
}

TEST_F(InspectorTest, DropRuleResetsOnTheCompletingSegmentAndBlocksTheFlow) {
  handshake();
  send(true, kPsh | kAck, test::mqtt_connect(4, "cid", std::string("bob")));
  Bytes pub = test::mqtt_publish(4, "chat/2", "get free money now");
  // Split inside "free money": the first part passes, the second completes the match.
  size_t cut = pub.size() - 8;
  EXPECT_EQ(send(true, kPsh | kAck, Bytes(pub.begin(), pub.begin() + cut)), Verdict::kForward);
  EXPECT_EQ(send(true, kPsh | kAck, Bytes(pub.begin() + cut, pub.end())), Verdict::kReset);
  ASSERT_EQ(sink_.hits.size(), 1u);
  EXPECT_EQ(sink_.hits[0].rule, 0);
  EXPECT_EQ(sink_.hits[0].account, "bob");
  EXPECT_EQ(sink_.hits[0].topic, "chat/2");
  EXPECT_EQ(sink_.hits[0].dir, 0);
  EXPECT_TRUE(fs_.blocked);
  EXPECT_EQ(count(Counter::rule_drops), 1u);
  // Later packets of the flow, both directions, are dropped.
  EXPECT_EQ(send(true, kPsh | kAck, test::mqtt_publish(4, "chat/2", "clean")), Verdict::kDrop);
  EXPECT_EQ(send(false, kAck, {}), Verdict::kDrop);
  EXPECT_EQ(count(Counter::blocked_flow_drops), 2u);
}

TEST_F(InspectorTest, NewConnectionOnABlockedFlowIsJudgedAfresh) {
  handshake();
  send(true, kPsh | kAck, test::mqtt_connect(4, "cid", std::string("bob")));
  EXPECT_EQ(send(true, kPsh | kAck, test::mqtt_publish(4, "chat/2", "free money")), Verdict::kReset);
  ASSERT_TRUE(fs_.blocked);
  // The client reconnects from the same port with a new initial sequence number.
  cseq_ += 50000;
  sseq_ += 70000;
  handshake();
  EXPECT_FALSE(fs_.blocked);
  EXPECT_EQ(count(Counter::flows_restarted), 1u);
  send(true, kPsh | kAck, test::mqtt_connect(4, "cid", std::string("carol")));
  EXPECT_EQ(send(true, kPsh | kAck, test::mqtt_publish(4, "chat/2", "hello")), Verdict::kForward);
  ASSERT_EQ(sink_.hits.size(), 2u);
  EXPECT_EQ(sink_.hits[1].account, "carol");
}

TEST_F(InspectorTest, RetransmittedSynKeepsTheFlowAndANewIsnRestartsItOnceTheServerAccepts) {
  ASSERT_EQ(send(true, kSyn, {}), Verdict::kForward);
  ASSERT_EQ(send(true, kSyn, {}, -1), Verdict::kForward);  // same ISN again
  EXPECT_EQ(count(Counter::flows_restarted), 0u);
  send(false, kSyn | kAck, {});
  send(true, kAck, {});
  send(true, kPsh | kAck, test::mqtt_connect(4, "cid", std::string("dave")));
  EXPECT_EQ(count(Counter::mqtt_connects), 1u);
  // A SYN with a new ISN: the server may still hold the old connection, so nothing changes yet.
  cseq_ += 12345;
  ASSERT_EQ(send(true, kSyn, {}), Verdict::kForward);
  EXPECT_EQ(count(Counter::tcp_syn_new_isn), 1u);
  EXPECT_EQ(count(Counter::flows_restarted), 0u);
  EXPECT_EQ(fs_.session.account_len, 4u);
  // The server's SYN/ACK for it: now the flow is the new connection.
  sseq_ += 99999;
  ASSERT_EQ(send(false, kSyn | kAck, {}), Verdict::kForward);
  EXPECT_EQ(count(Counter::flows_restarted), 1u);
  EXPECT_EQ(fs_.session.account_len, 0u);
}

TEST_F(InspectorTest, AlertRecordsAndPasses) {
  handshake();
  send(true, kPsh | kAck, test::mqtt_connect(5, "client-7"));
  EXPECT_EQ(send(true, kPsh | kAck, test::mqtt_publish(5, "a/b", "hello there", 1, 7, Bytes{0x03, 0x00, 0x01, 'x'})),
            Verdict::kForward);
  ASSERT_EQ(sink_.hits.size(), 1u);
  EXPECT_EQ(sink_.hits[0].rule, 1);
  EXPECT_EQ(sink_.hits[0].account, "client-7");  // no username: the client id
  EXPECT_EQ(count(Counter::rule_alerts), 1u);
  EXPECT_FALSE(fs_.blocked);
}

TEST_F(InspectorTest, TopicRuleAndBrokerToSubscriberDirection) {
  handshake();
  send(true, kPsh | kAck, test::mqtt_connect(4, "sub", std::string("carol")));
  EXPECT_EQ(send(false, kPsh | kAck, test::mqtt_publish(4, "forbidden/x", "payload")), Verdict::kReset);
  ASSERT_EQ(sink_.hits.size(), 1u);
  EXPECT_EQ(sink_.hits[0].rule, 2);
  EXPECT_EQ(sink_.hits[0].dir, 1);
  EXPECT_EQ(sink_.hits[0].account, "carol");
}

TEST_F(InspectorTest, SeveralMessagesInOneSegmentAreEachJudged) {
  handshake();
  Bytes seg = test::mqtt_connect(4, "cid", std::string("dave"));
  test::append(seg, test::mqtt_publish(4, "t/1", "hello"));
  test::append(seg, test::mqtt_publish(4, "t/2", "free money"));
  EXPECT_EQ(send(true, kPsh | kAck, seg), Verdict::kReset);
  ASSERT_EQ(sink_.hits.size(), 2u);
  EXPECT_EQ(sink_.hits[0].topic, "t/1");
  EXPECT_EQ(sink_.hits[1].topic, "t/2");
}

TEST_F(InspectorTest, OutOfOrderSegmentIsDroppedThenAcceptedInOrder) {
  handshake();
  Bytes connect = test::mqtt_connect(4, "cid", std::string("erin"));
  EXPECT_EQ(send(true, kPsh | kAck, connect, 10), Verdict::kDrop);  // ahead of sequence
  EXPECT_EQ(count(Counter::tcp_out_of_order), 1u);
  EXPECT_EQ(count(Counter::mqtt_connects), 0u);
  EXPECT_EQ(send(true, kPsh | kAck, connect), Verdict::kForward);
  EXPECT_EQ(count(Counter::mqtt_connects), 1u);
}

TEST_F(InspectorTest, RetransmissionIsForwardedNotDecodedTwice) {
  handshake();
  Bytes pub = test::mqtt_publish(4, "t", "hello");
  send(true, kPsh | kAck, pub);
  EXPECT_EQ(send(true, kPsh | kAck, pub, -static_cast<int64_t>(pub.size())), Verdict::kForward);
  EXPECT_EQ(count(Counter::tcp_retransmits), 1u);
  EXPECT_EQ(count(Counter::mqtt_publishes), 1u);
  EXPECT_EQ(sink_.hits.size(), 1u);
}

TEST_F(InspectorTest, PartialOverlapDecodesOnlyNewBytes) {
  handshake();
  Bytes pub = test::mqtt_publish(4, "t", "abc free money");
  Bytes first(pub.begin(), pub.begin() + 6);
  send(true, kPsh | kAck, first);
  // Resend from 3 bytes back: the 3 old bytes must be skipped, the rest decoded in sync.
  Bytes overlap(pub.begin() + 3, pub.end());
  EXPECT_EQ(send(true, kPsh | kAck, overlap, -3), Verdict::kReset);
  EXPECT_EQ(count(Counter::mqtt_malformed), 0u);
}

TEST_F(InspectorTest, MidstreamConnectionIsResetByDefault) {
  // No handshake: the first packet carries data.
  EXPECT_EQ(send(true, kPsh | kAck, test::mqtt_publish(4, "t", "free money")), Verdict::kReset);
  EXPECT_EQ(count(Counter::midstream_resets), 1u);
  EXPECT_EQ(count(Counter::mqtt_publishes), 0u);
  // A bare ACK of an unknown connection needs no state and passes.
  created_ = false;
  EXPECT_EQ(send(true, kAck, {}), Verdict::kForward);
  EXPECT_EQ(count(Counter::midstream_resets), 1u);
}

TEST_F(InspectorTest, MidstreamConnectionPassesUninspectedOnlyWhenAskedTo) {
  InspectConfig cfg;
  cfg.midstream = MidstreamPolicy::kPass;
  make(cfg);
  EXPECT_EQ(send(true, kPsh | kAck, test::mqtt_publish(4, "t", "free money")), Verdict::kForward);
  EXPECT_EQ(count(Counter::flows_midstream), 1u);
  EXPECT_EQ(count(Counter::mqtt_publishes), 0u);
  EXPECT_TRUE(sink_.hits.empty());
  cfg.midstream = MidstreamPolicy::kDrop;
  make(cfg);
  EXPECT_EQ(send(true, kPsh | kAck, test::mqtt_publish(4, "t", "free money")), Verdict::kDrop);
  EXPECT_EQ(count(Counter::midstream_drops), 1u);
}

TEST_F(InspectorTest, Mqtt5TopicAliasCarriesItsTopicToChannelRules) {
  handshake();
  send(true, kPsh | kAck, test::mqtt_connect(5, "cid", std::string("zed")));
  // The alias is set on a clean message, then used alone (empty topic) with the forbidden one.
  EXPECT_EQ(send(true, kPsh | kAck, test::mqtt_publish(5, "kids/room", "hello all", 0, 0, Bytes{0x23, 0, 7})),
            Verdict::kForward);
  EXPECT_EQ(send(true, kPsh | kAck, test::mqtt_publish(5, "", "a badword here", 0, 0, Bytes{0x23, 0, 7})),
            Verdict::kReset);
  ASSERT_EQ(sink_.hits.size(), 2u);  // the alert on "hello", then the channel rule
  EXPECT_EQ(sink_.hits[1].rule, 3);
  EXPECT_EQ(sink_.hits[1].topic, "kids/room");
}

TEST_F(InspectorTest, Mqtt5TopicAliasIsPerConnectionAndUnknownOnesReset) {
  handshake();
  send(true, kPsh | kAck, test::mqtt_connect(5, "cid", std::string("zed")));
  // The server's aliases are not the client's: alias 9 was set only server -> client.
  EXPECT_EQ(send(false, kPsh | kAck, test::mqtt_publish(5, "kids/room", "hi", 0, 0, Bytes{0x23, 0, 9})),
            Verdict::kForward);
  EXPECT_EQ(send(true, kPsh | kAck, test::mqtt_publish(5, "", "badword", 0, 0, Bytes{0x23, 0, 9})), Verdict::kReset);
  EXPECT_EQ(count(Counter::mqtt_malformed), 1u);
}

TEST_F(InspectorTest, AWillMessageIsJudgedAtConnect) {
  handshake();
  Bytes connect =
      test::mqtt_connect(test::MqttConnectSpec{}.with_level(4).with_client_id("c").with_will("last", "free money"));
  EXPECT_EQ(send(true, kPsh | kAck, connect), Verdict::kReset);
  ASSERT_EQ(sink_.hits.size(), 1u);
  EXPECT_EQ(sink_.hits[0].rule, 0);
  EXPECT_EQ(sink_.hits[0].topic, "last");
}

TEST_F(InspectorTest, KeepAliveDecidesHowLongAQuietConnectionIsKept) {
  handshake();
  EXPECT_EQ(class_, FlowClassMap::kEstablished);
  Bytes connect = test::mqtt_connect(test::MqttConnectSpec{}.with_level(4).with_client_id("c"));
  connect[2 + 6 + 2] = 0xff;  // keep-alive 65535 s: the broker waits 98303 s
  connect[2 + 6 + 3] = 0xff;
  send(true, kPsh | kAck, connect);
  EXPECT_GT(class_, FlowClassMap::kEstablished);
  EXPECT_EQ(class_, ins_->classes().established(98303));
  send(true, kFin | kAck, {});
  send(false, kFin | kAck, {});
  EXPECT_EQ(class_, FlowClassMap::kClosing);
}

TEST_F(InspectorTest, InsertedBytesNeverReachTheDecoder) {
  handshake();
  send(true, kPsh | kAck, test::mqtt_connect(4, "cid", std::string("mal")));
  Bytes evil = test::mqtt_publish(4, "t", "get free money");
  Bytes benign = test::mqtt_publish(4, "t", "get free honey");
  ASSERT_EQ(evil.size(), benign.size());
  // The benign copy is inspected first (a receiver may have discarded it: bad timestamp, TTL...);
  // the evil copy at the same sequence numbers is then refused.
  EXPECT_EQ(send(true, kPsh | kAck, benign, 0), Verdict::kForward);
  EXPECT_EQ(send(true, kPsh | kAck, evil, -static_cast<int64_t>(evil.size())), Verdict::kDrop);
  EXPECT_EQ(count(Counter::tcp_overlap_mismatch), 1u);
  EXPECT_EQ(count(Counter::rule_drops), 0u);
  // An RST far outside the window changes nothing; inspection goes on.
  EXPECT_EQ(send(true, kRst, {}, 1 << 30), Verdict::kDrop);
  EXPECT_EQ(send(true, kPsh | kAck, evil), Verdict::kReset);
  EXPECT_EQ(count(Counter::rule_drops), 1u);
}

TEST_F(InspectorTest, MalformedMqttResetsTheConnection) {
  handshake();
  EXPECT_EQ(send(true, kPsh | kAck, Bytes{0x00, 0x00}), Verdict::kReset);  // reserved type 0
  EXPECT_EQ(count(Counter::mqtt_malformed), 1u);
  EXPECT_TRUE(fs_.blocked);
}

TEST_F(InspectorTest, FinBothWaysClosesRstClosesAtOnce) {
  handshake();
  send(true, kFin | kAck, {});
  EXPECT_FALSE(closed_);
  send(false, kFin | kAck, {});
  EXPECT_TRUE(closed_);
  make(InspectConfig{});
  handshake();
  EXPECT_EQ(send(false, kRst, {}), Verdict::kForward);
  EXPECT_TRUE(closed_);
}

}  // namespace
}  // namespace imf::dp::inspect
