// The inspector with every protocol's decoder behind the one event interface: accounts, channels,
// bodies, verdicts and counters for XMPP, SIP (TCP and datagrams) and IRC, protocol detection,
// and the decoder pool's bound.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "inspect/inspector.h"
#include "packet_builder.h"
#include "rules/rule_parser.h"

namespace imf::dp::inspect {
namespace {

using test::Bytes;
using test::PacketBuilder;
constexpr uint8_t kSyn = 0x02, kAck = 0x10, kPsh = 0x08;

constexpr const char* kRules =
    "money    drop   body  /free\\s+money/i\n"                         // 0
    "hello    alert  body  \"hello\"\n"                                // 1
    "kids     drop   body  protocol=irc channel=#kids* \"badword\"\n"  // 2
    "xmpponly alert  body  protocol=xmpp \"ping\"\n";                  // 3

struct RecordedHit {
  uint16_t rule;
  Measure what;
  std::string account;
  std::string channel;
  uint8_t protocol;
  proto::MessageKind kind;
  uint8_t dir;
};

struct RecordingSink {
  std::vector<RecordedHit> hits;
  void on_hit(const Hit& h) {
    hits.push_back({h.rule, h.what, std::string(h.flow->session.account, h.flow->session.account_len),
                    std::string(h.dir->channel, h.dir->channel_len), h.flow->protocol, h.dir->kind, h.dir_index});
  }
};

class ProtocolsTest : public ::testing::Test {
 protected:
  void SetUp() override { make(InspectConfig{}); }
  void make(InspectConfig cfg) {
    auto set = rules::parse_rules(kRules, "p.rules");
    ASSERT_TRUE(set.ok()) << set.error();
    gen_ = std::move(
        match::install_generation(rules::compile_rules(set.value()).value(), 1, [](const std::vector<std::string>&) {
          return uint64_t{0};
        }).value());
    streams_ = std::move(match::StreamPool::create(*gen_, kSlots * 2 + 1).value());
    matcher_ = std::move(match::Matcher::create(*gen_).value());
    counters_ = Counters{};
    ins_ = std::make_unique<Inspector>(cfg, *matcher_, *streams_, counters_);
    for (auto& c : conns_) c = Conn{};
  }

  static constexpr uint32_t kSlots = 4;
  struct Conn {
    FlowState fs;
    uint32_t cseq = 1000, sseq = 9000;
    bool created = false;
    uint16_t server_port = 0;
  };

  // Sends a segment on connection `slot` (client port 40000 + slot).
  Verdict send(uint32_t slot, bool client, uint8_t flags, const std::string& data, uint8_t protocol) {
    Conn& c = conns_[slot];
    uint32_t& seq = client ? c.cseq : c.sseq;
    uint32_t ack = client ? c.sseq : c.cseq;
    auto port = static_cast<uint16_t>(40000 + slot);
    PacketBuilder b;
    if (client) {
      b.ipv4({10, 0, 0, 1}, {10, 0, 0, 2}).tcp(port, c.server_port, seq, ack, flags);
    } else {
      b.ipv4({10, 0, 0, 2}, {10, 0, 0, 1}).tcp(c.server_port, port, seq, ack, flags);
    }
    b.payload(data);
    frame_ = b.build();
    decode::PacketMeta m;
    EXPECT_EQ(decode::decode_packet(frame_.data(), static_cast<uint32_t>(frame_.size()), &m),
              decode::DecodeStatus::kOk);
    if (!c.created) {
      EXPECT_EQ(ins_->classify_new(m), NewFlow::kOpen);
      if (!ins_->init_flow(c.fs, slot, m, client, stream::kAnyPort, protocol)) return Verdict::kDrop;
      c.created = true;
    }
    uint8_t cls;
    Verdict v =
        ins_->on_segment(c.fs, slot, m, frame_.data() + m.payload_offset, client, stream::kAnyPort, sink_, &cls);
    seq += static_cast<uint32_t>(data.size()) + ((flags & kSyn) ? 1 : 0);
    return v;
  }
  // A handshake on connection `slot` to `server_port`, decoded as `protocol`.
  bool open(uint32_t slot, uint16_t server_port, uint8_t protocol) {
    conns_[slot].server_port = server_port;
    return send(slot, true, kSyn, "", protocol) == Verdict::kForward &&
           send(slot, false, kSyn | kAck, "", protocol) == Verdict::kForward &&
           send(slot, true, kAck, "", protocol) == Verdict::kForward;
  }
  Verdict client(uint32_t slot, const std::string& data) { return send(slot, true, kPsh | kAck, data, 0); }
  Verdict server(uint32_t slot, const std::string& data) { return send(slot, false, kPsh | kAck, data, 0); }
  uint64_t count(Counter c) const { return counters_.get(c); }

  std::unique_ptr<match::RuleGeneration> gen_;
  std::unique_ptr<match::StreamPool> streams_;
  std::unique_ptr<match::Matcher> matcher_;
  Counters counters_;
  std::unique_ptr<Inspector> ins_;
  Conn conns_[kSlots];
  RecordingSink sink_;
  Bytes frame_;
};

constexpr uint8_t kMqtt = 0, kXmpp = 1, kSip = 2, kIrc = 3;

const std::string kXmppHead =
    "<?xml version='1.0'?><stream:stream to='imf.test' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
// SASL PLAIN for "\0mallory\0secret".
const std::string kXmppAuth =
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AG1hbGxvcnkAc2VjcmV0</auth>";

TEST_F(ProtocolsTest, XmppMessagesAreJudgedAsAClientDisplaysThem) {
  ASSERT_TRUE(open(0, 5222, kXmpp));
  EXPECT_EQ(client(0, kXmppHead + kXmppAuth), Verdict::kForward);
  EXPECT_EQ(count(Counter::xmpp_logins), 1u);
  EXPECT_EQ(client(0, "<message to='dave@imf.test' type='chat'><body>say hello</body></message>"), Verdict::kForward);
  // "FREE money" hidden behind a character reference and CDATA: judged as displayed.
  EXPECT_EQ(client(0, "<message to='dave@imf.test' type='chat'><body>&#x46;<![CDATA[RE]]>E money</body></message>"),
            Verdict::kReset);
  ASSERT_EQ(sink_.hits.size(), 2u);
  EXPECT_EQ(sink_.hits[0].rule, 1);
  EXPECT_EQ(sink_.hits[1].rule, 0);
  EXPECT_EQ(sink_.hits[1].what, Measure::kRuleDrop);
  EXPECT_EQ(sink_.hits[1].account, "mallory@imf.test");
  EXPECT_EQ(sink_.hits[1].channel, "dave@imf.test");
  EXPECT_EQ(sink_.hits[1].protocol, kXmpp);
  EXPECT_EQ(sink_.hits[1].kind, proto::MessageKind::kXmppChat);
  EXPECT_EQ(count(Counter::xmpp_messages), 2u);
  EXPECT_EQ(count(Counter::mqtt_publishes), 0u);
}

TEST_F(ProtocolsTest, XmppStartingTlsIsResetAndCountedApart) {
  ASSERT_TRUE(open(0, 5222, kXmpp));
  EXPECT_EQ(client(0, kXmppHead + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"), Verdict::kReset);
  EXPECT_EQ(count(Counter::xmpp_encrypted), 1u);
  EXPECT_EQ(count(Counter::xmpp_malformed), 0u);
}

TEST_F(ProtocolsTest, IrcNickIsTheAccountAndChannelGlobsApply) {
  ASSERT_TRUE(open(0, 6667, kIrc));
  EXPECT_EQ(client(0, "NICK eve\r\nUSER eve 0 * :Eve\r\n"), Verdict::kForward);
  EXPECT_EQ(client(0, "PRIVMSG #adults :a badword here\r\n"), Verdict::kForward);  // not a #kids* channel
  EXPECT_EQ(client(0, "NICK evelyn\r\nPRIVMSG #KIDS-room :a badword here\r\n"), Verdict::kReset);
  ASSERT_EQ(sink_.hits.size(), 1u);
  EXPECT_EQ(sink_.hits[0].rule, 2);
  EXPECT_EQ(sink_.hits[0].account, "evelyn");
  EXPECT_EQ(sink_.hits[0].channel, "#KIDS-room");
  EXPECT_EQ(sink_.hits[0].kind, proto::MessageKind::kIrcPrivmsg);
  EXPECT_EQ(count(Counter::irc_messages), 2u);
}

TEST_F(ProtocolsTest, IrcServerRelaysAreJudgedToo) {
  ASSERT_TRUE(open(0, 6667, kIrc));
  client(0, "NICK bob\r\nUSER bob 0 * :Bob\r\n");
  EXPECT_EQ(server(0,
                   ":alice!a@h PRIVMSG #room :\x01"
                   "ACTION sends free money\x01\r\n"),
            Verdict::kReset);
  ASSERT_EQ(sink_.hits.size(), 1u);
  EXPECT_EQ(sink_.hits[0].dir, 1);
  EXPECT_EQ(sink_.hits[0].kind, proto::MessageKind::kIrcAction);
  EXPECT_EQ(sink_.hits[0].account, "bob");  // the receiving connection's account, as for MQTT
}

std::string sip_message(const std::string& from, const std::string& body) {
  return "MESSAGE sip:bob@imf.test SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:" + from +
         ">;tag=1\r\nTo: <sip:bob@imf.test>\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST_F(ProtocolsTest, SipOverTcpJudgesEachMessageWithItsOwnSender) {
  ASSERT_TRUE(open(0, 5060, kSip));
  EXPECT_EQ(
      client(0, "OPTIONS sip:bob@imf.test SIP/2.0\r\nFrom: <sip:a@b>\r\nTo: <sip:c@d>\r\nContent-Length: 0\r\n\r\n"),
      Verdict::kForward);
  EXPECT_EQ(client(0, sip_message("alice@imf.test", "hello bob")), Verdict::kForward);
  EXPECT_EQ(client(0, sip_message("mallory@evil.test", "free money")), Verdict::kReset);
  ASSERT_EQ(sink_.hits.size(), 2u);
  EXPECT_EQ(sink_.hits[0].account, "alice@imf.test");
  EXPECT_EQ(sink_.hits[1].account, "mallory@evil.test");
  EXPECT_EQ(sink_.hits[1].channel, "bob@imf.test");
  EXPECT_EQ(sink_.hits[1].kind, proto::MessageKind::kSipMessage);
  EXPECT_EQ(count(Counter::sip_other), 1u);
  EXPECT_EQ(count(Counter::sip_logins), 2u);
}

TEST_F(ProtocolsTest, SipDatagramsAreJudgedAndDroppedAlone) {
  auto datagram = [&](const std::string& text) {
    frame_ = PacketBuilder().ipv4({10, 0, 0, 1}, {10, 0, 0, 2}).udp(5060, 5060).payload(text).build();
    decode::PacketMeta m;
    EXPECT_EQ(decode::decode_packet(frame_.data(), static_cast<uint32_t>(frame_.size()), &m),
              decode::DecodeStatus::kOk);
    return ins_->on_datagram(proto::Protocol::kSip, m, frame_.data() + m.payload_offset, true, sink_);
  };
  EXPECT_EQ(datagram(sip_message("alice@imf.test", "hello bob")), Verdict::kForward);
  EXPECT_EQ(datagram(sip_message("mallory@evil.test", "free money")), Verdict::kDrop);  // not reset: no connection
  EXPECT_EQ(datagram(sip_message("alice@imf.test", "and hello again")), Verdict::kForward);
  EXPECT_EQ(datagram("MESSAGE sip:x SIP/2.0\r\nContent-Length: 99\r\n\r\nshort"), Verdict::kDrop);
  EXPECT_EQ(count(Counter::sip_malformed), 1u);
  EXPECT_EQ(count(Counter::sip_messages), 3u);
  ASSERT_EQ(sink_.hits.size(), 3u);
  EXPECT_EQ(sink_.hits[1].account, "mallory@evil.test");
  EXPECT_EQ(sink_.hits[1].what, Measure::kRuleDrop);
}

TEST_F(ProtocolsTest, ProtocolConditionsSeeTheMessagesProtocol) {
  ASSERT_TRUE(open(0, 6667, kIrc));
  client(0, "NICK a\r\nUSER a 0 * :A\r\nPRIVMSG #x :ping\r\n");  // xmpponly does not apply
  ASSERT_TRUE(open(1, 5222, kXmpp));
  client(1, kXmppHead + kXmppAuth + "<message to='b@imf.test'><body>ping</body></message>");
  ASSERT_EQ(sink_.hits.size(), 1u);
  EXPECT_EQ(sink_.hits[0].rule, 3);
  EXPECT_EQ(sink_.hits[0].kind, proto::MessageKind::kXmppNormal);
}

TEST_F(ProtocolsTest, DetectionDecodesWhatTheClientsFirstBytesOpen) {
  ASSERT_TRUE(open(0, 7000, kProtocolPending));
  EXPECT_EQ(server(0, ":irc.test NOTICE * :*** Looking up your hostname\r\n"), Verdict::kForward);  // server first
  EXPECT_EQ(client(0, "NICK zed\r\nUSER zed 0 * :Z\r\nPRIVMSG #c :free money\r\n"), Verdict::kReset);
  EXPECT_EQ(count(Counter::protocols_detected), 1u);
  EXPECT_EQ(conns_[0].fs.protocol, kIrc);
  ASSERT_EQ(sink_.hits.size(), 1u);
  EXPECT_EQ(sink_.hits[0].account, "zed");

  ASSERT_TRUE(open(1, 8080, kProtocolPending));
  EXPECT_EQ(client(1, "GET / HTTP/1.1\r\nHost: x\r\n\r\nfree money"), Verdict::kForward);  // not IM: passes
  EXPECT_EQ(count(Counter::protocols_undetected), 1u);
  EXPECT_TRUE(conns_[1].fs.uninspected);
  EXPECT_EQ(client(1, "free money"), Verdict::kForward);

  ASSERT_TRUE(open(2, 9001, kProtocolPending));
  Bytes connect = test::mqtt_connect(4, "c", std::string("u"));
  EXPECT_EQ(client(2, std::string(connect.begin(), connect.end())), Verdict::kForward);
  EXPECT_EQ(conns_[2].fs.protocol, kMqtt);
}

TEST_F(ProtocolsTest, TheDecoderPoolBoundsConnectionsAndGivesBackOnRelease) {
  InspectConfig cfg;
  cfg.decoder_pairs = 1;
  make(cfg);
  ASSERT_TRUE(open(0, 5222, kXmpp));
  EXPECT_FALSE(open(1, 6667, kIrc));  // refused: the one pair is taken
  EXPECT_EQ(count(Counter::decoders_full), 1u);
  EXPECT_TRUE(open(2, 1883, kMqtt));  // MQTT needs no pair
  ins_->release_flow(conns_[0].fs);
  conns_[1] = Conn{};
  EXPECT_TRUE(open(1, 6667, kIrc));
  EXPECT_EQ(ins_->decoders().in_use(), 1u);
}

}  // namespace
}  // namespace imf::dp::inspect
