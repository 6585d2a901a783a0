// XmppDecoder: streams written after real Prosody / slixmpp / sendxmpp sessions (and RFC 6120 /
// 6121 examples), each decoded whole, in chunks of 1..16 bytes and split in two at every byte, all
// of which must agree; SASL and bind accounts; body fields as a client displays them; every limit
// and malformed construct; the recorded capture against its ground truth; a mutation loop.
#include "proto/xmpp.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace imf::dp::proto {
namespace {

using namespace std::string_literals;

// ---- Recording sink -----------------------------------------------------------------------------

struct AccountRec {
  std::string account;
  bool truncated = false;
  bool operator==(const AccountRec&) const = default;
};

struct MessageRec {
  MessageKind kind = MessageKind::kXmppNormal;
  std::string channel;
  std::vector<std::string> bodies;
  std::string account;  // the session's account when the message began
  bool channel_truncated = false;
  bool channel_ended = false;
  bool ended = false;
  bool operator==(const MessageRec&) const = default;
};

std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::ostream& operator<<(std::ostream& os, const AccountRec& a) {
  return os << "{'" << a.account << "'" << (a.truncated ? " truncated" : "") << "}";
}
std::ostream& operator<<(std::ostream& os, const MessageRec& m) {
  os << "{" << message_kind_name(m.kind) << " to '" << printable(m.channel) << "'"
     << (m.channel_truncated ? "(cut)" : "") << " as '" << m.account << "' bodies [";
  for (const std::string& b : m.bodies) os << "'" << printable(b) << "' ";
  return os << "]" << (m.channel_ended ? "" : " no channel_end") << (m.ended ? "" : " unended") << "}";
}

MessageRec msg(MessageKind kind, std::string channel, std::vector<std::string> bodies, std::string account = "",
               bool channel_truncated = false) {
  return MessageRec{kind, std::move(channel), std::move(bodies), std::move(account), channel_truncated, true, true};
}

constexpr MessageKind kChat = MessageKind::kXmppChat;
constexpr MessageKind kGroupchat = MessageKind::kXmppGroupchat;
constexpr MessageKind kNormal = MessageKind::kXmppNormal;
constexpr MessageKind kHeadline = MessageKind::kXmppHeadline;

// Records what the decoder reports and checks the call order decoder.h promises.
// With stop_after = N, the N-th callback returns false.
struct RecordingSink {
  const Session* session = nullptr;
  const XmppDecoder* dec = nullptr;
  std::vector<AccountRec> accounts;
  std::vector<MessageRec> messages;
  std::vector<std::string> violations;
  bool body_open = false;
  int calls = 0;
  int stop_after = -1;

  bool next() { return ++calls != stop_after; }
  bool in_message() const { return !messages.empty() && !messages.back().ended; }
  bool in_bodies() const { return in_message() && messages.back().channel_ended; }

  bool on_account(const Session& s) {
    if (in_message()) violations.push_back("account inside a message");
    if (!s.has_username) violations.push_back("account without has_username");
    if (s.account_len > Session::kAccountCap) violations.push_back("account_len > cap");
    accounts.push_back(
        {std::string(s.account, std::min<uint32_t>(s.account_len, Session::kAccountCap)), s.account_truncated});
    return next();
  }
  bool on_message_begin(MessageKind k) {
    if (in_message()) violations.push_back("message_begin inside a message");
    messages.push_back({});
    messages.back().kind = k;
    messages.back().account = std::string(session->account, session->account_len);
    return next();
  }
  bool on_channel(const uint8_t* p, uint32_t n) {
    if (!in_message() || messages.back().channel_ended) violations.push_back("channel outside a message header");
    if (n == 0) violations.push_back("empty channel piece");
    if (in_message()) messages.back().channel.append(reinterpret_cast<const char*>(p), n);
    return next();
  }
  bool on_channel_alias(uint16_t) {
    violations.push_back("channel alias from XMPP");
    return next();
  }
  bool on_channel_end() {
    if (!in_message() || messages.back().channel_ended) violations.push_back("stray channel_end");
    if (in_message()) {
      messages.back().channel_ended = true;
      messages.back().channel_truncated = dec->channel_truncated();
    }
    return next();
  }
  bool on_body(const uint8_t* p, uint32_t n) {
    if (!in_bodies()) violations.push_back("body before channel_end");
    if (n == 0) violations.push_back("empty body piece");
    if (in_message()) {
      if (!body_open) messages.back().bodies.emplace_back();
      messages.back().bodies.back().append(reinterpret_cast<const char*>(p), n);
    }
    body_open = true;
    return next();
  }
  bool on_body_end() {
    if (!in_bodies()) violations.push_back("body_end outside a message's bodies");
    if (in_message() && !body_open) messages.back().bodies.emplace_back();
    body_open = false;
    return next();
  }
  bool on_message_end() {
    if (!in_bodies() || body_open) violations.push_back("stray message_end");
    if (in_message()) messages.back().ended = true;
    return next();
  }
};

// One direction of one connection: decoder, session (its own or a shared one) and sink.
struct Stream {
  XmppDecoder dec;
  Session own{};
  Session& session;
  RecordingSink sink;
  bool from_client;

  explicit Stream(bool client = true) : session(own), from_client(client) { wire(); }
  Stream(bool client, Session& shared) : session(shared), from_client(client) { wire(); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  void wire() {
    sink.session = &session;
    sink.dec = &dec;
  }
  // Feeds a heap copy of exactly `s`, so the sanitizer sees any read outside it.
  FeedResult feed(std::string_view s) {
    std::vector<uint8_t> buf(s.begin(), s.end());
    return dec.feed(buf.data(), static_cast<uint32_t>(buf.size()), from_client, session, sink);
  }
  // Feeds `s` in pieces ending at `cuts` (ascending) and at its end; stops at the first non-kOk.
  FeedResult feed_cuts(std::string_view s, const std::vector<size_t>& cuts) {
    size_t off = 0;
    for (size_t i = 0; i <= cuts.size(); ++i) {
      size_t to = i < cuts.size() ? cuts[i] : s.size();
      FeedResult r = feed(s.substr(off, to - off));
      if (r != FeedResult::kOk) return r;
      off = to;
    }
    return FeedResult::kOk;
  }
  std::string account() const { return std::string(session.account, session.account_len); }
};

struct Outcome {
  FeedResult result = FeedResult::kOk;
  XmppError error = XmppError::kNone;
  std::vector<AccountRec> accounts;
  std::vector<MessageRec> messages;
  uint32_t depth = 0;
  bool boundary = false;
  bool closed = false;
  bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  os << "{result " << static_cast<int>(o.result) << " error " << xmpp_error_name(o.error) << " depth " << o.depth
     << (o.boundary ? " boundary" : "") << (o.closed ? " closed" : "") << " accounts [";
  for (const AccountRec& a : o.accounts) os << a << " ";
  os << "] messages [";
  for (const MessageRec& m : o.messages) os << m << " ";
  return os << "]}";
}

Outcome decode(std::string_view in, bool client, const std::vector<size_t>& cuts) {
  Stream s(client);
  Outcome o;
  o.result = s.feed_cuts(in, cuts);
  EXPECT_TRUE(s.sink.violations.empty()) << s.sink.violations.front();
  o.error = s.dec.error();
  o.accounts = s.sink.accounts;
  o.messages = s.sink.messages;
  o.depth = s.dec.depth();
  o.boundary = s.dec.at_stanza_boundary();
  o.closed = s.dec.stream_closed();
  return o;
}

// Decodes `in` whole, in chunks of 1..16 bytes and split in two at every byte: where segments end
// must not change what is decoded. Returns the whole decode.
Outcome decode_every_way(std::string_view in, bool client) {
  Outcome whole = decode(in, client, {});
  for (size_t chunk = 1; chunk <= 16; ++chunk) {
    std::vector<size_t> cuts;
    for (size_t at = chunk; at < in.size(); at += chunk) cuts.push_back(at);
    EXPECT_EQ(decode(in, client, cuts), whole) << "in chunks of " << chunk;
    if (::testing::Test::HasFailure()) return whole;
  }
  for (size_t at = 1; at < in.size(); ++at) {
    EXPECT_EQ(decode(in, client, {at}), whole) << "split at " << at;
    if (::testing::Test::HasFailure()) return whole;
  }
  return whole;
}

std::string b64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = uint32_t{static_cast<uint8_t>(in[i])} << 16 | uint32_t{static_cast<uint8_t>(in[i + 1])} << 8 |
                 static_cast<uint8_t>(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += kAlphabet[(v >> k) & 63];
  }
  if (in.size() - i == 1) {
    uint32_t v = uint32_t{static_cast<uint8_t>(in[i])} << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (in.size() - i == 2) {
    uint32_t v = uint32_t{static_cast<uint8_t>(in[i])} << 16 | uint32_t{static_cast<uint8_t>(in[i + 1])} << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// ---- Streams as Prosody 0.12, slixmpp 1.8 and sendxmpp write them ---------------------------------

const std::string kClientHead =
    "<stream:stream to='imf.test' xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' "
    "xml:lang='en' version='1.0'>";
const std::string kServerHead =
    "<?xml version='1.0'?><stream:stream version='1.0' id='57449a25-e845-49c3-9ff5-2e8939c03d77' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' xml:lang='en' from='imf.test'>";
const std::string kServerFeatures =
    "<stream:features><c hash='sha-1' node='http://prosody.im' ver='RCsTrxK3Do+ACD6FaemxkXdEIlM=' "
    "xmlns='http://jabber.org/protocol/caps'/><ver xmlns='urn:xmpp:features:rosterver'/><bind "
    "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind><session "
    "xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></stream:features>";

std::string plain_auth(std::string_view message) {
  return "<auth xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\" mechanism=\"PLAIN\">" + b64(message) + "</auth>";
}
std::string scram_auth(std::string_view client_first, std::string_view mech = "SCRAM-SHA-1") {
  return "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + std::string(mech) + "'>" + b64(client_first) +
         "</auth>";
}
std::string bind_result(std::string_view jid, std::string_view id = "b1") {
  return "<iq id='" + std::string(id) + "' type='result'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>" +
         std::string(jid) + "</jid></bind></iq>";
}

// alice's side of the recorded session: SASL PLAIN, restart, bind, presence, then messages.
const std::string kAliceClient =
    kClientHead + plain_auth("\0alice\0alicepw"s) + kClientHead +
    "<iq id=\"2b597090397c4741b6cecfc0177843e4\" type=\"set\"><bind xmlns=\"urn:ietf:params:xml:ns:xmpp-bind\">"
    "<resource>laptop</resource></bind></iq><presence id=\"734813d5b4134b76ae0f57b6929473ce\" xml:lang=\"en\" />"
    "<message type=\"chat\" to=\"bob@imf.test\" id=\"00538d66\" xml:lang=\"en\"><body>hi bob, lunch at "
    "noon?</body></message>"
    "<message type=\"chat\" to=\"bob@imf.test\" id=\"388d15dd\" xml:lang=\"en\"><body>good morning</body>"
    "<body xml:lang=\"de\">guten Morgen</body><body xml:lang=\"fr\">bonjour</body></message>"
    "<message type=\"chat\" to=\"bob@imf.test\" id=\"b7048612\" xml:lang=\"en\"><body>numbers are in the shared "
    "folder</body><subject>weekly report</subject></message>"
    "<message type=\"chat\" to=\"bob@imf.test\" id=\"cdc6e05a\" xml:lang=\"en\"><body>R&amp;D &lt;team&gt; says "
    "&quot;hi&quot; &amp; &apos;bye&apos;</body></message>"
    "<message to='bob@imf.test' type='chat' id='alice-charref'><body>caf&#233; &#x26; cr&#xE8;me, 5 &lt; 6 "
    "&amp;&amp; 7 &gt; 3</body></message>"
    "<message to='bob@imf.test' type='chat' id='alice-cdata'><body><![CDATA[if (a < b && c > d) { return \"<ok>\"; "
    "}]]></body></message>"
    "<message type=\"headline\" to=\"carol@imf.test\" id=\"e73e5bb5\" xml:lang=\"en\"><body>server maintenance "
    "tonight at 18:00</body></message>"
    "<presence to=\"lobby@conference.imf.test/Alice\" id=\"f2391c63\" xml:lang=\"en\"><x "
    "xmlns=\"http://jabber.org/protocol/muc\"><history maxstanzas=\"0\" /></x></presence>"
    "<message to=\"lobby@conference.imf.test\" id=\"c6f1c9a0\" xml:lang=\"en\" type=\"groupchat\"><subject>Daily "
    "standup</subject></message>"
    "<message type=\"groupchat\" to=\"lobby@conference.imf.test\" id=\"4702c465\" xml:lang=\"en\"><body>standup in "
    "5 minutes</body></message>"
    "\n \n"  // whitespace keep-alive
    "<message to='dave@imf.test' type='chat' id='mallory-2'><body>claim your &#x46;REE money now</body><active "
    "xmlns='http://jabber.org/protocol/chatstates'/></message></stream:stream>";

// bob's side, from the server: SCRAM-SHA-1, restart, bind result, copies of chats and of the room.
const std::string kBobServer =
    kServerHead +
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>"
    "<mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>"
    "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>cj0wODYyOTA0MTkyNTQ1NTY5NDQwOTMxMmIzLTM0YzktNGViNS1hOGQwLT"
    "hjYjM4ODI1ZWY1ZixzPU5EaGlOalV3TWprdFpqZzVOUzAwWlRNM0xUZzNabUl0TkRGbE16TmpNREptWVdJMixpPTEwMDAw</challenge>"
    "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj16bE1ZVUJxVi9INVlvS3BDOWM0NlcwaVcvdU09</success>" +
    kServerHead + kServerFeatures +
    "<iq id='9b1147aa3fdd4bb680e7284f8d42b332' type='result'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
    "<jid>bob@imf.test/phone</jid></bind></iq>"
    "<presence id='867e1b8c' xml:lang='en' from='bob@imf.test/phone'/>"
    "<message id='00538d66' type='chat' to='bob@imf.test' xml:lang='en' from='alice@imf.test/laptop'><body>hi bob, "
    "lunch at noon?</body></message>"
    "<message id='388d15dd' type='chat' to='bob@imf.test' xml:lang='en' from='alice@imf.test/laptop'><body>good "
    "morning</body><body xml:lang='de'>guten Morgen</body><body xml:lang='fr'>bonjour</body></message>"
    "<message id='alice-charref' type='chat' to='bob@imf.test' xml:lang='en' from='alice@imf.test/laptop'><body>"
    "caf\xc3\xa9 &amp; cr\xc3\xa8me, 5 &lt; 6 &amp;&amp; 7 &gt; 3</body></message>"
    "<message id='alice-cdata' type='chat' to='bob@imf.test' xml:lang='en' from='alice@imf.test/laptop'><body>if (a "
    "&lt; b &amp;&amp; c &gt; d) { return &quot;&lt;ok&gt;&quot;; }</body></message>"
    "<presence to='bob@imf.test/phone' id='f2391c63' xml:lang='en' from='lobby@conference.imf.test/Alice'>"
    "<occupant-id id='U1lH8efR2xi3HNb0sClRrYLXak6ezBJ7jhT2r/8zXgQ=' xmlns='urn:xmpp:occupant-id:0'/><x "
    "xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/></x></presence>"
    "<message to='bob@imf.test/phone' from='lobby@conference.imf.test' type='groupchat'><subject/></message>"
    "<message to='bob@imf.test/phone' from='lobby@conference.imf.test/Alice' type='groupchat'><subject>Daily "
    "standup</subject></message>"
    "<message id='4702c465' type='groupchat' to='bob@imf.test/phone' xml:lang='en' "
    "from='lobby@conference.imf.test/Alice'><body>standup in 5 minutes</body><occupant-id "
    "id='U1lH8efR2xi3HNb0sClRrYLXak6ezBJ7jhT2r/8zXgQ=' xmlns='urn:xmpp:occupant-id:0'/></message>"
    "<message id='cea88591' type='groupchat' to='bob@imf.test/phone' xml:lang='en' "
    "from='lobby@conference.imf.test/Carol'><body>starting without me? &lt;kidding&gt; &amp; all</body></message>"
    "<message id='5b5f3d1a' type='chat' to='bob@imf.test' xml:lang='en' from='alice@imf.test/laptop'><body>good "
    "night bob</body></message>"
    "<presence to='bob@imf.test/phone' from='lobby@conference.imf.test/Carol' type='unavailable'><x "
    "xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/></x></presence>"
    "</stream:stream>";

// A client that binds without restarting the stream after SASL success, then authenticates
// again as someone else: the bound account stays.
TEST(XmppSession, SaslAfterBindNeverReplacesTheBoundAccount) {
  Session session{};
  Stream c2s(true, session);
  Stream s2c(false, session);
  ASSERT_EQ(c2s.feed(kClientHead + plain_auth("\0mallory\0pw"s) + "<iq type='set' id='b'><bind/></iq>"),
            FeedResult::kOk);
  ASSERT_EQ(s2c.feed(kServerHead + "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" +
                     bind_result("mallory@imf.test/bot")),
            FeedResult::kOk);
  ASSERT_EQ(c2s.feed(plain_auth("\0ceo\0pw"s) + scram_auth("n,,n=ceo,r=1") +
                     "<message to='x@imf.test' type='chat'><body>hi</body></message>"),
            FeedResult::kOk);
  EXPECT_EQ(c2s.account(), "mallory@imf.test");
  EXPECT_EQ(c2s.sink.accounts, (std::vector<AccountRec>{{"mallory@imf.test", false}}));
  ASSERT_EQ(c2s.sink.messages.size(), 1u);
  EXPECT_EQ(c2s.sink.messages[0].account, "mallory@imf.test");
  EXPECT_EQ(session.account_source, kXmppAccountBound);
}

TEST(XmppSession, ClientStreamOfASlixmppSession) {
  Outcome o = decode_every_way(kAliceClient, true);
  const std::string a = "alice@imf.test";
  EXPECT_EQ(o.result, FeedResult::kOk) << xmpp_error_name(o.error);
  EXPECT_EQ(o.accounts, (std::vector<AccountRec>{{a, false}}));
  EXPECT_EQ(o.messages, (std::vector<MessageRec>{
                            msg(kChat, "bob@imf.test", {"hi bob, lunch at noon?"}, a),
                            msg(kChat, "bob@imf.test", {"good morning", "guten Morgen", "bonjour"}, a),
                            msg(kChat, "bob@imf.test", {"numbers are in the shared folder", "weekly report"}, a),
                            msg(kChat, "bob@imf.test", {"R&D <team> says \"hi\" & 'bye'"}, a),
                            msg(kChat, "bob@imf.test", {"caf\xc3\xa9 & cr\xc3\xa8me, 5 < 6 && 7 > 3"}, a),
                            msg(kChat, "bob@imf.test", {"if (a < b && c > d) { return \"<ok>\"; }"}, a),
                            msg(kHeadline, "carol@imf.test", {"server maintenance tonight at 18:00"}, a),
                            msg(kGroupchat, "lobby@conference.imf.test", {"Daily standup"}, a),
                            msg(kGroupchat, "lobby@conference.imf.test", {"standup in 5 minutes"}, a),
                            msg(kChat, "dave@imf.test", {"claim your FREE money now"}, a),
                        }));
  EXPECT_TRUE(o.closed);
  EXPECT_EQ(o.depth, 0u);
}

TEST(XmppSession, ServerStreamDeliveringCopies) {
  Outcome o = decode_every_way(kBobServer, false);
  const std::string b = "bob@imf.test";
  const std::string room = "lobby@conference.imf.test";
  EXPECT_EQ(o.result, FeedResult::kOk) << xmpp_error_name(o.error);
  EXPECT_EQ(o.accounts, (std::vector<AccountRec>{{b, false}}));
  // Chats: the recipient (the receiving account); groupchat: the room, the bare `from`.
  EXPECT_EQ(o.messages, (std::vector<MessageRec>{
                            msg(kChat, b, {"hi bob, lunch at noon?"}, b),
                            msg(kChat, b, {"good morning", "guten Morgen", "bonjour"}, b),
                            msg(kChat, b, {"caf\xc3\xa9 & cr\xc3\xa8me, 5 < 6 && 7 > 3"}, b),
                            msg(kChat, b, {"if (a < b && c > d) { return \"<ok>\"; }"}, b),
                            msg(kGroupchat, room, {""}, b),
                            msg(kGroupchat, room, {"Daily standup"}, b),
                            msg(kGroupchat, room, {"standup in 5 minutes"}, b),
                            msg(kGroupchat, room, {"starting without me? <kidding> & all"}, b),
                            msg(kChat, b, {"good night bob"}, b),
                        }));
  EXPECT_TRUE(o.closed);
}

TEST(XmppSession, BothDirectionsShareTheSessionAndBindOverridesSasl) {
  Session session{};
  Stream c2s(true, session);
  Stream s2c(false, session);
  EXPECT_EQ(session.account_source, 0);
  ASSERT_EQ(c2s.feed(kClientHead + plain_auth("\0Alice\0pw"s)), FeedResult::kOk);
  EXPECT_EQ(c2s.account(), "Alice@imf.test");
  EXPECT_TRUE(session.has_username);
  EXPECT_EQ(session.account_source, kXmppAccountSasl);
  ASSERT_EQ(s2c.feed(kServerHead + "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" + kServerHead +
                     kServerFeatures + bind_result("alice.work@imf.test/laptop")),
            FeedResult::kOk);
  EXPECT_EQ(s2c.account(), "alice.work@imf.test");
  EXPECT_EQ(s2c.sink.accounts, (std::vector<AccountRec>{{"alice.work@imf.test", false}}));
  EXPECT_EQ(session.account_source, kXmppAccountBound);
  // Messages from then on carry the bound account, in both directions.
  ASSERT_EQ(c2s.feed(kClientHead + "<message to='bob@imf.test' type='chat'><body>x</body></message>"), FeedResult::kOk);
  ASSERT_EQ(c2s.sink.messages.size(), 1u);
  EXPECT_EQ(c2s.sink.messages[0].account, "alice.work@imf.test");
  // A second bind result can only be forged (an iq result another user routes here): ignored.
  ASSERT_EQ(s2c.feed(bind_result("ceo@imf.test/desk", "forged") +
                     "<message to='alice.work@imf.test' type='chat'><body>y</body></message>"),
            FeedResult::kOk);
  EXPECT_EQ(s2c.account(), "alice.work@imf.test");
  EXPECT_EQ(s2c.sink.accounts.size(), 1u);
  ASSERT_EQ(s2c.sink.messages.size(), 1u);
  EXPECT_EQ(s2c.sink.messages[0], msg(kChat, "alice.work@imf.test", {"y"}, "alice.work@imf.test"));
}

// ---- SASL ----------------------------------------------------------------------------------------

struct SaslCase {
  const char* name;
  std::string stream;  // client side
  std::vector<AccountRec> accounts;
};

void PrintTo(const SaslCase& c, std::ostream* os) { *os << c.name; }

class SaslTest : public ::testing::TestWithParam<SaslCase> {};

TEST_P(SaslTest, YieldsTheAccount) {
  const SaslCase& c = GetParam();
  Outcome o = decode_every_way(c.stream, true);
  EXPECT_EQ(o.result, FeedResult::kOk) << xmpp_error_name(o.error);
  EXPECT_EQ(o.accounts, c.accounts);
  // The password is never kept: the account is all the session holds.
  Stream s;
  ASSERT_EQ(s.feed(c.stream), FeedResult::kOk);
  if (!c.accounts.empty()) {
    EXPECT_EQ(s.account(), c.accounts.back().account);
  }
  EXPECT_EQ(s.account().find("secret"), std::string::npos);
}

const std::string kUser87(87, 'u');
const std::string kUser88(88, 'v');
const std::string kUser120(120, 'w');

INSTANTIATE_TEST_SUITE_P(
    Xmpp, SaslTest,
    ::testing::Values(
        SaslCase{"plain", kClientHead + plain_auth("\0alice\0secret"s), {{"alice@imf.test"}}},
        SaslCase{"plain_sendxmpp_authzid",
                 "<?xml version='1.0'?><stream:stream version='1.0' xmlns:stream='http://etherx.jabber.org/streams' "
                 "xmlns='jabber:client' to='imf.test' from='localhost' xml:lang='en' ><auth "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>ZXJpbkBpbWYudGVzdABlcmluAGVyaW5wdw==</"
                 "auth>",
                 {{"erin@imf.test"}}},
        SaslCase{"plain_authcid_is_a_jid",
                 kClientHead + plain_auth("\0alice@example.org\0secret"s),
                 {{"alice@example.org"}}},
        SaslCase{"plain_no_stream_to",
                 "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'>" +
                     plain_auth("\0alice\0secret"s),
                 {{"alice"}}},
        SaslCase{"plain_stream_to_entity",
                 "<stream:stream to='im&#x66;.test' xmlns='jabber:client'>" + plain_auth("\0alice\0secret"s),
                 {{"alice@imf.test"}}},
        SaslCase{"plain_without_password", kClientHead + plain_auth("\0alice"s), {{"alice@imf.test"}}},
        SaslCase{"plain_base64_with_line_breaks_entities_and_cdata",
                 kClientHead +
                     "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>\n  &#65;GFsa\r\nWNl<![CDATA[AHN"
                     "]]>lY3JldA==\n</auth>",
                 {{"alice@imf.test"}}},
        SaslCase{"plain_initial_response_in_response",
                 kClientHead +
                     "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/><response "
                     "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" +
                     b64("\0carol\0secret"s) + "</response>",
                 {{"carol@imf.test"}}},
        SaslCase{"plain_retry_after_failure",
                 kClientHead + plain_auth("\0alice\0wrong"s) + plain_auth("\0alice2\0secret"s),
                 {{"alice@imf.test"}, {"alice2@imf.test"}}},
        SaslCase{"plain_bad_base64",
                 kClientHead + "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AG*sa</auth>",
                 {}},
        SaslCase{"plain_empty_response", kClientHead + "<auth mechanism='PLAIN'>=</auth>", {}},
        SaslCase{
            "plain_user_87_fits", kClientHead + plain_auth("\0"s + kUser87 + "\0secret"s), {{kUser87 + "@imf.test"}}},
        SaslCase{"plain_user_88_truncated",
                 kClientHead + plain_auth("\0"s + kUser88 + "\0secret"s),
                 {{(kUser88 + "@imf.test").substr(0, 96), true}}},
        SaslCase{"plain_user_120_truncated",
                 kClientHead + plain_auth("\0"s + kUser120 + "\0secret"s),
                 {{kUser120.substr(0, 96), true}}},
        SaslCase{"scram_sha1", kClientHead + scram_auth("n,,n=bob,r=08629041925455694"), {{"bob@imf.test"}}},
        SaslCase{
            "scram_escapes", kClientHead + scram_auth("y,,n=a=2Cb=3Dc,r=x", "SCRAM-SHA-256"), {{"a,b=c@imf.test"}}},
        SaslCase{"scram_plus_channel_binding",
                 kClientHead + scram_auth("p=tls-exporter,,n=carol,r=abc", "SCRAM-SHA-256-PLUS"),
                 {{"carol@imf.test"}}},
        SaslCase{"scram_authzid", kClientHead + scram_auth("n,a=admin=2C@imf.test,n=dave,r=x"), {{"dave@imf.test"}}},
        SaslCase{"scram_bad_escape", kClientHead + scram_auth("n,,n=bad=41,r=x"), {}},
        SaslCase{"scram_extension_before_user", kClientHead + scram_auth("n,,m=ext,n=x,r=y"), {}},
        SaslCase{"scram_then_client_final",
                 kClientHead + scram_auth("n,,n=eve,r=9354") + "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" +
                     b64("c=biws,r=9354abc,p=secret") + "</response>",
                 {{"eve@imf.test"}}},
        SaslCase{
            "scram_initial_response_in_response",
            kClientHead + "<auth mechanism='SCRAM-SHA-1'></auth><response>" + b64("n,,n=trent,r=1") + "</response>",
            {{"trent@imf.test"}}},
        SaslCase{"other_mechanisms",
                 kClientHead + "<auth mechanism='EXTERNAL'>" + b64("admin@imf.test") +
                     "</auth><auth mechanism='DIGEST-MD5'/><response>" + b64("username=\"x\"") +
                     "</response><auth mechanism='ANONYMOUS'/>",
                 {}},
        SaslCase{"auth_after_restart_is_ignored",
                 kClientHead + plain_auth("\0alice\0secret"s) + kClientHead + plain_auth("\0mallory\0secret"s),
                 {{"alice@imf.test"}}},
        SaslCase{"prefixed_auth",
                 kClientHead + "<sasl:auth xmlns:sasl='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
                     b64("\0frank\0secret"s) + "</sasl:auth>",
                 {{"frank@imf.test"}}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(XmppSasl, ServerSideAuthIsIgnored) {
  Outcome o = decode_every_way(kServerHead + plain_auth("\0alice\0secret"s), false);
  EXPECT_EQ(o.result, FeedResult::kOk);
  EXPECT_TRUE(o.accounts.empty());
}

// ---- Resource binding ------------------------------------------------------------------------------

TEST(XmppBind, BareJidOfTheFirstResult) {
  const std::string pre =
      kServerHead + "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" + kServerHead + kServerFeatures;
  struct Case {
    std::string stream;
    std::vector<AccountRec> accounts;
  };
  const std::string long_local(120, 'l');
  const std::vector<Case> cases = {
      {pre + bind_result("bob@imf.test/phone"), {{"bob@imf.test"}}},
      {pre + bind_result("bob@imf.test"), {{"bob@imf.test"}}},
      {pre + bind_result("b&#111;b@imf.test/ph&lt;one"), {{"bob@imf.test"}}},
      {pre + bind_result(long_local + "@imf.test/r"), {{long_local.substr(0, 96), true}}},
      {pre + bind_result(std::string(90, 'x') + "@ab/" + std::string(300, 'r')), {{std::string(90, 'x') + "@ab"}}},
      {pre + bind_result(std::string(300, 'x')), {{std::string(96, 'x'), true}}},
      {pre + bind_result("") + bind_result("late@imf.test/r"), {{"late@imf.test"}}},
      {pre + bind_result("first@imf.test/r") + bind_result("second@imf.test/r"), {{"first@imf.test"}}},
      // Only an iq result counts, and only <jid> inside <bind> right under it.
      {pre + "<iq type='set'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>set@imf.test</jid></bind></iq>", {}},
      {pre + "<iq type='result'><query><bind><jid>deep@imf.test</jid></bind></query></iq>", {}},
      {pre + "<iq type='result'><jid>nobind@imf.test</jid></iq>", {}},
      {pre + "<message><bind><jid>msg@imf.test</jid></bind></message>", {}},
      {pre + "<iq type='result' id='x'><b:bind xmlns:b='urn:ietf:params:xml:ns:xmpp-bind'><b:jid>pre@imf.test/r</b:jid>"
             "</b:bind></iq>",
       {{"pre@imf.test"}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.stream.substr(pre.size()));
    Outcome o = decode_every_way(c.stream, false);
    EXPECT_EQ(o.result, FeedResult::kOk) << xmpp_error_name(o.error);
    EXPECT_EQ(o.accounts, c.accounts);
  }
}

TEST(XmppBind, ClientSideBindIsIgnored) {
  Outcome o = decode_every_way(
      kClientHead +
          "<iq type='result'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>me@imf.test</jid></bind></iq>",
      true);
  EXPECT_EQ(o.result, FeedResult::kOk);
  EXPECT_TRUE(o.accounts.empty());
}

// ---- Body fields -----------------------------------------------------------------------------------

struct BodyCase {
  const char* name;
  std::string stanza;  // after kClientHead
  std::vector<std::string> bodies;
};

void PrintTo(const BodyCase& c, std::ostream* os) { *os << c.name; }

class BodyTest : public ::testing::TestWithParam<BodyCase> {};

TEST_P(BodyTest, FieldsHoldTheDisplayedText) {
  const BodyCase& c = GetParam();
  Outcome o = decode_every_way(kClientHead + c.stanza, true);
  ASSERT_EQ(o.result, FeedResult::kOk) << xmpp_error_name(o.error);
  ASSERT_EQ(o.messages.size(), 1u);
  EXPECT_EQ(o.messages[0].bodies, c.bodies);
  EXPECT_TRUE(o.messages[0].ended);
  EXPECT_TRUE(o.boundary);
}

INSTANTIATE_TEST_SUITE_P(
    Xmpp, BodyTest,
    ::testing::Values(
        BodyCase{"one", "<message to='b@x'><body>hello</body></message>", {"hello"}},
        BodyCase{"none", "<message to='b@x'><active xmlns='http://jabber.org/protocol/chatstates'/></message>", {}},
        BodyCase{"empty_element_message", "<message to='b@x'/>", {}},
        BodyCase{"empty_bodies", "<message><body/><body></body><subject/></message>", {"", "", ""}},
        BodyCase{"langs_and_subject_in_document_order",
                 "<message><subject xml:lang='en'>s</subject><body>en</body><body xml:lang='de'>de</body>"
                 "<subject xml:lang='de'>S</subject><body xml:lang='fr'>fr</body></message>",
                 {"s", "en", "de", "S", "fr"}},
        BodyCase{"predefined_entities", "<message><body>&lt;&gt;&amp;&apos;&quot;</body></message>", {"<>&'\""}},
        BodyCase{"character_references",
                 "<message><body>&#x46;REE &#70;REE &#x20AC;5 &#128512; &#x0000046; &#9;&#10;&#13;</body></message>",
                 {"FREE FREE \xe2\x82\xac"
                  "5 \xf0\x9f\x98\x80 F \t\n\r"}},
        BodyCase{"cdata", "<message><body><![CDATA[FR]]>EE</body></message>", {"FREE"}},
        BodyCase{"cdata_brackets",
                 "<message><body><![CDATA[a]b]]c]]]>d<![CDATA[]]]]><![CDATA[]]>e<![CDATA[<&>]]></body></message>",
                 {"a]b]]c]d]]e<&>"}},
        BodyCase{"line_ends",
                 "<message><body>a\r\nb\rc\n\rd<![CDATA[e\r\nf\r]]>\n</body></message>",
                 {"a\nb\nc\n\nde\nf\n\n"}},
        BodyCase{"raw_utf8_and_gt", "<message><body>caf\xc3\xa9 > tea</body></message>", {"caf\xc3\xa9 > tea"}},
        BodyCase{"text_in_children_of_body",
                 "<message><body>fr<b>ee</b> mo<i><u>ney</u></i></body></message>",
                 {"free money"}},
        BodyCase{"skipped_children",
                 "<message>stray text<thread>t1</thread><body>b</body><delay xmlns='urn:xmpp:delay' "
                 "stamp='2002-09-10T23:08:25Z'>offline</delay><x xmlns='jabber:x:oob'><url>http://e.test/</url>"
                 "<desc>free money</desc></x><request xmlns='urn:xmpp:receipts'/></message>",
                 {"b"}},
        BodyCase{"body_under_other_element_is_not_a_body",
                 "<message><x><body>hidden</body></x><body>yes</body></message>",
                 {"yes"}},
        BodyCase{
            "xhtml_im",
            "<message><body>plain</body><html xmlns='http://jabber.org/protocol/xhtml-im'><body "
            "xmlns='http://www.w3.org/1999/xhtml'><p>free<br/>money</p><p><em>now</em>!</p></body></html></message>",
            {"plain", "\n\nfree\nmoney\n\nnow!\n\n"}},
        BodyCase{"xhtml_inline_only",
                 "<message><html><body xmlns='http://www.w3.org/1999/xhtml'>fr<span>ee</span></body>"
                 "</html></message>",
                 {"\nfree\n"}},
        BodyCase{"forwarded_message",
                 "<message to='bob@imf.test' type='chat'><body>fwd:</body><forwarded xmlns='urn:xmpp:forward:0'><delay "
                 "xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/><message from='x@y' to='z@y' type='chat'>"
                 "<body>free money</body><subject>sub</subject><thread>t</thread></message></forwarded></message>",
                 {"fwd:", "free money", "sub"}},
        BodyCase{"carbon",
                 "<message from='alice@imf.test' to='alice@imf.test/phone'>\n  <sent xmlns='urn:xmpp:carbons:2'>\n"
                 "  <forwarded xmlns='urn:xmpp:forward:0'>\n  <message xmlns='jabber:client' "
                 "from='alice@imf.test/laptop' to='bob@imf.test' type='chat'><body>carbon copy</body></message>\n"
                 "  </forwarded>\n  </sent>\n</message>",
                 {"carbon copy"}},
        BodyCase{"message_inside_body_is_text",
                 "<message><body>a<message><body>b</body></message>c</body></message>",
                 {"abc"}},
        BodyCase{"prefixed_body",
                 "<cl:message xmlns:cl='jabber:client'><cl:body>p</cl:body><body>q</body></cl:message>",
                 {"p", "q"}},
        BodyCase{"entity_split_points",
                 "<message><body>&amp;&#x46;&lt;<![CDATA[]]>&#233;</body></message>",
                 {"&F<\xc3\xa9"}},
        BodyCase{
            "long_body", "<message><body>" + std::string(5000, 'z') + "</body></message>", {std::string(5000, 'z')}}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- Kind and channel ------------------------------------------------------------------------------

TEST(XmppMessage, KindFromType) {
  struct Case {
    std::string attrs;
    MessageKind kind;
  };
  const std::vector<Case> cases = {
      {"type='chat'", kChat},
      {"type='groupchat'", kGroupchat},
      {"type='headline'", kHeadline},
      {"type='normal'", kNormal},
      {"", kNormal},
      {"type='error'", kNormal},
      {"type='CHAT'", kNormal},
      {"type='chat2'", kNormal},
      {"type='&#99;hat'", kChat},
      {"type=\"headline\"", kHeadline},
      {"type=''", kNormal},
      {"type='a-very-long-unknown-message-type'", kNormal},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.attrs);
    Outcome o = decode_every_way(kClientHead + "<message to='r@x' " + c.attrs + "><body>b</body></message>", true);
    ASSERT_EQ(o.messages.size(), 1u) << xmpp_error_name(o.error);
    EXPECT_EQ(o.messages[0].kind, c.kind);
  }
}

TEST(XmppMessage, ChannelPerDirectionAndKind) {
  struct Case {
    bool client;
    std::string start_tag;
    std::string channel;
    bool truncated;
  };
  const std::string head_for[2] = {kServerHead, kClientHead};
  const std::string long_to(300, 't');
  const std::string to256(256, 's');
  const std::vector<Case> cases = {
      {true, "<message to='bob@imf.test' type='chat'>", "bob@imf.test", false},
      {true, "<message type='chat' id='1' to='bob@imf.test/phone'>", "bob@imf.test/phone", false},
      {true, "<message to='r&amp;d@imf.test' type='normal'>", "r&d@imf.test", false},
      {true, "<message type='chat'>", "", false},
      {true, "<message from='spoof@x' type='chat' to='a@b'>", "a@b", false},
      {true, "<message to='room@muc.imf.test' type='groupchat'>", "room@muc.imf.test", false},
      {true, "<message to='room@muc.imf.test/nick' type='groupchat'>", "room@muc.imf.test", false},
      {true, "<message to='room@muc.imf.test/nick' type='chat'>", "room@muc.imf.test/nick", false},
      {true, "<message to='" + to256 + "'>", to256, false},
      {true, "<message to='" + long_to + "'>", long_to.substr(0, 256), true},
      {true, "<message type='groupchat' to='" + long_to + "'>", long_to.substr(0, 256), true},
      {true, "<message type='groupchat' to='room@m/" + long_to + "'>", "room@m", false},
      {false, "<message from='alice@imf.test/laptop' to='bob@imf.test' type='chat'>", "bob@imf.test", false},
      {false, "<message from='alice@imf.test/laptop' to='bob@imf.test/phone'>", "bob@imf.test/phone", false},
      {false, "<message to='bob@imf.test/phone' from='lobby@conference.imf.test/Alice' type='groupchat'>",
       "lobby@conference.imf.test", false},
      {false, "<message type='groupchat' to='bob@imf.test/phone' from='lobby@conference.imf.test'>",
       "lobby@conference.imf.test", false},
      {false, "<message type='groupchat' to='bob@imf.test/phone'>", "", false},
      {false, "<message from='room@m/" + long_to + "' type='groupchat' to='b@x'>", "room@m", false},
      {false, "<message from='" + long_to + "' type='groupchat' to='b@x'>", long_to.substr(0, 256), true},
      {false, "<message from='x@y' type='headline' to='" + long_to + "'>", long_to.substr(0, 256), true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.start_tag);
    Outcome o = decode_every_way(head_for[c.client] + c.start_tag + "<body>b</body></message>", c.client);
    ASSERT_EQ(o.messages.size(), 1u) << xmpp_error_name(o.error);
    EXPECT_EQ(o.messages[0].channel, c.channel);
    EXPECT_EQ(o.messages[0].channel_truncated, c.truncated);
    EXPECT_EQ(o.messages[0].bodies, std::vector<std::string>{"b"});
  }
}

TEST(XmppMessage, NamespacePrefixes) {
  const std::string in =
      "<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client' to='imf.test'>"
      "<cl:message xmlns:cl='jabber:client' to='bob@imf.test' type='chat'><cl:body>prefixed</cl:body></cl:message>"
      "<jabber:client:message to='carol@imf.test'><jabber:client:body>odd prefix</jabber:client:body>"
      "</jabber:client:message>"
      "<message xmlns='urn:other' to='dave@imf.test'><body xmlns='urn:other'>any namespace</body></message>"
      "</s:stream>";
  Outcome o = decode_every_way(in, true);
  EXPECT_EQ(o.result, FeedResult::kOk) << xmpp_error_name(o.error);
  EXPECT_EQ(o.messages, (std::vector<MessageRec>{msg(kChat, "bob@imf.test", {"prefixed"}),
                                                 msg(kNormal, "carol@imf.test", {"odd prefix"}),
                                                 msg(kNormal, "dave@imf.test", {"any namespace"})}));
  EXPECT_TRUE(o.closed);
}

TEST(XmppMessage, StanzasOtherThanMessagesAreSkipped) {
  const std::string in =
      kClientHead +
      "<presence><status>free money</status></presence><iq type='set' id='1'><query "
      "xmlns='jabber:iq:private'><body>free money</body><message><body>not a stanza</body></message></query></iq>"
      "<body>stray body</body><r xmlns='urn:xmpp:sm:3'/>"
      "<message to='a@b'><body>only me</body></message>";
  Outcome o = decode_every_way(in, true);
  EXPECT_EQ(o.result, FeedResult::kOk) << xmpp_error_name(o.error);
  EXPECT_EQ(o.messages, (std::vector<MessageRec>{msg(kNormal, "a@b", {"only me"})}));
}

// ---- The stream ------------------------------------------------------------------------------------

TEST(XmppStream, PrologRestartsKeepalivesAndEnd) {
  struct Case {
    std::string in;
    bool closed;
  };
  const std::vector<Case> cases = {
      {" \r\n<?xml version='1.0' encoding='UTF-8'?>\n" + kClientHead + " \n\t ", false},
      {"<?xml version='1.0'?>" + kClientHead + "<?xml version='1.0'?>" + kClientHead + "</stream:stream>\n", true},
      {"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>", true},
      {kClientHead + "<stream:stream to='imf.test'/> ", true},
      {kClientHead + "text at stream level &amp; <![CDATA[cdata]]> ignored</stream:stream>", true},
      {kClientHead + "<?xml?>", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.in);
    Outcome o = decode_every_way(c.in, true);
    EXPECT_EQ(o.result, FeedResult::kOk) << xmpp_error_name(o.error);
    EXPECT_EQ(o.closed, c.closed);
    EXPECT_EQ(o.depth, c.closed ? 0u : 1u);
  }
}

TEST(XmppStream, StanzaBoundary) {
  Stream s;
  ASSERT_EQ(s.feed(kClientHead + "<message><body>x"), FeedResult::kOk);
  EXPECT_FALSE(s.dec.at_stanza_boundary());
  EXPECT_EQ(s.dec.depth(), 3u);
  ASSERT_EQ(s.feed("</body></message><pres"), FeedResult::kOk);
  EXPECT_FALSE(s.dec.at_stanza_boundary());
  ASSERT_EQ(s.feed("ence/>"), FeedResult::kOk);
  EXPECT_TRUE(s.dec.at_stanza_boundary());
  ASSERT_EQ(s.feed(""), FeedResult::kOk);
}

TEST(XmppStream, StartTlsAndCompressionEndDecoding) {
  struct Case {
    bool client;
    std::string in;
    XmppError error;
  };
  const std::string tls_features =
      "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><compression "
      "xmlns='http://jabber.org/features/compress'><method>zlib</method></compression></stream:features>";
  const std::vector<Case> cases = {
      {true, kClientHead + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\x16\x03\x01\x02\x00\x01"s,
       XmppError::kStartTls},
      {true, kClientHead + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'></starttls>", XmppError::kStartTls},
      {false, kServerHead + tls_features + "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\x16\x03\x03",
       XmppError::kStartTls},
      {true, kClientHead + "<compress xmlns='http://jabber.org/protocol/compress'><method>zlib</method></compress>",
       XmppError::kCompression},
      {false, kServerHead + "<compressed xmlns='http://jabber.org/protocol/compress'/>", XmppError::kCompression},
      // The other direction's element, or one deeper down, means nothing.
      {true, kClientHead + "<proceed/><compressed/><message><starttls/></message>", XmppError::kNone},
      {false, kServerHead + tls_features + "<starttls/><compress/>", XmppError::kNone},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.in);
    Outcome o = decode_every_way(c.in, c.client);
    EXPECT_EQ(o.error, c.error) << xmpp_error_name(o.error);
    EXPECT_EQ(o.result, c.error == XmppError::kNone ? FeedResult::kOk : FeedResult::kError);
    EXPECT_FALSE(xmpp_error_is_violation(o.error));
  }
}

// ---- Malformed streams -----------------------------------------------------------------------------

struct ErrorCase {
  const char* name;
  bool client;
  std::string in;
  XmppError error;
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

class MalformedTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(MalformedTest, IsAViolation) {
  const ErrorCase& c = GetParam();
  Outcome o = decode_every_way(c.in, c.client);
  EXPECT_EQ(o.result, FeedResult::kError);
  EXPECT_EQ(o.error, c.error) << xmpp_error_name(o.error);
  EXPECT_TRUE(xmpp_error_is_violation(o.error));
  // Feeding after an error is refused without reading.
  Stream s(c.client);
  ASSERT_EQ(s.feed(c.in), FeedResult::kError);
  EXPECT_EQ(s.dec.feed(nullptr, 0, c.client, s.session, s.sink), FeedResult::kError);
}

std::string in_stream(const std::string& s) { return kClientHead + s; }
std::string nested(size_t levels) {
  std::string open, close;
  for (size_t i = 0; i < levels; ++i) {
    open += "<e>";
    close += "</e>";
  }
  return open + close;
}

INSTANTIATE_TEST_SUITE_P(
    Xmpp, MalformedTest,
    ::testing::Values(
        ErrorCase{"text_before_stream", true, "hello" + kClientHead, XmppError::kTextOutsideStream},
        ErrorCase{"http_request", true, "GET / HTTP/1.1\r\n", XmppError::kTextOutsideStream},
        ErrorCase{"tls_client_hello", true, "\x16\x03\x01\x02\x00"s, XmppError::kTextOutsideStream},
        ErrorCase{"cdata_before_stream", true, "<![CDATA[x]]>" + kClientHead, XmppError::kTextOutsideStream},
        ErrorCase{"message_before_stream", true, "<message to='a@b'><body>x</body></message>",
                  XmppError::kNoStreamHeader},
        ErrorCase{"end_tag_before_stream", true, "</stream:stream>", XmppError::kMismatchedEndTag},
        ErrorCase{"mismatched_end_tag", true, in_stream("<message><body>x</bodx></message>"),
                  XmppError::kMismatchedEndTag},
        ErrorCase{"mismatched_prefix", true, in_stream("<cl:message><body/></message>"), XmppError::kMismatchedEndTag},
        ErrorCase{"stream_end_inside_stanza", true, in_stream("<message><body>x</stream:stream>"),
                  XmppError::kMismatchedEndTag},
        ErrorCase{"stream_end_wrong_prefix", true, in_stream("</s:stream>"), XmppError::kMismatchedEndTag},
        ErrorCase{"comment_between_stanzas", true, in_stream("<!-- hi -->"), XmppError::kComment},
        ErrorCase{"comment_in_body", true, in_stream("<message><body>a<!--x-->b</body></message>"),
                  XmppError::kComment},
        ErrorCase{"comment_before_stream", true, "<!-- x -->" + kClientHead, XmppError::kComment},
        ErrorCase{"half_comment", true, in_stream("<!-x"), XmppError::kBadMarkup},
        ErrorCase{"pi_in_stanza", true, in_stream("<message><?php x?></message>"), XmppError::kProcessingInstruction},
        ErrorCase{"pi_other_target", true, in_stream("<?xml-stylesheet href='a'?>"), XmppError::kProcessingInstruction},
        ErrorCase{"pi_uppercase_xml", true, "<?XML version='1.0'?>", XmppError::kProcessingInstruction},
        ErrorCase{"xml_decl_in_stanza", true, in_stream("<message><?xml version='1.0'?></message>"),
                  XmppError::kProcessingInstruction},
        ErrorCase{"pi_without_target", true, in_stream("<? x?>"), XmppError::kBadMarkup},
        ErrorCase{"doctype", true, "<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY x 'y'>]>", XmppError::kDoctype},
        ErrorCase{"doctype_in_stream", true, in_stream("<!DOCTYPE x>"), XmppError::kDoctype},
        ErrorCase{"lt_in_attribute", true, in_stream("<message to='a<b'>"), XmppError::kLtInAttrValue},
        ErrorCase{"lt_in_skipped_attribute", true, in_stream("<presence id=\"a<b\"/>"), XmppError::kLtInAttrValue},
        ErrorCase{"unknown_entity", true, in_stream("<message><body>&nbsp;</body></message>"), XmppError::kBadEntity},
        ErrorCase{"empty_entity", true, in_stream("<message><body>&;</body></message>"), XmppError::kBadEntity},
        ErrorCase{"entity_with_space", true, in_stream("<message><body>& amp;</body></message>"),
                  XmppError::kBadEntity},
        ErrorCase{"unterminated_entity", true, in_stream("<message><body>AT&T rocks</body></message>"),
                  XmppError::kBadEntity},
        ErrorCase{"entity_in_skipped_text", true, in_stream("<presence><status>&bogus;</status></presence>"),
                  XmppError::kBadEntity},
        ErrorCase{"entity_at_stream_level", true, in_stream("&x;"), XmppError::kBadEntity},
        ErrorCase{"bad_entity_in_attribute", true, in_stream("<message to='a&foo;'>"), XmppError::kBadEntity},
        ErrorCase{"charref_no_digits", true, in_stream("<message><body>&#;</body></message>"), XmppError::kBadEntity},
        ErrorCase{"charref_hex_no_digits", true, in_stream("<message><body>&#x;</body></message>"),
                  XmppError::kBadEntity},
        ErrorCase{"charref_bad_digit", true, in_stream("<message><body>&#12a;</body></message>"),
                  XmppError::kBadEntity},
        ErrorCase{"charref_uppercase_x", true, in_stream("<message><body>&#X41;</body></message>"),
                  XmppError::kBadEntity},
        ErrorCase{"charref_zero", true, in_stream("<message><body>&#0;</body></message>"), XmppError::kBadCharRef},
        ErrorCase{"charref_control", true, in_stream("<message><body>&#1;</body></message>"), XmppError::kBadCharRef},
        ErrorCase{"charref_surrogate", true, in_stream("<message><body>&#xD800;</body></message>"),
                  XmppError::kBadCharRef},
        ErrorCase{"charref_fffe", true, in_stream("<message><body>&#xFFFE;</body></message>"), XmppError::kBadCharRef},
        ErrorCase{"charref_too_big", true, in_stream("<message><body>&#x110000;</body></message>"),
                  XmppError::kBadCharRef},
        ErrorCase{"charref_huge_decimal", true, in_stream("<message><body>&#999999999;</body></message>"),
                  XmppError::kBadCharRef},
        ErrorCase{"charref_max_hex", true, in_stream("<message><body>&#xFFFFFFFF;</body></message>"),
                  XmppError::kBadCharRef},
        ErrorCase{"charref_in_attribute", true, in_stream("<message to='&#0;'>"), XmppError::kBadCharRef},
        ErrorCase{"entity_too_long", true, in_stream("<message><body>&#x000000046;</body></message>"),
                  XmppError::kEntityTooLong},
        ErrorCase{"entity_name_too_long", true, in_stream("<message><body>&abcdefghijkl;</body></message>"),
                  XmppError::kEntityTooLong},
        ErrorCase{"lt_space", true, in_stream("< message>"), XmppError::kBadMarkup},
        ErrorCase{"lt_digit", true, in_stream("<1abc>"), XmppError::kBadMarkup},
        ErrorCase{"bang_other", true, in_stream("<!X"), XmppError::kBadMarkup},
        ErrorCase{"cdata_typo", true, in_stream("<message><body><![CDATX[x]]></body></message>"),
                  XmppError::kBadMarkup},
        ErrorCase{"bad_name_char", true, in_stream("<mess@ge>"), XmppError::kBadName},
        ErrorCase{"end_tag_digit", true, in_stream("</1a>"), XmppError::kBadName},
        ErrorCase{"end_tag_empty", true, in_stream("</>"), XmppError::kBadName},
        ErrorCase{"end_tag_bad_char", true, in_stream("<a></a/>"), XmppError::kBadName},
        ErrorCase{"end_tag_junk", true, in_stream("<a></a x>"), XmppError::kBadMarkup},
        ErrorCase{"attribute_without_value", true, in_stream("<message to>"), XmppError::kBadMarkup},
        ErrorCase{"attribute_empty_value", true, in_stream("<message to=>"), XmppError::kBadMarkup},
        ErrorCase{"attribute_unquoted", true, in_stream("<message to=a>"), XmppError::kBadMarkup},
        ErrorCase{"attribute_name_bad_char", true, in_stream("<message t@o='a'>"), XmppError::kBadMarkup},
        ErrorCase{"attributes_without_space", true, in_stream("<message to='a'type='chat'>"), XmppError::kBadMarkup},
        ErrorCase{"junk_in_tag", true, in_stream("<message 'x'>"), XmppError::kBadMarkup},
        ErrorCase{"slash_without_gt", true, in_stream("<presence/ >"), XmppError::kBadMarkup},
        ErrorCase{"duplicate_to", true, in_stream("<message to='a' to='b'>"), XmppError::kDuplicateAttr},
        ErrorCase{"duplicate_type", true, in_stream("<message type='chat' type='groupchat'>"),
                  XmppError::kDuplicateAttr},
        ErrorCase{"duplicate_from_server_side", false, kServerHead + "<message from='a' to='x' from='b'>",
                  XmppError::kDuplicateAttr},
        ErrorCase{"duplicate_stream_to", true, "<stream:stream to='a' to='b'>", XmppError::kDuplicateAttr},
        ErrorCase{"duplicate_mechanism", true, in_stream("<auth mechanism='PLAIN' mechanism='X'>"),
                  XmppError::kDuplicateAttr},
        ErrorCase{"data_after_stream_end", true, in_stream("</stream:stream> x"), XmppError::kAfterStreamEnd},
        ErrorCase{"new_stream_after_end", true, in_stream("</stream:stream>") + kClientHead,
                  XmppError::kAfterStreamEnd},
        ErrorCase{"element_name_too_long", true, in_stream("<" + std::string(65, 'n') + "/>"), XmppError::kNameTooLong},
        ErrorCase{"prefixed_name_too_long", true,
                  in_stream("<" + std::string(40, 'p') + ":" + std::string(24, 'n') + ">"), XmppError::kNameTooLong},
        ErrorCase{"attribute_name_too_long", true, in_stream("<message " + std::string(65, 'a') + "='x'>"),
                  XmppError::kNameTooLong},
        ErrorCase{"end_name_too_long", true, in_stream("<a></" + std::string(65, 'a') + ">"), XmppError::kNameTooLong},
        ErrorCase{"pi_target_too_long", true, "<?" + std::string(65, 'x') + "?>", XmppError::kNameTooLong},
        ErrorCase{"attribute_value_too_long", true, in_stream("<presence id='" + std::string(3073, 'v') + "'/>"),
                  XmppError::kAttrValueTooLong},
        ErrorCase{"attribute_value_too_long_by_entity", true,
                  in_stream("<message to='" + std::string(3068, 'v') + "&amp;'/>"), XmppError::kAttrValueTooLong},
        ErrorCase{"kept_attribute_value_too_long", true, in_stream("<message to='" + std::string(4000, 'v') + "'/>"),
                  XmppError::kAttrValueTooLong},
        ErrorCase{"too_deep", true, in_stream(nested(32)), XmppError::kTooDeep},
        ErrorCase{"too_deep_in_message", true, in_stream("<message><body>" + nested(30) + "</body></message>"),
                  XmppError::kTooDeep},
        ErrorCase{"declaration_too_long", true, "<?xml " + std::string(255, ' ') + "?>", XmppError::kDeclTooLong},
        ErrorCase{"declaration_unterminated", true, "<?xml version='1.0'" + std::string(300, ' '),
                  XmppError::kDeclTooLong}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(XmppLimits, ValuesAtTheLimitsAreAccepted) {
  const std::vector<std::string> ok = {
      in_stream("<" + std::string(64, 'n') + "/>"),
      in_stream("<" + std::string(39, 'p') + ":" + std::string(24, 'n') + "></" + std::string(39, 'p') + ":" +
                std::string(24, 'n') + ">"),
      in_stream("<presence " + std::string(64, 'a') + "='x'/>"),
      in_stream("<presence id='" + std::string(3072, 'v') + "'/>"),
      in_stream("<presence id='" + std::string(3067, 'v') + "&amp;'/>"),
      in_stream("<message><body>&#x00000046;</body></message>"),
      in_stream(nested(31)),
      "<?xml " + std::string(254, ' ') + "?>" + kClientHead,
  };
  for (const std::string& in : ok) {
    SCOPED_TRACE(in.substr(0, 200));
    Outcome o = decode_every_way(in, true);
    EXPECT_EQ(o.result, FeedResult::kOk) << xmpp_error_name(o.error);
  }
  // A kept attribute at the value limit: the channel keeps its first kXmppChannelCap bytes.
  Outcome o = decode(in_stream("<message to='" + std::string(3072, 'c') + "'/>"), true, {});
  ASSERT_EQ(o.messages.size(), 1u);
  EXPECT_EQ(o.messages[0], msg(kNormal, std::string(kXmppChannelCap, 'c'), {}, "", true));
}

TEST(XmppLimits, MessageAtMaximumDepth) {
  // stream(1) message(2) body(3) and 29 more: 32 open elements.
  Outcome o = decode_every_way(in_stream("<message><body>a" + nested(29) + "b</body></message>"), true);
  EXPECT_EQ(o.result, FeedResult::kOk) << xmpp_error_name(o.error);
  ASSERT_EQ(o.messages.size(), 1u);
  EXPECT_EQ(o.messages[0].bodies, std::vector<std::string>{"ab"});
}

TEST(XmppErrors, NamesAreStableAndDistinct) {
  std::vector<std::string> names;
  for (int e = 0; e <= static_cast<int>(XmppError::kCompression); ++e) {
    const char* n = xmpp_error_name(static_cast<XmppError>(e));
    EXPECT_STRNE(n, "unknown");
    for (const char* c = n; *c; ++c) EXPECT_TRUE((*c >= 'a' && *c <= 'z') || *c == '_') << n;
    names.push_back(n);
  }
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
  EXPECT_STREQ(xmpp_error_name(XmppError::kMismatchedEndTag), "mismatched_end_tag");
  EXPECT_STREQ(xmpp_error_name(XmppError::kStartTls), "starttls");
  EXPECT_STREQ(xmpp_error_name(static_cast<XmppError>(200)), "unknown");
  EXPECT_FALSE(xmpp_error_is_violation(XmppError::kNone));
  EXPECT_TRUE(xmpp_error_is_violation(XmppError::kComment));
}

TEST(XmppDecoder, StateIsSmallAndFixed) {
  RecordProperty("sizeof_XmppDecoder", static_cast<int>(sizeof(XmppDecoder)));
  std::printf("sizeof(XmppDecoder) = %zu\n", sizeof(XmppDecoder));
  EXPECT_LE(sizeof(XmppDecoder), 864u);
}

// ---- Stopping --------------------------------------------------------------------------------------

TEST(XmppStop, SinkReturningFalseStopsAtThatCallback) {
  for (bool client : {true, false}) {
    const std::string& in = client ? kAliceClient : kBobServer;
    Stream whole(client);
    ASSERT_EQ(whole.feed(in), FeedResult::kOk);
    const int total = whole.sink.calls;
    ASSERT_GE(total, 40);
    for (int n = 1; n <= total; ++n) {
      SCOPED_TRACE(n);
      Stream s(client);
      s.sink.stop_after = n;
      EXPECT_EQ(s.feed(in), FeedResult::kStopped);
      EXPECT_EQ(s.sink.calls, n);  // nothing is called after the refusal
    }
  }
}

// ---- The recorded capture (tests/data/xmpp) --------------------------------------------------------

// Just enough JSON for truth.json.
struct Json {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject } type = Type::kNull;
  std::string str;
  std::vector<Json> items;  // array elements, or object member values
  std::vector<std::string> keys;
  const Json* get(std::string_view key) const {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return &items[i];
    }
    return nullptr;
  }
  std::string text(std::string_view key) const {
    const Json* v = get(key);
    return v ? v->str : std::string();
  }
};

class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}
  bool read(Json* out) {
    bool ok = value(out);
    space();
    return ok && i_ == s_.size();
  }

 private:
  void space() {
    while (i_ < s_.size() && std::strchr(" \t\r\n", s_[i_]) != nullptr && s_[i_] != '\0') ++i_;
  }
  bool eat(char c) {
    space();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool value(Json* v) {
    space();
    if (i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '{') {
      ++i_;
      v->type = Json::Type::kObject;
      if (eat('}')) return true;
      do {
        std::string key;
        Json child;
        space();
        if (!string(&key) || !eat(':') || !value(&child)) return false;
        v->keys.push_back(std::move(key));
        v->items.push_back(std::move(child));
      } while (eat(','));
      return eat('}');
    }
    if (c == '[') {
      ++i_;
      v->type = Json::Type::kArray;
      if (eat(']')) return true;
      do {
        Json child;
        if (!value(&child)) return false;
        v->items.push_back(std::move(child));
      } while (eat(','));
      return eat(']');
    }
    if (c == '"') {
      v->type = Json::Type::kString;
      return string(&v->str);
    }
    for (std::string_view lit : {"true", "false", "null"}) {
      if (s_.substr(i_, lit.size()) == lit) {
        i_ += lit.size();
        v->type = lit == "null" ? Json::Type::kNull : Json::Type::kBool;
        v->str = lit;
        return true;
      }
    }
    size_t start = i_;
    while (i_ < s_.size() && std::strchr("+-.eE0123456789", s_[i_]) != nullptr && s_[i_] != '\0') ++i_;
    v->type = Json::Type::kNumber;
    v->str = s_.substr(start, i_ - start);
    return i_ > start;
  }
  static void utf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xc0 | cp >> 6);
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      *out += static_cast<char>(0xe0 | cp >> 12);
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      *out += static_cast<char>(0xf0 | cp >> 18);
      *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  bool hex4(uint32_t* cp) {
    if (i_ + 4 > s_.size()) return false;
    *cp = static_cast<uint32_t>(std::strtoul(std::string(s_.substr(i_, 4)).c_str(), nullptr, 16));
    i_ += 4;
    return true;
  }
  bool string(std::string* out) {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    ++i_;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return true;
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (i_ >= s_.size()) return false;
      char e = s_[i_++];
      switch (e) {
        case 'n': *out += '\n'; break;
        case 't': *out += '\t'; break;
        case 'r': *out += '\r'; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'u': {
          uint32_t cp;
          if (!hex4(&cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00 && s_.substr(i_, 2) == "\\u") {
            i_ += 2;
            uint32_t lo;
            if (!hex4(&lo)) return false;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          utf8(cp, out);
          break;
        }
        default: *out += e; break;
      }
    }
    return false;
  }
  std::string_view s_;
  size_t i_ = 0;
};

struct Segment {
  uint16_t client_port;
  bool c2s;
  uint32_t seq;
  std::string payload;
};

// The TCP segments of IPv4 captures (Ethernet, Linux cooked v1/v2, raw IP), in capture order.
bool read_tcp_segments(const std::string& file, uint16_t server_port, std::vector<Segment>* out, std::string* err) {
  std::ifstream f(file, std::ios::binary);
  if (!f) {
    *err = "cannot open " + file;
    return false;
  }
  std::string d((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto u8 = [&](size_t o) { return static_cast<uint8_t>(d[o]); };
  auto be16 = [&](size_t o) { return static_cast<uint16_t>(u8(o) << 8 | u8(o + 1)); };
  auto be32 = [&](size_t o) { return uint32_t{be16(o)} << 16 | be16(o + 2); };
  if (d.size() < 24) {
    *err = "short file";
    return false;
  }
  uint32_t magic_le = uint32_t{u8(0)} | uint32_t{u8(1)} << 8 | uint32_t{u8(2)} << 16 | uint32_t{u8(3)} << 24;
  bool le = magic_le == 0xa1b2c3d4 || magic_le == 0xa1b23c4d;
  if (!le && be32(0) != 0xa1b2c3d4 && be32(0) != 0xa1b23c4d) {
    *err = "not a pcap file";
    return false;
  }
  auto rd32 = [&](size_t o) {
    return le ? uint32_t{u8(o)} | uint32_t{u8(o + 1)} << 8 | uint32_t{u8(o + 2)} << 16 | uint32_t{u8(o + 3)} << 24
              : be32(o);
  };
  uint32_t link = rd32(20);
  size_t l2 = link == 1 ? 14 : link == 113 ? 16 : link == 276 ? 20 : link == 101 ? 0 : SIZE_MAX;
  if (l2 == SIZE_MAX) {
    *err = "link type " + std::to_string(link);
    return false;
  }
  size_t off = 24;
  while (off + 16 <= d.size()) {
    uint32_t caplen = rd32(off + 8);
    size_t pkt = off + 16;
    off = pkt + caplen;
    if (off > d.size()) break;
    if (caplen < l2 + 20) continue;
    size_t ip = pkt + l2;
    if ((u8(ip) >> 4) != 4 || u8(ip + 9) != 6) continue;
    size_t ihl = static_cast<size_t>(u8(ip) & 15) * 4;
    size_t total = be16(ip + 2);
    if (ip + total > off || total < ihl + 20) continue;
    size_t tcp = ip + ihl;
    size_t doff = static_cast<size_t>(u8(tcp + 12) >> 4) * 4;
    if (ihl + doff > total) continue;
    uint16_t sport = be16(tcp), dport = be16(tcp + 2);
    if (total == ihl + doff || (sport != server_port && dport != server_port)) continue;
    bool c2s = dport == server_port;
    out->push_back({c2s ? sport : dport, c2s, be32(tcp + 4), d.substr(tcp + doff, total - ihl - doff)});
  }
  return true;
}

std::string message_key(const std::string& dir, const std::string& account, const std::string& channel,
                        const std::string& kind, std::vector<std::string> bodies) {
  std::sort(bodies.begin(), bodies.end());
  std::string key = dir + " | " + account + " | " + channel + " | " + kind + " |";
  for (const std::string& b : bodies) key += " [" + printable(b) + "]";
  return key;
}

// The truth's entry as the decoder reports it: a "subject" is a groupchat whose one field is the
// subject; otherwise every body (or the one body) and the subject if the stanza has one.
std::string truth_key(const Json& e) {
  std::string kind = e.text("kind");
  std::vector<std::string> fields;
  if (kind == "subject") {
    kind = "groupchat";
    fields.push_back(e.text("subject"));
  } else {
    if (const Json* bodies = e.get("bodies")) {
      for (const Json& text : bodies->items) fields.push_back(text.str);
    } else {
      fields.push_back(e.text("body"));
    }
    if (const Json* subject = e.get("subject")) fields.push_back(subject->str);
  }
  return message_key(e.text("dir"), e.text("account"), e.text("channel"), kind, fields);
}

TEST(XmppCapture, ProsodyCaptureMatchesItsGroundTruth) {
  const std::string dir = std::string(IMF_SOURCE_ROOT) + "/tests/data/xmpp/";
  std::ifstream tf(dir + "truth.json");
  if (!tf) GTEST_SKIP() << "no " << dir << "truth.json";
  std::string text((std::istreambuf_iterator<char>(tf)), std::istreambuf_iterator<char>());
  Json truth;
  ASSERT_TRUE(JsonReader(text).read(&truth));
  std::vector<Segment> segs;
  std::string err;
  ASSERT_TRUE(read_tcp_segments(dir + "offline.pcap", 5222, &segs, &err)) << err;

  struct Conn {
    Session session{};
    std::unique_ptr<Stream> dir[2];
    bool started[2] = {false, false};
    uint32_t next[2] = {0, 0};
  };
  std::map<uint16_t, std::unique_ptr<Conn>> conns;
  std::vector<uint16_t> order;
  for (const Segment& seg : segs) {
    std::unique_ptr<Conn>& c = conns[seg.client_port];
    if (!c) {
      c = std::make_unique<Conn>();
      c->dir[0] = std::make_unique<Stream>(true, c->session);
      c->dir[1] = std::make_unique<Stream>(false, c->session);
      order.push_back(seg.client_port);
    }
    int d = seg.c2s ? 0 : 1;
    if (!c->started[d]) {
      c->started[d] = true;
      c->next[d] = seg.seq;
    }
    int32_t ahead = static_cast<int32_t>(seg.seq - c->next[d]);
    ASSERT_LE(ahead, 0) << "a gap in the capture, port " << seg.client_port;
    size_t skip = static_cast<size_t>(-ahead);
    if (skip >= seg.payload.size()) continue;  // a retransmission
    std::string_view fresh = std::string_view(seg.payload).substr(skip);
    c->next[d] += static_cast<uint32_t>(fresh.size());
    Stream& s = *c->dir[d];
    ASSERT_EQ(s.feed(fresh), FeedResult::kOk)
        << "port " << seg.client_port << (seg.c2s ? " c2s: " : " s2c: ") << xmpp_error_name(s.dec.error());
  }

  const Json* connections = truth.get("connections");
  ASSERT_NE(connections, nullptr);
  ASSERT_EQ(order.size(), connections->items.size());
  std::vector<std::string> got;
  for (size_t i = 0; i < order.size(); ++i) {
    Conn& c = *conns[order[i]];
    EXPECT_EQ(std::string(c.session.account, c.session.account_len), connections->items[i].text("account"));
    EXPECT_FALSE(c.session.account_truncated);
    for (int d = 0; d < 2; ++d) {
      EXPECT_TRUE(c.dir[d]->sink.violations.empty());
      for (const MessageRec& m : c.dir[d]->sink.messages) {
        EXPECT_TRUE(m.ended);
        got.push_back(message_key(d == 0 ? "c2s" : "s2c", m.account, m.channel, message_kind_name(m.kind), m.bodies));
      }
    }
  }
  // The capture is unfiltered: it holds what a filter must deliver and what it must withhold.
  std::vector<std::string> want;
  for (const char* part : {"deliver", "withhold"}) {
    const Json* list = truth.get(part);
    ASSERT_NE(list, nullptr);
    for (const Json& e : list->items) want.push_back(truth_key(e));
  }
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  EXPECT_GE(got.size(), 50u);
}

// ---- Fuzz ------------------------------------------------------------------------------------------

std::string pick(std::mt19937& rng, const std::vector<std::string>& from) { return from[rng() % from.size()]; }

std::string random_text(std::mt19937& rng) {
  static const std::vector<std::string> kPieces = {
      "free",     " ",  "money", "&amp;", "&lt;",   "&#x46;", "&#233;",       "<![CDATA[a]]b]]>", "\r\n",
      "\xc3\xa9", "]]", "x",     ">",     "&quot;", "\r",     "<![CDATA[]]>", "&#128512;",        "\t"};
  std::string s;
  for (int i = static_cast<int>(rng() % 8); i > 0; --i) s += pick(rng, kPieces);
  return s;
}

std::string random_message(std::mt19937& rng, bool client, int depth) {
  static const std::vector<std::string> kTypes = {
      "", " type='chat'", " type='groupchat'", " type='headline'", " type='normal'", " type='error'", " type='x'"};
  static const std::vector<std::string> kJids = {"bob@imf.test", "room@muc.imf.test/nick", "a&amp;b@x/r",
                                                 "lobby@conference.imf.test", ""};
  static const std::vector<std::string> kPrefix = {"", "", "", "cl:", "jabber:client:"};
  std::string pre = pick(rng, kPrefix);
  std::string m = "<" + pre + "message";
  std::string attrs[3] = {pick(rng, kTypes), " to='" + pick(rng, kJids) + "'",
                          client ? std::string(" id='x'") : " from='" + pick(rng, kJids) + "'"};
  std::shuffle(std::begin(attrs), std::end(attrs), rng);
  for (const std::string& a : attrs) m += a;
  if (rng() % 8 == 0) return m + "/>";
  m += ">";
  for (int i = static_cast<int>(rng() % 5); i > 0; --i) {
    switch (rng() % 7) {
      case 0:
      case 1:
        m.append("<").append(pre).append("body").append(rng() % 2 ? " xml:lang='de'" : "").append(">");
        m.append(random_text(rng)).append("</").append(pre).append("body>");
        break;
      case 2: m += "<subject>" + random_text(rng) + "</subject>"; break;
      case 3:
        m += "<html xmlns='http://jabber.org/protocol/xhtml-im'><body><p>" + random_text(rng) +
             "<br/></p></body></html>";
        break;
      case 4:
        m += "<thread>" + random_text(rng) + "</thread><active xmlns='http://jabber.org/protocol/chatstates'/>";
        break;
      case 5:
        if (depth < 2)
          m += "<forwarded xmlns='urn:xmpp:forward:0'>" + random_message(rng, client, depth + 1) + "</forwarded>";
        break;
      default: m += random_text(rng); break;
    }
  }
  return m + "</" + pre + "message>";
}

std::string random_stanza(std::mt19937& rng, bool client) {
  switch (rng() % 11) {
    case 0:
    case 1:
    case 2:
    case 3: return random_message(rng, client, 0);
    case 4:
      return "<presence to='room@muc/nick'><x xmlns='http://jabber.org/protocol/muc'/><status>" + random_text(rng) +
             "</status></presence>";
    case 5:
      return client ? "<iq type='set' id='b'><bind><resource>r</resource></bind></iq>"
                    : bind_result(
                          pick(rng, {"bob@imf.test/phone", "x@y", "long" + std::string(rng() % 120, 'l') + "@z/r"}));
    case 6: {
      std::string user = pick(rng, {"alice", "bob", "u@d", std::string(rng() % 120, 'u')});
      return rng() % 2 ? plain_auth("\0"s + user + "\0secret"s) : scram_auth("n,,n=" + user + ",r=nonce");
    }
    case 7: return pick(rng, {" ", "\n", "\r\n\t"});
    case 8: return pick(rng, {"<?xml version='1.0'?>", ""}) + (client ? kClientHead : kServerHead);
    case 9: return pick(rng, {"<starttls/>", "<proceed/>", "<success/>", "<r xmlns='urn:xmpp:sm:3'/>"});
    default: {
      std::string junk(rng() % 24, ' ');
      for (char& c : junk)
        c = pick(rng, {"<", ">", "&", ";", "/", "'", "\"", "]", "!", "?", "-", "=", "a", "#", ":"})[0];
      return junk;
    }
  }
}

TEST(XmppFuzz, RandomAndMutatedStreamsDecodeTheSameHoweverSplit) {
  std::mt19937 rng(0x5eed1234);
  int errors = 0, messages = 0, accounts = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    bool client = rng() % 3 != 0;
    std::string in = rng() % 8 ? (client ? kClientHead : kServerHead) : "";
    for (int i = 1 + static_cast<int>(rng() % 6); i > 0; --i) in += random_stanza(rng, client);
    if (rng() % 4 == 0) in += "</stream:stream>";
    for (int i = static_cast<int>(rng() % 4); i > 0 && !in.empty(); --i) {
      size_t at = rng() % in.size();
      switch (rng() % 5) {
        case 0: in[at] = static_cast<char>(rng()); break;
        case 1: in[at] = static_cast<char>(in[at] ^ (1u << (rng() % 8))); break;
        case 2: in.resize(at); break;
        case 3: in.insert(at, in.substr(at, rng() % 16)); break;
        default: in.erase(at, rng() % 8); break;
      }
    }
    SCOPED_TRACE(::testing::Message() << "iteration " << iter << ": " << printable(in));
    Outcome whole = decode(in, client, {});
    std::vector<size_t> cuts;
    for (size_t at = 1 + rng() % 23; at < in.size(); at += 1 + rng() % 23) cuts.push_back(at);
    EXPECT_EQ(decode(in, client, cuts), whole);
    if (whole.result == FeedResult::kError) {
      ++errors;
      EXPECT_NE(whole.error, XmppError::kNone);
    } else {
      EXPECT_EQ(whole.error, XmppError::kNone);
    }
    for (const MessageRec& m : whole.messages) EXPECT_LE(m.channel.size(), kXmppChannelCap);
    for (const AccountRec& a : whole.accounts) EXPECT_LE(a.account.size(), Session::kAccountCap);
    messages += static_cast<int>(whole.messages.size());
    accounts += static_cast<int>(whole.accounts.size());
    if (HasFailure()) break;
  }
  std::printf("fuzz: %d errors, %d messages, %d accounts\n", errors, messages, accounts);
  // The corpus must reach the error paths and the happy ones.
  EXPECT_GT(errors, 600);
  EXPECT_GT(messages, 1500);
  EXPECT_GT(accounts, 300);
}

}  // namespace
}  // namespace imf::dp::proto
