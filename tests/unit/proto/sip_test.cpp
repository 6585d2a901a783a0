#include "proto/sip.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace imf::dp::proto {
namespace {

// ---- Recording sink ---------------------------------------------------------------------------

struct MessageRec {
  std::string account;
  bool truncated = false;
  std::string channel;
  std::string body;
  int body_ends = 0;
  bool ended = false;
  bool operator==(const MessageRec&) const = default;
};

std::ostream& operator<<(std::ostream& os, const MessageRec& m) {
  return os << "{account='" << m.account << "' trunc=" << m.truncated << " channel='" << m.channel << "' body='"
            << m.body << "' body_ends=" << m.body_ends << " end=" << m.ended << "}";
}

// A complete message as the sink should see it.
MessageRec msg(std::string account, std::string channel, std::string body, bool truncated = false) {
  return MessageRec{std::move(account), truncated, std::move(channel), std::move(body), 1, true};
}

// Records what the decoder reports and checks the call order decoder.h promises: on_account
// before every SIP message and never inside one; then begin, channel*, channel_end, body*,
// body_end, message_end. With stop_after = N, the N-th callback returns false.
struct RecordingSink {
  enum class At { kBetween, kChannel, kBody, kBodyEnded };
  std::vector<MessageRec> messages;
  std::vector<std::string> violations;
  std::string account;
  bool account_truncated = false;
  bool account_fresh = false;  // on_account came since the last message began
  At at = At::kBetween;
  int calls = 0;
  int stop_after = -1;

  bool next() { return ++calls != stop_after; }
  void check(bool ok, const char* what) {
    if (!ok) violations.push_back(what);
  }
  MessageRec* current() { return messages.empty() ? nullptr : &messages.back(); }

  bool on_account(const Session& s) {
    check(at == At::kBetween, "account inside a message");
    check(s.has_username, "SIP account without has_username");
    check(s.account_len <= Session::kAccountCap, "account_len > cap");
    account.assign(s.account, std::min<uint32_t>(s.account_len, Session::kAccountCap));
    account_truncated = s.account_truncated;
    account_fresh = true;
    return next();
  }
  bool on_message_begin(MessageKind k) {
    check(at == At::kBetween, "message_begin inside a message");
    check(k == MessageKind::kSipMessage, "kind other than kSipMessage");
    check(account_fresh, "message_begin without on_account before it");
    account_fresh = false;
    messages.push_back({account, account_truncated, "", "", 0, false});
    at = At::kChannel;
    return next();
  }
  bool on_channel(const uint8_t* p, uint32_t n) {
    check(at == At::kChannel, "channel outside the channel");
    check(n > 0, "empty channel piece");
    if (current()) current()->channel.append(reinterpret_cast<const char*>(p), n);
    return next();
  }
  bool on_channel_alias(uint16_t) {
    check(false, "channel alias from SIP");
    return next();
  }
  bool on_channel_end() {
    check(at == At::kChannel, "stray channel_end");
    at = At::kBody;
    return next();
  }
  bool on_body(const uint8_t* p, uint32_t n) {
    check(at == At::kBody, "body outside the body");
    check(n > 0, "empty body piece");
    if (current()) current()->body.append(reinterpret_cast<const char*>(p), n);
    return next();
  }
  bool on_body_end() {
    check(at == At::kBody, "stray body_end");
    if (current()) ++current()->body_ends;
    at = At::kBodyEnded;
    return next();
  }
  bool on_message_end() {
    check(at == At::kBodyEnded, "message_end before body_end");
    if (current()) current()->ended = true;
    at = At::kBetween;
    return next();
  }
};

// The same, also told of skipped messages through the optional hook.
struct CountingSink : RecordingSink {
  int skipped_requests = 0;
  int skipped_responses = 0;
  bool on_sip_skipped(SipSkipped what) {
    check(at == At::kBetween, "skipped inside a message");
    ++(what == SipSkipped::kRequest ? skipped_requests : skipped_responses);
    return next();
  }
};

// One direction of one connection (or one datagram socket): decoder, session and sink.
template <typename SinkT = CountingSink>
struct Stream {
  SipDecoder dec;
  Session session;
  SinkT sink;
  bool from_client = true;

  Stream() = default;
  explicit Stream(const SipLimits& limits) : dec(limits) {}

  // Feeds s[off, off + n) from a heap copy of exactly those bytes, so ASan sees any read past them.
  FeedResult feed(std::string_view s, size_t off, size_t n) {
    std::vector<uint8_t> copy(s.begin() + static_cast<ptrdiff_t>(off), s.begin() + static_cast<ptrdiff_t>(off + n));
    return dec.feed(copy.data(), static_cast<uint32_t>(n), from_client, session, sink);
  }
  FeedResult feed(std::string_view s) { return feed(s, 0, s.size()); }
  // Feeds in chunks of `chunk` bytes; stops at the first result other than kOk.
  FeedResult feed_chunked(std::string_view s, size_t chunk) {
    for (size_t off = 0; off < s.size(); off += chunk) {
      FeedResult r = feed(s, off, std::min(chunk, s.size() - off));
      if (r != FeedResult::kOk) return r;
    }
    return FeedResult::kOk;
  }
  FeedResult feed_split(std::string_view s, size_t cut) {
    FeedResult r = feed(s, 0, cut);
    return r != FeedResult::kOk ? r : feed(s, cut, s.size() - cut);
  }
  FeedResult datagram(std::string_view s) {
    std::vector<uint8_t> copy(s.begin(), s.end());
    return dec.feed_datagram(copy.data(), static_cast<uint32_t>(s.size()), from_client, session, sink);
  }
  std::string account() const { return std::string(session.account, session.account_len); }
};

// "\n" -> "\r\n", so messages read like the RFCs print them.
std::string crlf(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

// A message: `head` (start line and headers, LF line ends, "{len}" standing for the body's
// size) in CRLF form, the empty line, and the body as given.
std::string sip(std::string_view head, std::string_view body) {
  std::string h = crlf(head);
  size_t at = h.find("{len}");
  if (at != std::string::npos) h.replace(at, 5, std::to_string(body.size()));
  return h + "\r\n" + std::string(body);
}

// ---- Real-looking MESSAGE requests ------------------------------------------------------------

struct MessageCase {
  const char* name;
  std::string wire;
  MessageRec expected;
};

void PrintTo(const MessageCase& c, std::ostream* os) { *os << c.name; }

const std::string kCpimBody = crlf(
    "From: <sip:alice@example.org>\n"
    "To: <sip:bob@example.org>\n"
    "DateTime: 2021-03-01T12:00:00Z\n"
    "NS: imdn <urn:ietf:params:imdn>\n"
    "imdn.Message-ID: 8u1pNsB\n"
    "imdn.Disposition-Notification: positive-delivery, display\n"
    "\n"
    "Content-Type: text/plain;charset=UTF-8\n"
    "Content-Length: 13\n"
    "\n"
    "Hello, Bob!\n");

std::vector<MessageCase> message_cases() {
  std::vector<MessageCase> v;
  // RFC 3428 section 4.
  v.push_back({"rfc3428_example",
               sip("MESSAGE sip:user2@domain.com SIP/2.0\n"
                   "Via: SIP/2.0/TCP user1pc.domain.com;branch=z9hG4bK776sgdkse\n"
                   "Max-Forwards: 70\n"
                   "From: sip:user1@domain.com;tag=49583\n"
                   "To: sip:user2@domain.com\n"
                   "Call-ID: asd88asd77a@1.2.3.4\n"
                   "CSeq: 1 MESSAGE\n"
                   "Content-Type: text/plain\n"
                   "Content-Length: {len}\n",
                   "Watson, come here."),
               msg("user1@domain.com", "user2@domain.com", "Watson, come here.")});
  // What sipp's uac MESSAGE scenario sends: display names, tags, ports.
  v.push_back({"sipp_uac",
               sip("MESSAGE sip:service@192.168.1.20:5060 SIP/2.0\n"
                   "Via: SIP/2.0/TCP 192.168.1.10:5061;branch=z9hG4bK-5140-1-0\n"
                   "From: sipp <sip:sipp@192.168.1.10:5061>;tag=5140SIPpTag001\n"
                   "To: sut <sip:service@192.168.1.20:5060>\n"
                   "Call-ID: 1-5140@192.168.1.10\n"
                   "CSeq: 1 MESSAGE\n"
                   "Contact: sip:sipp@192.168.1.10:5061\n"
                   "Max-Forwards: 70\n"
                   "Subject: Performance Test\n"
                   "Content-Type: text/plain\n"
                   "Content-Length: {len}\n",
                   "Hello from sipp"),
               msg("sipp@192.168.1.10", "service@192.168.1.20", "Hello from sipp")});
  // Linphone-style CPIM with IMDN headers: only the inner body is streamed.
  v.push_back({"linphone_cpim",
               sip("MESSAGE sip:bob@example.org SIP/2.0\n"
                   "Via: SIP/2.0/TLS 10.0.0.5:5061;branch=z9hG4bK.Qm3;rport\n"
                   "From: \"Alice Liddell\" <sip:alice@Example.ORG>;tag=Xy7~Z\n"
                   "To: <sip:bob@example.org>\n"
                   "CSeq: 20 MESSAGE\n"
                   "Call-ID: 1A2b3C-x\n"
                   "Max-Forwards: 70\n"
                   "Supported: replaces, outbound, gruu\n"
                   "Date: Mon, 01 Mar 2021 12:00:00 GMT\n"
                   "Content-Type: message/cpim\n"
                   "Content-Length: {len}\n"
                   "User-Agent: Linphone/4.4.0 (belle-sip/4.4.0)\n",
                   kCpimBody),
               msg("alice@example.org", "bob@example.org", "Hello, Bob!\r\n")});
  v.push_back({"cpim_lf_lines_and_type_params",
               sip("MESSAGE sip:bob@example.org SIP/2.0\n"
                   "From: <sip:alice@example.org>;tag=1\n"
                   "To: <sip:bob@example.org>\n"
                   "Content-Type: Message / CPIM ; charset=utf-8\n"
                   "Content-Length: {len}\n",
                   "From: <im:alice@example.org>\n\nContent-Type: text/plain\n\ninner text"),
               msg("alice@example.org", "bob@example.org", "inner text")});
  v.push_back({"cpim_empty_sections",
               sip("MESSAGE sip:bob@example.org SIP/2.0\n"
                   "From: <sip:alice@example.org>\n"
                   "To: <sip:bob@example.org>\n"
                   "Content-Type: message/cpim\n"
                   "Content-Length: {len}\n",
                   "\r\n\r\nonly the inner body"),
               msg("alice@example.org", "bob@example.org", "only the inner body")});
  v.push_back({"compact_forms",
               sip("MESSAGE sip:bob@biloxi.example.com SIP/2.0\n"
                   "v: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bKnashds8\n"
                   "f: Alice <sip:alice@atlanta.example.com>;tag=1928301774\n"
                   "t: Bob <sip:bob@biloxi.example.com>\n"
                   "i: a84b4c76e66710@pc33.atlanta.example.com\n"
                   "CSeq: 314159 MESSAGE\n"
                   "c: text/plain\n"
                   "l: {len}\n",
                   "compact"),
               msg("alice@atlanta.example.com", "bob@biloxi.example.com", "compact")});
  v.push_back({"mixed_case_names",
               sip("MESSAGE sip:bob@biloxi.example.com SIP/2.0\n"
                   "fROM: <sip:alice@atlanta.example.com>;tag=1\n"
                   "tO: <sip:bob@biloxi.example.com>\n"
                   "CONTENT-type: message/cpim\n"
                   "content-LENGTH: {len}\n",
                   "A: b\n\nContent-type: text/plain\n\nmixed"),
               msg("alice@atlanta.example.com", "bob@biloxi.example.com", "mixed")});
  v.push_back({"folded_headers",
               sip("MESSAGE sip:bob@biloxi.example.com SIP/2.0\n"
                   "Via: SIP/2.0/TCP pc33.atlanta.example.com\n"
                   " ;branch=z9hG4bKnashds8\n"
                   "From: \"Alice\"\n"
                   "\t<sip:alice@atlanta.example.com>\n"
                   " ;tag=1928301774\n"
                   "To:\n"
                   "   <sip:bob@biloxi.example.com>\n"
                   "Content-Type: text/plain\n"
                   "Content-Length:\n"
                   "    {len}\n",
                   "folded"),
               msg("alice@atlanta.example.com", "bob@biloxi.example.com", "folded")});
  v.push_back({"lws_around_colon",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "From  :\t<sip:alice@a.example>\n"
                   "To\t: sip:bob@b.example\n"
                   "Content-Length :{len}\n",
                   "lws"),
               msg("alice@a.example", "bob@b.example", "lws")});
  v.push_back({"lone_lf_line_ends",
               std::string("MESSAGE sip:bob@b.example SIP/2.0\n"
                           "From: <sip:alice@a.example>\n"
                           "To: <sip:bob@b.example>\r\n"
                           "Content-Length: 2\n"
                           "\n"
                           "lf"),
               msg("alice@a.example", "bob@b.example", "lf")});
  v.push_back({"pai_wins_after_from",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "From: <sip:anonymous@anonymous.invalid>;tag=1\n"
                   "To: <sip:bob@b.example>\n"
                   "P-Asserted-Identity: \"Cullen Jennings\" <sip:fluffy@cisco.com>\n"
                   "Content-Length: {len}\n",
                   "x"),
               msg("fluffy@cisco.com", "bob@b.example", "x")});
  v.push_back({"pai_wins_before_from",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "P-Asserted-Identity: <sip:fluffy@cisco.com>\n"
                   "From: <sip:anonymous@anonymous.invalid>;tag=1\n"
                   "To: <sip:bob@b.example>\n"
                   "Content-Length: {len}\n",
                   "x"),
               msg("fluffy@cisco.com", "bob@b.example", "x")});
  v.push_back({"pai_sip_wins_over_tel_in_list",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "From: <sip:x@y.example>\n"
                   "P-Asserted-Identity: <tel:+14085264000>, \"C, J\" <sip:fluffy@cisco.com>\n"
                   "To: <sip:bob@b.example>\n"
                   "Content-Length: {len}\n",
                   "x"),
               msg("fluffy@cisco.com", "bob@b.example", "x")});
  v.push_back({"pai_sip_wins_over_tel_in_second_header",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "P-Asserted-Identity: <sip:fluffy@cisco.com>\n"
                   "From: <sip:x@y.example>\n"
                   "P-Asserted-Identity: tel:+14085264000\n"
                   "To: <sip:bob@b.example>\n"
                   "Content-Length: {len}\n",
                   "x"),
               msg("fluffy@cisco.com", "bob@b.example", "x")});
  v.push_back({"pai_tel_only",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "From: <sip:x@y.example>\n"
                   "P-Asserted-Identity: tel:+14085264000;cpc=ordinary\n"
                   "To: <sip:bob@b.example>\n"
                   "Content-Length: {len}\n",
                   "x"),
               msg("+14085264000", "bob@b.example", "x")});
  v.push_back({"empty_pai_keeps_from",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "From: <sip:x@y.example>\n"
                   "P-Asserted-Identity: <>\n"
                   "To: <sip:bob@b.example>\n"
                   "Content-Length: {len}\n",
                   "x"),
               msg("x@y.example", "bob@b.example", "x")});
  v.push_back({"quoted_display_names_with_specials",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "From: \"Smith, \\\"Al\\\" <al@evil>; x\" <sip:al@Example.COM>;tag=9\n"
                   "To: \"<sip:eve@evil>\" <sip:bob@b.example>;x=\"a,b\"\n"
                   "Content-Length: {len}\n",
                   "x"),
               msg("al@example.com", "bob@b.example", "x")});
  v.push_back({"bare_addr_specs_with_header_params",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "From: sip:carol@Chicago.com;tag=887s\n"
                   "To: sip:bob@biloxi.com ;foo=bar\n"
                   "Content-Length: {len}\n",
                   "x"),
               msg("carol@chicago.com", "bob@biloxi.com", "x")});
  v.push_back({"tel_from",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "From: <tel:+1-201-555-0123;phone-context=example.com>;tag=3\n"
                   "To: <sip:bob@b.example>\n"
                   "Content-Length: {len}\n",
                   "x"),
               msg("+1-201-555-0123", "bob@b.example", "x")});
  v.push_back({"escapes_password_port_params_headers",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "From: <sip:%61lice:secret@Atlanta.Example.COM:5061;transport=tls?subject=x>\n"
                   "To: <sip:+358-555-1234567;postd=pp22@foo.com;user=phone>\n"
                   "Content-Length: {len}\n",
                   "x"),
               msg("alice@atlanta.example.com", "+358-555-1234567;postd=pp22@foo.com", "x")});
  v.push_back({"sips_ipv6",
               sip("MESSAGE sips:bob@b.example SIP/2.0\n"
                   "From: <sips:alice@[2001:DB8::10]:5061>\n"
                   "To: <sips:bob@[2001:db8::20]>\n"
                   "Content-Length: {len}\n",
                   "x"),
               msg("alice@[2001:db8::10]", "bob@[2001:db8::20]", "x")});
  v.push_back({"no_to_uses_request_uri",
               sip("MESSAGE sip:bob@Biloxi.example.com;transport=tcp SIP/2.0\n"
                   "From: <sip:alice@a.example>\n"
                   "Content-Length: {len}\n",
                   "x"),
               msg("alice@a.example", "bob@biloxi.example.com", "x")});
  v.push_back({"empty_to_uses_request_uri",
               sip("MESSAGE sip:bob@biloxi.example.com SIP/2.0\n"
                   "From: <sip:alice@a.example>\n"
                   "To: <>\n"
                   "Content-Length: {len}\n",
                   "x"),
               msg("alice@a.example", "bob@biloxi.example.com", "x")});
  v.push_back({"empty_body",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "From: <sip:alice@a.example>\n"
                   "To: <sip:bob@b.example>\n"
                   "Content-Length: 0\n",
                   ""),
               msg("alice@a.example", "bob@b.example", "")});
  const std::string multipart = crlf(
      "--b1\n"
      "Content-Type: text/plain\n"
      "\n"
      "part one\n"
      "--b1\n"
      "Content-Type: text/html\n"
      "\n"
      "<p>part two</p>\n"
      "--b1--\n");
  v.push_back({"multipart_streamed_whole",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "From: <sip:alice@a.example>\n"
                   "To: <sip:bob@b.example>\n"
                   "Content-Type: multipart/mixed;boundary=b1\n"
                   "Content-Length: {len}\n",
                   multipart),
               msg("alice@a.example", "bob@b.example", multipart)});
  const std::string binary("\0\r\n\xff\r\rMESSAGE x\n", 16);
  v.push_back({"binary_body",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "From: <sip:alice@a.example>\n"
                   "To: <sip:bob@b.example>\n"
                   "Content-Type: application/octet-stream\n"
                   "Content-Length: {len}\n",
                   binary),
               msg("alice@a.example", "bob@b.example", binary)});
  const std::string long_user(150, 'u');
  const std::string long_to(300, 'T');
  v.push_back({"long_account_truncated_long_channel_first_256",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "From: <sip:" +
                       long_user +
                       "@a.example>\n"
                       "To: <sip:" +
                       long_to +
                       "@b.example>\n"
                       "Content-Length: {len}\n",
                   "x"),
               msg(long_user.substr(0, Session::kAccountCap), long_to.substr(0, 256), "x", true)});
  const std::string at_cap = std::string(Session::kAccountCap - 10, 'a') + "@a.example";
  v.push_back({"account_exactly_at_cap",
               sip("MESSAGE sip:bob@b.example SIP/2.0\n"
                   "From: <sip:" +
                       at_cap + ">;tag=" + std::string(300, 't') +
                       "\n"
                       "To: <sip:bob@b.example>\n"
                       "Content-Length: {len}\n",
                   "x"),
               msg(at_cap, "bob@b.example", "x")});
  return v;
}

class SipMessageTest : public ::testing::TestWithParam<MessageCase> {};

TEST_P(SipMessageTest, WholeAndSplitAnywhereOnTcp) {
  const MessageCase& c = GetParam();
  auto check = [&](Stream<>& s, FeedResult r) {
    ASSERT_EQ(r, FeedResult::kOk) << sip_error_name(s.dec.error());
    ASSERT_EQ(s.sink.messages.size(), 1u);
    EXPECT_EQ(s.sink.messages[0], c.expected);
    EXPECT_TRUE(s.sink.violations.empty()) << s.sink.violations[0];
    EXPECT_TRUE(s.dec.at_message_boundary());
    EXPECT_EQ(s.account(), c.expected.account);
    EXPECT_EQ(s.session.account_truncated, c.expected.truncated);
    EXPECT_TRUE(s.session.has_username);
    EXPECT_EQ(s.sink.skipped_requests + s.sink.skipped_responses, 0);
  };
  {
    Stream<> s;
    check(s, s.feed(c.wire));
  }
  for (size_t cut = 0; cut <= c.wire.size(); ++cut) {
    SCOPED_TRACE(::testing::Message() << "cut at " << cut);
    Stream<> s;
    check(s, s.feed_split(c.wire, cut));
    if (HasFailure()) return;
  }
  for (size_t chunk = 1; chunk < c.wire.size(); ++chunk) {
    SCOPED_TRACE(::testing::Message() << "chunks of " << chunk);
    Stream<> s;
    check(s, s.feed_chunked(c.wire, chunk));
    if (HasFailure()) return;
  }
}

TEST_P(SipMessageTest, OneDatagram) {
  const MessageCase& c = GetParam();
  for (bool from_client : {true, false}) {
    Stream<> s;
    s.from_client = from_client;
    ASSERT_EQ(s.datagram(c.wire), FeedResult::kOk) << sip_error_name(s.dec.error());
    ASSERT_EQ(s.sink.messages.size(), 1u);
    EXPECT_EQ(s.sink.messages[0], c.expected);
    EXPECT_TRUE(s.sink.violations.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Sip, SipMessageTest, ::testing::ValuesIn(message_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- Several messages on one stream -----------------------------------------------------------

const std::string kSdp = crlf(
    "v=0\n"
    "o=alice 2890844526 2890844526 IN IP4 atlanta.example.com\n"
    "s=-\n"
    "c=IN IP4 192.0.2.101\n"
    "t=0 0\n"
    "m=audio 49172 RTP/AVP 0\n"
    "a=note:MESSAGE sip:fake@evil SIP/2.0\n");

std::string conversation() {
  std::string s;
  s +=
      sip("REGISTER sip:registrar.biloxi.example.com SIP/2.0\n"
          "Via: SIP/2.0/TCP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7\n"
          "Max-Forwards: 70\n"
          "To: Bob <sip:bob@biloxi.example.com>\n"
          "From: Bob <sip:bob@biloxi.example.com>;tag=456248\n"
          "Call-ID: 843817637684230@998sdasdh09\n"
          "CSeq: 1826 REGISTER\n"
          "Contact: <sip:bob@192.0.2.4>\n"
          "Expires: 7200\n"
          "Content-Length: 0\n",
          "");
  s +=
      sip("SIP/2.0 401 Unauthorized\n"
          "Via: SIP/2.0/TCP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7\n"
          "WWW-Authenticate: Digest realm=\"biloxi.example.com\", qop=\"auth\",\n"
          " nonce=\"ea9c8e88df84f1cec4341ae6cbe5a359\", opaque=\"\", stale=FALSE, algorithm=MD5\n"
          "To: Bob <sip:bob@biloxi.example.com>;tag=2493k59kd\n"
          "From: Bob <sip:bob@biloxi.example.com>;tag=456248\n"
          "Content-Length: 0\n",
          "");
  s += "\r\n\r\n";  // RFC 5626 keep-alive
  s +=
      sip("OPTIONS sip:carol@chicago.example.com SIP/2.0\n"
          "Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\n"
          "To: <sip:carol@chicago.example.com>\n"
          "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\n"
          "CSeq: 63104 OPTIONS\n"
          "Accept: application/sdp\n"
          "Content-Length: 0\n",
          "");
  s +=
      sip("MESSAGE sip:bob@biloxi.example.com SIP/2.0\n"
          "Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bK1\n"
          "From: Alice <sip:alice@atlanta.example.com>;tag=1\n"
          "To: Bob <sip:bob@biloxi.example.com>\n"
          "CSeq: 1 MESSAGE\n"
          "Content-Type: text/plain\n"
          "Content-Length: {len}\n",
          "first message");
  s +=
      sip("SIP/2.0 200 OK\n"
          "Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bK1\n"
          "From: Alice <sip:alice@atlanta.example.com>;tag=1\n"
          "To: Bob <sip:bob@biloxi.example.com>;tag=2\n"
          "Content-Length: 0\n",
          "");
  s +=
      sip("INVITE sip:bob@biloxi.example.com SIP/2.0\n"
          "Via: SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bK2\n"
          "From: Alice <sip:alice@atlanta.example.com>;tag=2\n"
          "To: Bob <sip:bob@biloxi.example.com>\n"
          "CSeq: 2 INVITE\n"
          "Content-Type: application/sdp\n"
          "Content-Length: {len}\n",
          kSdp);
  s +=
      sip("MESSAGE sip:bob@example.org SIP/2.0\n"
          "f: \"Alice\" <sip:alice@example.org>;tag=3\n"
          "t: <sip:bob@example.org>\n"
          "c: message/cpim\n"
          "l: {len}\n",
          kCpimBody);
  s +=
      sip("SIP/2.0 202 Accepted\n"
          "Content-Type: text/plain\n"
          "Content-Length: {len}\n",
          "MESSAGE sip:x SIP/2.0");
  s += "\r\n";
  s +=
      sip("BYE sip:alice@pc33.atlanta.example.com SIP/2.0\n"
          "Via: SIP/2.0/TCP 192.0.2.4;branch=z9hG4bKnashds10\n"
          "From: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\n"
          "To: Alice <sip:alice@atlanta.example.com>;tag=1928301774\n"
          "Content-Length: 0\n",
          "");
  s +=
      sip("MESSAGE sip:carol@chicago.example.com SIP/2.0\n"
          "From: <sip:bob@biloxi.example.com>;tag=4\n"
          "To: <sip:carol@chicago.example.com>\n"
          "P-Asserted-Identity: <sip:robert@biloxi.example.com>\n"
          "Content-Length: {len}\n",
          "third");
  return s;
}

const std::vector<MessageRec> kConversationMessages = {
    msg("alice@atlanta.example.com", "bob@biloxi.example.com", "first message"),
    msg("alice@example.org", "bob@example.org", "Hello, Bob!\r\n"),
    msg("robert@biloxi.example.com", "carol@chicago.example.com", "third"),
};

TEST(SipStream, MessagesAmongOtherRequestsAndResponsesSplitAnywhere) {
  const std::string conv = conversation();
  auto check = [&](Stream<>& s, FeedResult r) {
    ASSERT_EQ(r, FeedResult::kOk) << sip_error_name(s.dec.error());
    EXPECT_EQ(s.sink.messages, kConversationMessages);
    EXPECT_EQ(s.sink.skipped_requests, 4);  // REGISTER OPTIONS INVITE BYE
    EXPECT_EQ(s.sink.skipped_responses, 3);
    EXPECT_TRUE(s.sink.violations.empty()) << s.sink.violations[0];
    EXPECT_TRUE(s.dec.at_message_boundary());
    EXPECT_EQ(s.account(), "robert@biloxi.example.com");
  };
  {
    Stream<> s;
    check(s, s.feed(conv));
  }
  for (size_t cut = 0; cut <= conv.size(); ++cut) {
    SCOPED_TRACE(::testing::Message() << "cut at " << cut);
    Stream<> s;
    check(s, s.feed_split(conv, cut));
    if (HasFailure()) return;
  }
  for (size_t chunk = 1; chunk < conv.size(); ++chunk) {
    SCOPED_TRACE(::testing::Message() << "chunks of " << chunk);
    Stream<> s;
    check(s, s.feed_chunked(conv, chunk));
    if (HasFailure()) return;
  }
}

TEST(SipStream, SinkWithoutHookHearsNothingOfSkippedMessages) {
  Stream<RecordingSink> s;
  ASSERT_EQ(s.feed(conversation()), FeedResult::kOk);
  EXPECT_EQ(s.sink.messages, kConversationMessages);
  EXPECT_TRUE(s.sink.violations.empty());
}

TEST(SipStream, OtherRequestsLeaveTheSessionAlone) {
  Stream<> s;
  ASSERT_EQ(s.feed(sip("INVITE sip:bob@b.example SIP/2.0\n"
                       "From: <sip:alice@a.example>\n"
                       "P-Asserted-Identity: <sip:x@y>\n"
                       "From: <sip:duplicates@do.not.matter>\n"
                       "Content-Type: message/cpim\n"
                       "Content-Length: {len}\n",
                       kSdp)),
            FeedResult::kOk);
  EXPECT_EQ(s.session.account_len, 0);
  EXPECT_FALSE(s.session.has_username);
  EXPECT_EQ(s.sink.skipped_requests, 1);
  EXPECT_TRUE(s.sink.messages.empty());
}

TEST(SipStream, MethodNamesAreCaseSensitive) {
  Stream<> s;
  ASSERT_EQ(s.feed(sip("message sip:bob@b.example SIP/2.0\n"
                       "From: <sip:alice@a.example>\n"
                       "Content-Length: 1\n",
                       "x")),
            FeedResult::kOk);
  EXPECT_TRUE(s.sink.messages.empty());
  EXPECT_EQ(s.sink.skipped_requests, 1);
}

TEST(SipStream, VersionIsCaseInsensitiveAndResponsesMayLackAReason) {
  Stream<> s;
  ASSERT_EQ(s.feed("sip/2.0 200\r\nContent-Length: 0\r\n\r\nMESSAGE sip:b@b sip/2.0\r\nFrom: <sip:a@a>\r\n"
                   "Content-Length: 1\r\n\r\nz"),
            FeedResult::kOk)
      << sip_error_name(s.dec.error());
  EXPECT_EQ(s.sink.skipped_responses, 1);
  ASSERT_EQ(s.sink.messages.size(), 1u);
  EXPECT_EQ(s.sink.messages[0], msg("a@a", "b@b", "z"));
}

TEST(SipStream, EveryMessageReportsItsAccount) {
  std::string two = sip("MESSAGE sip:b@b SIP/2.0\n"
                        "From: <sip:" +
                            std::string(120, 'x') +
                            "@a>\n"
                            "Content-Length: 1\n",
                        "1") +
                    sip("MESSAGE sip:b@b SIP/2.0\n"
                        "From: <sip:short@a>\n"
                        "Content-Length: 1\n",
                        "2");
  Stream<> s;
  ASSERT_EQ(s.feed(two), FeedResult::kOk);
  ASSERT_EQ(s.sink.messages.size(), 2u);
  EXPECT_TRUE(s.sink.messages[0].truncated);
  EXPECT_EQ(s.sink.messages[1], msg("short@a", "b@b", "2"));
  EXPECT_EQ(s.account(), "short@a");
  EXPECT_FALSE(s.session.account_truncated);
}

TEST(SipStream, LargeBodyIsStreamedNotBuffered) {
  std::string body(100 * 1024 + 17, '\0');
  std::mt19937 rng(7);
  for (char& ch : body) ch = static_cast<char>(rng());
  std::string buf = sip("MESSAGE sip:b@b SIP/2.0\n"
                        "From: <sip:a@a>\n"
                        "Content-Length: {len}\n",
                        body) +
                    sip("MESSAGE sip:b@b SIP/2.0\nFrom: <sip:a@a>\nContent-Length: 1\n", "s");
  Stream<> s;
  ASSERT_EQ(s.feed_chunked(buf, 1448), FeedResult::kOk);
  ASSERT_EQ(s.sink.messages.size(), 2u);
  EXPECT_TRUE(s.sink.messages[0].body == body);
  EXPECT_EQ(s.sink.messages[1], msg("a@a", "b@b", "s"));
  EXPECT_LE(s.sink.calls, static_cast<int>(buf.size() / 1448 + 20));
}

TEST(SipStream, BodyAtTheMaximumIsAccepted) {
  SipLimits limits;
  std::string head = crlf("OPTIONS sip:b@b SIP/2.0\nContent-Length: 1048576\n\n");
  Stream<> s;
  ASSERT_EQ(s.feed(head), FeedResult::kOk);
  EXPECT_FALSE(s.dec.at_message_boundary());
  std::string body(limits.max_body, 'b');
  ASSERT_EQ(s.feed(body), FeedResult::kOk);
  EXPECT_TRUE(s.dec.at_message_boundary());
}

// ---- Limits -----------------------------------------------------------------------------------

// Feeds `wire` whole, bytewise and in 7-byte chunks; each must give `want` (kNone: accepted).
void expect_outcome(const std::string& wire, SipError want, const SipLimits& limits = {}) {
  for (size_t chunk : {wire.size(), size_t{1}, size_t{7}}) {
    SCOPED_TRACE(::testing::Message() << "chunks of " << chunk);
    Stream<> s(limits);
    FeedResult r = s.feed_chunked(wire, std::max<size_t>(chunk, 1));
    EXPECT_EQ(s.dec.error(), want) << sip_error_name(s.dec.error());
    EXPECT_EQ(r, want == SipError::kNone ? FeedResult::kOk : FeedResult::kError);
    EXPECT_TRUE(s.sink.violations.empty()) << s.sink.violations[0];
    for (const MessageRec& m : s.sink.messages) {
      if (want != SipError::kNone) {
        EXPECT_TRUE(m.body.empty()) << "body streamed from a broken message";
      }
    }
  }
}

std::string message_with(const std::string& extra_headers, const std::string& body = "x") {
  return sip("MESSAGE sip:bob@b.example SIP/2.0\nFrom: <sip:alice@a.example>\nTo: <sip:bob@b.example>\n" +
                 extra_headers + "Content-Length: {len}\n",
             body);
}

TEST(SipLimitsTest, HeaderLineLength) {
  // "X-Long: " + value is the line (CR/LF not counted).
  for (const char* name : {"X-Long", "To"}) {
    SCOPED_TRACE(name);
    std::string base = std::string(name) + ": ";
    std::string at = base + "<sip:b@b>" + std::string(2048 - base.size() - 9, 'v') + "\n";
    std::string over = base + "<sip:b@b>" + std::string(2049 - base.size() - 9, 'v') + "\n";
    auto wire = [&](const std::string& h) {
      return sip("MESSAGE sip:bob@b.example SIP/2.0\nFrom: <sip:alice@a.example>\n" + h + "Content-Length: {len}\n",
                 "x");
    };
    expect_outcome(wire(at), SipError::kNone);
    expect_outcome(wire(over), SipError::kLineTooLong);
  }
  // Continuation lines count toward their header, fold whitespace included.
  std::string folded_at = "X-Fold: " + std::string(1000, 'a') + "\n " + std::string(2048 - 8 - 1000 - 1, 'b') + "\n";
  std::string folded_over = "X-Fold: " + std::string(1000, 'a') + "\n " + std::string(2048 - 8 - 1000, 'b') + "\n";
  expect_outcome(message_with(folded_at), SipError::kNone);
  expect_outcome(message_with(folded_over), SipError::kLineTooLong);
  // The start line too.
  std::string uri_at = "sip:" + std::string(2048 - 8 - 4 - 8, 'r');
  expect_outcome(sip("MESSAGE " + uri_at + " SIP/2.0\nFrom: <sip:a@a>\nContent-Length: 0\n", ""), SipError::kNone);
  expect_outcome(sip("MESSAGE " + uri_at + "r SIP/2.0\nFrom: <sip:a@a>\nContent-Length: 0\n", ""),
                 SipError::kLineTooLong);
  expect_outcome(sip("SIP/2.0 200 " + std::string(2048 - 12, 'o') + "\nContent-Length: 0\n", ""), SipError::kNone);
  expect_outcome(sip("SIP/2.0 200 " + std::string(2049 - 12, 'o') + "\nContent-Length: 0\n", ""),
                 SipError::kLineTooLong);
}

TEST(SipLimitsTest, HeaderCount) {
  auto with = [](int headers) {  // From, To and Content-Length are three of them
    std::string extra;
    for (int i = 0; i < headers - 3; ++i) extra += "X-H" + std::to_string(i) + ": v\n";
    return message_with(extra);
  };
  expect_outcome(with(128), SipError::kNone);
  expect_outcome(with(129), SipError::kTooManyHeaders);
  // Continuation lines are no headers.
  std::string folds;
  for (int i = 0; i < 200; ++i) folds += " ;p" + std::to_string(i) + "\n";
  expect_outcome(message_with("Via: SIP/2.0/TCP h\n" + folds), SipError::kNone);
}

TEST(SipLimitsTest, HeaderSectionSize) {
  // Start line through the empty line, CR/LF included: pad to exactly the limit, then one more.
  auto with_section = [](size_t total) {
    std::string head = crlf("MESSAGE sip:bob@b.example SIP/2.0\nFrom: <sip:alice@a.example>\nContent-Length: 1\n");
    std::string pad;
    size_t left = total - head.size() - 2;  // the empty line
    while (left > 0) {
      size_t line = std::min<size_t>(left, 1500);
      if (left - line > 0 && left - line < 12) line -= 12;  // keep every pad line long enough
      std::string h = "X-Pad: " + std::string(line - 9, 'p') + "\r\n";
      pad += h;
      left -= h.size();
    }
    std::string wire = head + pad + "\r\nx";
    EXPECT_EQ(wire.size(), total + 1);
    return wire;
  };
  expect_outcome(with_section(16384), SipError::kNone);
  expect_outcome(with_section(16385), SipError::kHeadersTooLarge);
}

TEST(SipLimitsTest, ContentLength) {
  std::string at = crlf("OPTIONS sip:b@b SIP/2.0\nContent-Length: 1048576\n\n");
  expect_outcome(at, SipError::kNone);
  expect_outcome(crlf("OPTIONS sip:b@b SIP/2.0\nContent-Length: 1048577\n\n"), SipError::kContentLengthTooLarge);
  expect_outcome(crlf("MESSAGE sip:b@b SIP/2.0\nFrom: <sip:a@a>\nl: 99999999999999999999999\n\n"),
                 SipError::kContentLengthTooLarge);
  expect_outcome(crlf("OPTIONS sip:b@b SIP/2.0\nContent-Length: 0000000000000000000000012\n\n") + "twelve bytes",
                 SipError::kNone);
}

TEST(SipLimitsTest, CpimHeaderSections) {
  // CPIM headers, their empty line, MIME headers and their empty line: up to 4096 bytes.
  auto cpim = [](size_t total) {
    std::string mime = "Content-Type: text/plain\r\n\r\n";
    std::string cpim_headers;
    size_t left = total - mime.size() - 2;
    while (left > 0) {
      size_t line = std::min<size_t>(left, 1000);
      if (left - line > 0 && left - line < 8) line -= 8;
      cpim_headers += "X: " + std::string(line - 5, 'c') + "\r\n";
      left -= line;
    }
    std::string body = cpim_headers + "\r\n" + mime + "inner";
    EXPECT_EQ(body.size(), total + 5);
    return message_with("Content-Type: message/cpim\n", body);
  };
  expect_outcome(cpim(4096), SipError::kNone);
  expect_outcome(cpim(4097), SipError::kCpimHeadersTooLarge);
}

TEST(SipLimitsTest, ConfiguredLimitsApply) {
  SipLimits tight{.max_line = 64, .max_header_bytes = 200, .max_body = 40, .max_cpim_headers = 20, .max_headers = 5};
  const std::string forty(40, '4');
  expect_outcome(message_with("", forty), SipError::kNone, tight);
  expect_outcome(message_with("", forty + "1"), SipError::kContentLengthTooLarge, tight);
  expect_outcome(message_with("X: " + std::string(61, 'x') + "\n"), SipError::kNone, tight);
  expect_outcome(message_with("X: " + std::string(62, 'x') + "\n"), SipError::kLineTooLong, tight);
  expect_outcome(message_with("A: 1\nB: 2\n"), SipError::kNone, tight);
  expect_outcome(message_with("A: 1\nB: 2\nC: 3\n"), SipError::kTooManyHeaders, tight);
  expect_outcome(message_with("X: " + std::string(50, 'x') + "\nY: " + std::string(50, 'y') + "\n"),
                 SipError::kHeadersTooLarge, tight);
  expect_outcome(message_with("c: message/cpim\n", "From: <im:a@b>\n\n\nz"), SipError::kNone, tight);
  expect_outcome(message_with("c: message/cpim\n", "From: <im:aaaa@bbbb>\n\n\nz"), SipError::kCpimHeadersTooLarge,
                 tight);
}

// ---- Malformed input --------------------------------------------------------------------------

struct MalformedCase {
  const char* name;
  std::string wire;
  SipError error;
};

TEST(SipMalformed, ViolationsAreReported) {
  const std::string from = "From: <sip:a@a>\r\n";
  const MalformedCase cases[] = {
      {"unknown_version", crlf("MESSAGE sip:b@b SIP/3.0\nContent-Length: 0\n\n"), SipError::kBadStartLine},
      {"no_version", crlf("MESSAGE sip:b@b\nContent-Length: 0\n\n"), SipError::kBadStartLine},
      {"no_uri", crlf("MESSAGE SIP/2.0\n\n"), SipError::kBadStartLine},
      {"double_space", crlf("MESSAGE  sip:b@b SIP/2.0\n\n"), SipError::kBadStartLine},
      {"tab_separator", crlf("MESSAGE\tsip:b@b SIP/2.0\n\n"), SipError::kBadStartLine},
      {"space_before_crlf", crlf("MESSAGE sip:b@b SIP/2.0 \n\n"), SipError::kBadStartLine},
      {"leading_space", crlf(" MESSAGE sip:b@b SIP/2.0\n\n"), SipError::kBadStartLine},
      {"http", crlf("GET / HTTP/1.1\nHost: x\n\n"), SipError::kBadStartLine},
      {"status_four_digits", crlf("SIP/2.0 2000 OK\n\n"), SipError::kBadStartLine},
      {"status_099", crlf("SIP/2.0 099 Odd\n\n"), SipError::kBadStartLine},
      {"status_700", crlf("SIP/2.0 700 Odd\n\n"), SipError::kBadStartLine},
      {"status_letters", crlf("SIP/2.0 2x0 OK\n\n"), SipError::kBadStartLine},
      {"tls_client_hello", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), SipError::kBadCharacter},
      {"binary_token", "\xc3\xa9t\xc3\xa9 sip:b@b SIP/2.0\r\n\r\n", SipError::kBadStartLine},
      {"bare_cr_in_header", "MESSAGE sip:b@b SIP/2.0\r\nX-A: 1\rContent-Length: 5\r\n\r\n", SipError::kBadLineEnd},
      {"bare_cr_in_start_line", "MESSAGE sip:b@b\rSIP/2.0\r\n\r\n", SipError::kBadLineEnd},
      {"cr_cr_lf", "OPTIONS sip:b@b SIP/2.0\r\r\n\r\n", SipError::kBadLineEnd},
      {"nul_in_header", std::string("OPTIONS sip:b@b SIP/2.0\r\nX-A: a\0b\r\n\r\n", 37), SipError::kBadCharacter},
      {"escape_in_header", "OPTIONS sip:b@b SIP/2.0\r\nFrom: \x1b[31m\r\n\r\n", SipError::kBadCharacter},
      {"del_in_uri", "OPTIONS sip:b\x7f@b SIP/2.0\r\n\r\n", SipError::kBadCharacter},
      {"header_without_colon", crlf("OPTIONS sip:b@b SIP/2.0\nContent-Length 0\n\n"), SipError::kBadHeader},
      {"space_in_name", crlf("OPTIONS sip:b@b SIP/2.0\nContent Length: 0\n\n"), SipError::kBadHeader},
      {"empty_name", crlf("OPTIONS sip:b@b SIP/2.0\n: 0\n\n"), SipError::kBadHeader},
      {"fold_before_any_header", crlf("OPTIONS sip:b@b SIP/2.0\n Content-Length: 0\n\n"), SipError::kBadHeader},
      {"fold_before_colon", crlf("OPTIONS sip:b@b SIP/2.0\nContent-Length\n : 0\n\n"), SipError::kBadHeader},
      {"bad_char_in_name", crlf("OPTIONS sip:b@b SIP/2.0\nX(y): 0\n\n"), SipError::kBadHeader},
      {"duplicate_from", "MESSAGE sip:b@b SIP/2.0\r\n" + from + "f: <sip:c@c>\r\nContent-Length: 0\r\n\r\n",
       SipError::kDuplicateHeader},
      {"duplicate_to", "MESSAGE sip:b@b SIP/2.0\r\n" + from + "To: <sip:b@b>\r\nTO: <sip:c@c>\r\nl: 0\r\n\r\n",
       SipError::kDuplicateHeader},
      {"duplicate_content_type",
       "MESSAGE sip:b@b SIP/2.0\r\n" + from + "c: text/plain\r\nContent-Type: message/cpim\r\nl: 0\r\n\r\n",
       SipError::kDuplicateHeader},
      {"duplicate_content_length_same_value",
       "MESSAGE sip:b@b SIP/2.0\r\n" + from + "l: 1\r\nContent-Length: 1\r\n\r\nx", SipError::kDuplicateHeader},
      {"duplicate_content_length_in_options", crlf("OPTIONS sip:b@b SIP/2.0\nl: 0\nl: 5\n\n"),
       SipError::kDuplicateHeader},
      {"duplicate_content_length_in_response", crlf("SIP/2.0 200 OK\nl: 0\nl: 5\n\n"), SipError::kDuplicateHeader},
      {"content_length_empty", crlf("OPTIONS sip:b@b SIP/2.0\nContent-Length:\n\n"), SipError::kBadContentLength},
      {"content_length_blank_fold", crlf("OPTIONS sip:b@b SIP/2.0\nContent-Length: \n  \n\n"),
       SipError::kBadContentLength},
      {"content_length_letters", crlf("OPTIONS sip:b@b SIP/2.0\nContent-Length: abc\n\n"), SipError::kBadContentLength},
      {"content_length_two_numbers", crlf("OPTIONS sip:b@b SIP/2.0\nContent-Length: 12 3\n\n"),
       SipError::kBadContentLength},
      {"content_length_negative", crlf("OPTIONS sip:b@b SIP/2.0\nContent-Length: -1\n\n"), SipError::kBadContentLength},
      {"content_length_hex", crlf("OPTIONS sip:b@b SIP/2.0\nContent-Length: 0x10\n\n"), SipError::kBadContentLength},
      {"content_length_comma", crlf("OPTIONS sip:b@b SIP/2.0\nContent-Length: 1,2\n\n"), SipError::kBadContentLength},
      {"missing_content_length", crlf("MESSAGE sip:b@b SIP/2.0\nFrom: <sip:a@a>\n\nhello"),
       SipError::kMissingContentLength},
      {"missing_content_length_response", crlf("SIP/2.0 200 OK\n\n"), SipError::kMissingContentLength},
      {"missing_from", crlf("MESSAGE sip:b@b SIP/2.0\nTo: <sip:b@b>\nP-Asserted-Identity: <sip:p@p>\nl: 1\n\nx"),
       SipError::kMissingFrom},
      {"cpim_ends_in_cpim_headers", message_with("c: message/cpim\n", "From: <im:a@b>\nTo: <im:c@d>\n"),
       SipError::kBadCpim},
      {"cpim_ends_in_mime_headers", message_with("c: message/cpim\n", "From: <im:a@b>\n\nContent-Type: text/plain\n"),
       SipError::kBadCpim},
      {"cpim_empty", message_with("c: message/cpim\n", ""), SipError::kBadCpim},
  };
  for (const MalformedCase& c : cases) {
    SCOPED_TRACE(c.name);
    expect_outcome(c.wire, c.error);
    // A good message after the bad one changes nothing: the first violation stops decoding.
    expect_outcome(c.wire + message_with(""), c.error);
  }
}

TEST(SipMalformed, NoEventsBeforeTheHeaderSectionIsWhole) {
  // A violation in the headers of a MESSAGE: nothing of it reached the sink.
  Stream<> s;
  EXPECT_EQ(s.feed(message_with("X-A: 1\rq\n")), FeedResult::kError);
  EXPECT_EQ(s.sink.calls, 0);
}

// ---- Datagrams ------------------------------------------------------------------------------

const std::string kUdpMessage =
    sip("MESSAGE sip:user2@domain.com SIP/2.0\n"
        "Via: SIP/2.0/UDP user1pc.domain.com;branch=z9hG4bK776sgdkse\n"
        "Max-Forwards: 70\n"
        "From: sip:user1@domain.com;tag=49583\n"
        "To: sip:user2@domain.com\n"
        "Call-ID: asd88asd77a@1.2.3.4\n"
        "CSeq: 1 MESSAGE\n"
        "Content-Type: text/plain\n"
        "Content-Length: {len}\n",
        "Watson, come here.");
const MessageRec kUdpExpected = msg("user1@domain.com", "user2@domain.com", "Watson, come here.");

TEST(SipDatagram, OneMessage) {
  Stream<> s;
  ASSERT_EQ(s.datagram(kUdpMessage), FeedResult::kOk);
  ASSERT_EQ(s.sink.messages.size(), 1u);
  EXPECT_EQ(s.sink.messages[0], kUdpExpected);
  EXPECT_EQ(s.account(), "user1@domain.com");
}

TEST(SipDatagram, TrailingCrlfIsTolerated) {
  Stream<> s;
  ASSERT_EQ(s.datagram("\r\n" + kUdpMessage + "\r\n\r\n"), FeedResult::kOk);
  ASSERT_EQ(s.sink.messages.size(), 1u);
  EXPECT_EQ(s.sink.messages[0], kUdpExpected);
}

TEST(SipDatagram, TruncatedAnywhereIsAViolation) {
  for (size_t len = 1; len < kUdpMessage.size(); ++len) {
    SCOPED_TRACE(len);
    Stream<> s;
    EXPECT_EQ(s.datagram(std::string_view(kUdpMessage).substr(0, len)), FeedResult::kError);
    EXPECT_EQ(s.dec.error(), SipError::kDatagramTruncated) << sip_error_name(s.dec.error());
    EXPECT_EQ(s.sink.calls, 0);  // the lie is caught before the message begins
  }
}

TEST(SipDatagram, TrailingBytesAreAViolation) {
  for (const std::string& tail :
       {std::string("x"), std::string("\r\nhidden text"), std::string(" "), std::string("\0", 1), kUdpMessage}) {
    Stream<> s;
    EXPECT_EQ(s.datagram(kUdpMessage + tail), FeedResult::kError);
    EXPECT_EQ(s.dec.error(), SipError::kTrailingData);
    ASSERT_EQ(s.sink.messages.size(), 1u);  // the message itself was whole
    EXPECT_EQ(s.sink.messages[0], kUdpExpected);
  }
}

TEST(SipDatagram, MissingContentLengthTakesTheRest) {
  Stream<> s;
  std::string wire = crlf("MESSAGE sip:b@b SIP/2.0\nFrom: <sip:a@a>\nTo: <sip:b@b>\n\n") + "the rest\r\nof it\r\n";
  ASSERT_EQ(s.datagram(wire), FeedResult::kOk);
  ASSERT_EQ(s.sink.messages.size(), 1u);
  EXPECT_EQ(s.sink.messages[0], msg("a@a", "b@b", "the rest\r\nof it\r\n"));

  Stream<> empty;
  ASSERT_EQ(empty.datagram(crlf("MESSAGE sip:b@b SIP/2.0\nFrom: <sip:a@a>\n\n")), FeedResult::kOk);
  ASSERT_EQ(empty.sink.messages.size(), 1u);
  EXPECT_EQ(empty.sink.messages[0], msg("a@a", "b@b", ""));

  Stream<> options;
  ASSERT_EQ(options.datagram(crlf("OPTIONS sip:b@b SIP/2.0\n\n") + kSdp), FeedResult::kOk);
  EXPECT_EQ(options.sink.skipped_requests, 1);
}

TEST(SipDatagram, ContentLengthBeyondTheDatagramIsAViolation) {
  std::string wire = crlf("MESSAGE sip:b@b SIP/2.0\nFrom: <sip:a@a>\nContent-Length: 6\n\n") + "12345";
  Stream<> s;
  EXPECT_EQ(s.datagram(wire), FeedResult::kError);
  EXPECT_EQ(s.dec.error(), SipError::kDatagramTruncated);
  EXPECT_EQ(s.sink.calls, 0);
}

TEST(SipDatagram, KeepAlivesAndStunAreSkipped) {
  // RFC 5389 Binding request: type 0x0001, length 0, magic cookie, transaction id.
  const std::string stun(
      "\x00\x01\x00\x00\x21\x12\xa4\x42"
      "abcdefghijkl",
      20);
  for (const std::string& d : {std::string(), std::string("\r\n\r\n"), std::string("\n"), stun}) {
    Stream<> s;
    EXPECT_EQ(s.datagram(d), FeedResult::kOk);
    EXPECT_EQ(s.sink.calls, 0);
  }
  std::string bad_length = stun;
  bad_length[3] = 4;  // says 4 attribute bytes follow; none do
  Stream<> s;
  EXPECT_EQ(s.datagram(bad_length), FeedResult::kError);
  EXPECT_EQ(s.dec.error(), SipError::kBadCharacter);
}

TEST(SipDatagram, ResponsesAndOtherRequestsAreSkipped) {
  Stream<> s;
  ASSERT_EQ(s.datagram(crlf("SIP/2.0 200 OK\nContent-Length: 0\n\n")), FeedResult::kOk);
  ASSERT_EQ(s.datagram(crlf("SIP/2.0 200 OK\n\n")), FeedResult::kOk);
  EXPECT_EQ(s.sink.skipped_responses, 2);
  EXPECT_TRUE(s.sink.messages.empty());
}

TEST(SipDatagram, EachDatagramStartsAfresh) {
  Stream<> s;
  EXPECT_EQ(s.datagram(kUdpMessage.substr(0, 40)), FeedResult::kError);
  EXPECT_EQ(s.datagram("garbage here\r\n\r\n"), FeedResult::kError);
  EXPECT_EQ(s.dec.error(), SipError::kBadStartLine);
  Session fresh;
  s.session = fresh;
  ASSERT_EQ(s.datagram(kUdpMessage), FeedResult::kOk);
  EXPECT_EQ(s.dec.error(), SipError::kNone);
  ASSERT_EQ(s.sink.messages.size(), 1u);
  EXPECT_EQ(s.sink.messages[0], kUdpExpected);
  // A stream decoder left mid-message does not leak into a datagram either.
  Stream<> t;
  ASSERT_EQ(t.feed(kUdpMessage.substr(0, kUdpMessage.size() - 3)), FeedResult::kOk);
  ASSERT_EQ(t.datagram(kUdpMessage), FeedResult::kOk);
  ASSERT_EQ(t.sink.messages.size(), 2u);
  EXPECT_EQ(t.sink.messages[1], kUdpExpected);
}

// ---- Stopping ---------------------------------------------------------------------------------

TEST(SipStop, SinkReturningFalseStopsAtThatCallback) {
  const std::string conv = conversation();
  Stream<> whole;
  ASSERT_EQ(whole.feed(conv), FeedResult::kOk);
  const int total = whole.sink.calls;
  ASSERT_GE(total, 20);
  for (int n = 1; n <= total; ++n) {
    SCOPED_TRACE(n);
    Stream<> s;
    s.sink.stop_after = n;
    EXPECT_EQ(s.feed(conv), FeedResult::kStopped);
    EXPECT_EQ(s.sink.calls, n);  // nothing is called after the refusal
  }
  Stream<> s;
  s.sink.stop_after = total + 1;
  EXPECT_EQ(s.feed(conv), FeedResult::kOk);
}

// ---- URI identities and names -----------------------------------------------------------------

TEST(SipUri, Identities) {
  struct Case {
    const char* uri;
    const char* want;
    bool cut;
    bool truncated;
  } cases[] = {
      {"sip:alice@atlanta.com", "alice@atlanta.com", false, false},
      {"SIP:alice@Atlanta.COM", "alice@atlanta.com", false, false},
      {"sips:Alice@atlanta.com:5061;transport=tls", "Alice@atlanta.com", false, false},
      {"sip:alice:secretword@atlanta.com;transport=tcp", "alice@atlanta.com", false, false},
      {"sip:+1-212-555-1212:1234@gateway.com;user=phone", "+1-212-555-1212@gateway.com", false, false},
      {"sip:%61lice%40x@atlanta.com", "alice%40x@atlanta.com", false, false},
      {"sip:al%zzice%4@a.com", "al%zzice%4@a.com", false, false},
      {"sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com", "atlanta.com", false, false},
      {"sip:alice@[2001:db8::1]:5060", "alice@[2001:db8::1]", false, false},
      {"sip:alice@[2001:db8::1", "alice@[2001:db8::1", true, true},
      {"sip:alice@registrar.com;method=REGISTER", "alice@registrar.com", false, false},
      {"sip:alice@atlanta.com?subject=project%20x&priority=urgent", "alice@atlanta.com", false, false},
      {"tel:+358-555-1234567;postd=pp22", "+358-555-1234567", false, false},
      {"im:piglet@100akerwood.com", "im:piglet@100akerwood.com", false, false},
      {"urn:service:sos;x=y", "urn:service:sos", false, false},
      {"alice@example.com", "alice@example.com", false, false},
      {"sip:alice@atlanta.com;tr", "alice@atlanta.com", true, false},
      {"sip:alice@atlanta.co", "alice@atlanta.co", true, true},
      {"sip:aliceAlice", "aliceAlice", true, true},
      {"sip:", "", false, false},
      {"", "", false, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.uri);
    char out[128];
    SipIdentity id = sip_uri_identity(c.uri, static_cast<uint32_t>(std::strlen(c.uri)), c.cut, out, sizeof out);
    EXPECT_EQ(std::string(out, id.len), c.want);
    EXPECT_EQ(id.truncated, c.truncated);
  }
  char small[5];
  SipIdentity id = sip_uri_identity("sip:alice@a.com", 15, false, small, sizeof small);
  EXPECT_EQ(std::string(small, id.len), "alice");
  EXPECT_TRUE(id.truncated);
  EXPECT_EQ(sip_uri_scheme("sips:x", 6), SipScheme::kSip);
  EXPECT_EQ(sip_uri_scheme("TEL:1", 5), SipScheme::kTel);
  EXPECT_EQ(sip_uri_scheme("mailto:x", 8), SipScheme::kOther);
  EXPECT_EQ(sip_uri_scheme("1sip:x", 6), SipScheme::kNone);
  EXPECT_EQ(sip_uri_scheme("sip", 3), SipScheme::kNone);
}

TEST(SipErrors, NamesAreStableDistinctSnakeCase) {
  std::vector<std::string> names;
  for (uint8_t i = 0; i < kSipErrorCount; ++i) {
    std::string n = sip_error_name(static_cast<SipError>(i));
    EXPECT_NE(n, "unknown") << int{i};
    EXPECT_TRUE(std::all_of(n.begin(), n.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; })) << n;
    EXPECT_EQ(std::count(names.begin(), names.end(), n), 0) << n;
    names.push_back(n);
  }
  EXPECT_STREQ(sip_error_name(static_cast<SipError>(kSipErrorCount)), "unknown");
  EXPECT_STREQ(sip_error_name(SipError::kNone), "none");
  EXPECT_STREQ(sip_error_name(SipError::kLineTooLong), "line_too_long");
  EXPECT_STREQ(sip_error_name(SipError::kTrailingData), "trailing_data");
}

TEST(SipState, SizeIsBounded) {
  EXPECT_LE(sizeof(SipDecoder), 768u);
  RecordProperty("sizeof_SipDecoder", static_cast<int>(sizeof(SipDecoder)));
}

// ---- Fuzz -------------------------------------------------------------------------------------

std::string random_seed_message(std::mt19937& rng, const std::vector<MessageCase>& cases) {
  auto rnd_str = [&](size_t max) {
    std::string s(rng() % (max + 1), 'a');
    for (char& c : s) c = static_cast<char>('a' + rng() % 26);
    return s;
  };
  switch (rng() % 8) {
    case 0:
    case 1: return cases[rng() % cases.size()].wire;
    case 2: {
      // Drawn one by one: the evaluation order of an expression's operands is the compiler's.
      std::string user = rnd_str(12);
      std::string display = rnd_str(6);
      std::string tag = rnd_str(4);
      std::string extra;
      for (int i = static_cast<int>(rng() % 8); i > 0; --i) {
        std::string name = rnd_str(3);
        extra += "X-" + name + ": " + rnd_str(30) + "\n";
      }
      std::string cpim_from = rnd_str(30);
      std::string body = rnd_str(40);
      return sip("MESSAGE sip:" + user + "@b SIP/2.0\nf: \"" + display + "\" <sip:" + user + "@a>;tag=" + tag +
                     "\nt: <sip:x@y>\n" + extra + "c: message/cpim\nl: {len}\n",
                 "From: " + cpim_from + "\n\nContent-Type: text/plain\n\n" + body);
    }
    case 3: return sip("SIP/2.0 200 OK\nContent-Length: {len}\n", rnd_str(20));
    case 4: {
      std::string branch = rnd_str(8);
      std::string body = rnd_str(9);
      return sip("OPTIONS sip:b@b SIP/2.0\nVia: SIP/2.0/TCP h\n ;branch=" + branch + "\nl: {len}\n", body);
    }
    case 5: return "\r\n\r\n";
    default: {
      std::string b(rng() % 64, '\0');
      for (char& c : b) c = static_cast<char>(rng());
      return b;
    }
  }
}

struct FuzzOutcome {
  FeedResult result;
  SipError error;
  bool boundary;
  std::vector<MessageRec> messages;
  int skipped;
};

FuzzOutcome run_fuzz_input(const std::string& buf, const SipLimits& limits, std::mt19937* chunker) {
  Stream<> s(limits);
  FeedResult r = FeedResult::kOk;
  size_t off = 0;
  while (off < buf.size()) {
    size_t n = buf.size() - off;
    if (chunker) n = std::min(n, size_t{1} + (*chunker)() % 23);
    r = s.feed(buf, off, n);
    off += n;
    if (r == FeedResult::kError) {
      EXPECT_NE(s.dec.error(), SipError::kNone);
      break;
    }
    EXPECT_EQ(s.dec.error(), SipError::kNone);
    EXPECT_EQ(r, FeedResult::kOk);  // the sink never stops
  }
  EXPECT_TRUE(s.sink.violations.empty()) << s.sink.violations[0];
  EXPECT_LE(s.session.account_len, Session::kAccountCap);
  for (const MessageRec& m : s.sink.messages) EXPECT_LE(m.channel.size(), SipDecoder::kChannelCap);
  return {r, s.dec.error(), s.dec.at_message_boundary(), s.sink.messages,
          s.sink.skipped_requests + s.sink.skipped_responses};
}

TEST(SipFuzz, RandomAndMutatedInputsAreHandledConsistently) {
  // Tight limits half the time, so that every limit is crossed, inside bulk runs too.
  const SipLimits kTight[2] = {
      {.max_line = 48, .max_header_bytes = 1000, .max_body = 64, .max_cpim_headers = 40, .max_headers = 6},
      {.max_line = 64, .max_header_bytes = 200, .max_body = 1000, .max_cpim_headers = 1000, .max_headers = 128}};
  const std::vector<MessageCase> cases = message_cases();
  const char specials[] = {'\r', '\n', ' ', '\t', ':', '<', '>', '"', ';', ',', '\\', '@', '\0', '0', '9'};
  std::mt19937 rng(0x51b0c0de);
  int errors = 0;
  int messages = 0;
  int datagram_messages = 0;
  for (int iter = 0; iter < 6000; ++iter) {
    std::string buf;
    int parts = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < parts; ++i) buf += random_seed_message(rng, cases);
    int mutations = static_cast<int>(rng() % 4);
    for (int i = 0; i < mutations && !buf.empty(); ++i) {
      size_t at = rng() % buf.size();
      switch (rng() % 5) {
        case 0: buf[at] = static_cast<char>(rng()); break;
        case 1: buf[at] = static_cast<char>(buf[at] ^ (1u << (rng() % 8))); break;
        case 2: buf[at] = specials[rng() % sizeof specials]; break;
        case 3: buf.insert(at, 1, specials[rng() % sizeof specials]); break;
        default: buf.resize(at); break;
      }
    }
    const uint32_t profile = rng() % 4;
    const SipLimits limits = profile < 2 ? kTight[profile] : SipLimits{};
    SCOPED_TRACE(::testing::Message() << "iteration " << iter);
    FuzzOutcome one = run_fuzz_input(buf, limits, nullptr);
    FuzzOutcome chunked = run_fuzz_input(buf, limits, &rng);
    EXPECT_EQ(one.result, chunked.result);
    EXPECT_EQ(one.error, chunked.error) << sip_error_name(one.error) << " vs " << sip_error_name(chunked.error);
    EXPECT_EQ(one.messages, chunked.messages);
    EXPECT_EQ(one.skipped, chunked.skipped);
    if (one.result == FeedResult::kOk) {
      EXPECT_EQ(one.boundary, chunked.boundary);
    }
    if (one.result == FeedResult::kError) ++errors;
    messages += static_cast<int>(one.messages.size());

    // The same bytes as one datagram: never a crash, a bounded account, events in order.
    Stream<> d(limits);
    FeedResult r = d.datagram(buf);
    EXPECT_EQ(r == FeedResult::kError, d.dec.error() != SipError::kNone);
    EXPECT_TRUE(d.sink.violations.empty()) << d.sink.violations[0];
    EXPECT_LE(d.session.account_len, Session::kAccountCap);
    EXPECT_LE(d.sink.messages.size(), 1u);
    if (r == FeedResult::kOk) datagram_messages += static_cast<int>(d.sink.messages.size());
    if (HasFailure()) break;
  }
  // The corpus must reach the error paths and the happy ones.
  EXPECT_GT(errors, 1000);
  EXPECT_GT(messages, 1000);
  EXPECT_GT(datagram_messages, 100);
}

}  // namespace
}  // namespace imf::dp::proto
