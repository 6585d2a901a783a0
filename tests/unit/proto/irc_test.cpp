#include "proto/irc.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

namespace imf::dp::proto {
namespace {

const char* source_name(IrcAccountSource s) {
  switch (s) {
    case IrcAccountSource::kNone: return "none";
    case IrcAccountSource::kNick: return "nick";
    case IrcAccountSource::kSasl: return "sasl";
    case IrcAccountSource::kLoggedIn: return "logged_in";
  }
  return "?";
}

// Records what a decoder reports, one log line per account change ("account nick alice") and per
// complete message ("privmsg [#room] hi"), and checks the call order decoder.h promises. Pieces of
// channels and bodies are joined, so the log does not depend on how the input was cut. With
// stop_after = N, the N-th callback returns false.
struct RecordingSink {
  std::vector<std::string>* log = nullptr;
  const char* dir = "";
  std::vector<std::string> violations;
  int calls = 0;
  int stop_after = -1;

  enum class At { kOutside, kChannel, kBody, kBodyEnded };
  At at = At::kOutside;
  MessageKind kind{};
  std::string channel;
  std::string body;

  bool next() { return ++calls != stop_after; }
  void emit(const std::string& e) { log->push_back(dir + e); }

  bool on_account(const Session& s) {
    if (at != At::kOutside) violations.push_back("account inside a message");
    if (s.account_len > Session::kAccountCap) violations.push_back("account_len > cap");
    if (s.has_username != (s.account_len > 0)) violations.push_back("has_username disagrees with the account");
    std::string e = std::string("account ") + source_name(irc_account_source(s));
    if (s.account_len) e += " " + std::string(s.account, std::min<uint32_t>(s.account_len, Session::kAccountCap));
    if (s.account_truncated) e += " (truncated)";
    emit(e);
    return next();
  }
  bool on_message_begin(MessageKind k) {
    if (at != At::kOutside) violations.push_back("message_begin inside a message");
    at = At::kChannel;
    kind = k;
    channel.clear();
    body.clear();
    return next();
  }
  bool on_channel(const uint8_t* p, uint32_t n) {
    if (at != At::kChannel) violations.push_back("channel outside a message header");
    if (n == 0) violations.push_back("empty channel chunk");
    channel.append(reinterpret_cast<const char*>(p), n);
    return next();
  }
  bool on_channel_alias(uint16_t) {
    violations.push_back("channel alias from irc");
    return next();
  }
  bool on_channel_end() {
    if (at != At::kChannel) violations.push_back("stray channel_end");
    at = At::kBody;
    return next();
  }
  bool on_body(const uint8_t* p, uint32_t n) {
    if (at != At::kBody) violations.push_back("body outside the body field");
    if (n == 0) violations.push_back("empty body chunk");
    body.append(reinterpret_cast<const char*>(p), n);
    return next();
  }
  bool on_body_end() {
    if (at != At::kBody) violations.push_back("stray body_end (or a second body field)");
    at = At::kBodyEnded;
    return next();
  }
  bool on_message_end() {
    if (at != At::kBodyEnded) violations.push_back("message_end before body_end");
    at = At::kOutside;
    emit(std::string(message_kind_name(kind)) + " [" + channel + "] " + body);
    return next();
  }
};

// Both directions of one connection: their decoders, the shared session, one log.
struct Conn {
  Session session;
  IrcDecoder client;
  IrcDecoder server;
  std::vector<std::string> log;
  RecordingSink client_sink;
  RecordingSink server_sink;

  Conn() { wire(); }
  Conn(uint16_t max_message, uint16_t max_tags) : client(max_message, max_tags), server(max_message, max_tags) {
    wire();
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  void wire() {
    client_sink.log = &log;
    client_sink.dir = "C ";
    server_sink.log = &log;
    server_sink.dir = "S ";
  }
  IrcDecoder& dec(bool from_client) { return from_client ? client : server; }
  RecordingSink& sink(bool from_client) { return from_client ? client_sink : server_sink; }

  // Feeds exactly [p, p + n) from a heap copy of that size, so the sanitizer sees any read past it.
  FeedResult feed_piece(bool from_client, const char* p, size_t n) {
    std::vector<uint8_t> copy(p, p + n);
    return dec(from_client)
        .feed(copy.data(), static_cast<uint32_t>(copy.size()), from_client, session, sink(from_client));
  }
  // Feeds `bytes` in chunks of `chunk` bytes (0: whole); stops at the first result other than kOk.
  FeedResult feed(bool from_client, const std::string& bytes, size_t chunk = 0) {
    if (chunk == 0) chunk = std::max<size_t>(bytes.size(), 1);
    for (size_t off = 0; off < bytes.size(); off += chunk) {
      FeedResult r = feed_piece(from_client, bytes.data() + off, std::min(chunk, bytes.size() - off));
      if (r != FeedResult::kOk) return r;
    }
    return FeedResult::kOk;
  }
  FeedResult client_says(const std::string& b, size_t chunk = 0) { return feed(true, b, chunk); }
  FeedResult server_says(const std::string& b, size_t chunk = 0) { return feed(false, b, chunk); }

  std::string account() const {
    std::string a = std::string(source_name(irc_account_source(session)));
    if (session.account_len) a += " " + std::string(session.account, session.account_len);
    return a;
  }
  std::vector<std::string> violations() const {
    std::vector<std::string> v = client_sink.violations;
    v.insert(v.end(), server_sink.violations.begin(), server_sink.violations.end());
    return v;
  }
};

std::string base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = uint32_t{static_cast<uint8_t>(in[i])} << 16 | uint32_t{static_cast<uint8_t>(in[i + 1])} << 8 |
                 static_cast<uint8_t>(in[i + 2]);
    out += {k[v >> 18 & 63], k[v >> 12 & 63], k[v >> 6 & 63], k[v & 63]};
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint32_t{static_cast<uint8_t>(in[i])} << 16;
    out += {k[v >> 18 & 63], k[v >> 12 & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    uint32_t v = uint32_t{static_cast<uint8_t>(in[i])} << 16 | uint32_t{static_cast<uint8_t>(in[i + 1])} << 8;
    out += {k[v >> 18 & 63], k[v >> 12 & 63], k[v >> 6 & 63], '='};
  }
  return out;
}

// The AUTHENTICATE lines carrying a PLAIN payload: 400-byte chunks, then "+" after an exact
// multiple (IRCv3 sasl-3.1).
// authzid \0 authcid \0 password (RFC 4616).
std::string plain_message(const std::string& authzid, const std::string& authcid, const std::string& password) {
  std::string m = authzid;
  m += '\0';
  m += authcid;
  m += '\0';
  m += password;
  return m;
}

std::string sasl_plain(const std::string& authzid, const std::string& authcid, const std::string& password) {
  std::string b64 = base64(plain_message(authzid, authcid, password));
  std::string out;
  size_t off = 0;
  for (; b64.size() - off >= kIrcSaslChunk; off += kIrcSaslChunk)
    out += "AUTHENTICATE " + b64.substr(off, kIrcSaslChunk) + "\r\n";
  out += "AUTHENTICATE " + (off == b64.size() ? std::string("+") : b64.substr(off)) + "\r\n";
  return out;
}

// A CTCP request or reply: the text between \x01 delimiters.
std::string ctcp(const std::string& text) { return "\x01" + text + "\x01"; }

std::string crlf(std::initializer_list<std::string> lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\r\n";
  return out;
}

// ---- Sessions, fed whole, split at every byte position and in chunks of every size -------------

struct Step {
  bool from_client;
  std::string bytes;
};

struct SessionCase {
  const char* name;
  std::vector<Step> steps;
  std::vector<std::string> log;
  std::string account;
};

void PrintTo(const SessionCase& c, std::ostream* os) { *os << c.name; }

struct Outcome {
  FeedResult result = FeedResult::kOk;
  std::vector<std::string> log;
  std::string account;
  std::vector<std::string> violations;
  bool boundary = false;
};

// Feeds the steps in order; step `split_step` is cut at `split_at`, the others fed in chunks of
// `chunk` (0: whole).
Outcome run(const std::vector<Step>& steps, size_t chunk, size_t split_step = SIZE_MAX, size_t split_at = 0) {
  Conn c;
  Outcome o;
  for (size_t i = 0; i < steps.size() && o.result == FeedResult::kOk; ++i) {
    const Step& s = steps[i];
    if (i == split_step) {
      o.result = c.feed_piece(s.from_client, s.bytes.data(), split_at);
      if (o.result == FeedResult::kOk)
        o.result = c.feed_piece(s.from_client, s.bytes.data() + split_at, s.bytes.size() - split_at);
    } else {
      o.result = c.feed(s.from_client, s.bytes, chunk);
    }
  }
  o.log = c.log;
  o.account = c.account();
  o.violations = c.violations();
  o.boundary = c.client.at_line_boundary() && c.server.at_line_boundary();
  return o;
}

class SessionTest : public ::testing::TestWithParam<SessionCase> {};

TEST_P(SessionTest, DecodesWholeSplitAndChunked) {
  const SessionCase& c = GetParam();
  auto check = [&](const Outcome& o) {
    EXPECT_EQ(o.result, FeedResult::kOk);
    EXPECT_EQ(o.log, c.log);
    EXPECT_EQ(o.account, c.account);
    EXPECT_TRUE(o.violations.empty()) << o.violations[0];
    EXPECT_TRUE(o.boundary);
  };
  {
    SCOPED_TRACE("whole");
    check(run(c.steps, 0));
  }
  size_t longest = 0;
  for (size_t i = 0; i < c.steps.size(); ++i) {
    longest = std::max(longest, c.steps[i].bytes.size());
    for (size_t at = 0; at <= c.steps[i].bytes.size(); ++at) {
      SCOPED_TRACE(::testing::Message() << "step " << i << " split at " << at);
      check(run(c.steps, 0, i, at));
      if (HasFailure()) return;
    }
  }
  for (size_t chunk = 1; chunk <= longest; ++chunk) {
    SCOPED_TRACE(::testing::Message() << "chunks of " << chunk);
    check(run(c.steps, chunk));
    if (HasFailure()) return;
  }
}

const std::string kSaslAlice = sasl_plain("", "alice_acct", "hunter2");

INSTANTIATE_TEST_SUITE_P(
    Irc, SessionTest,
    ::testing::Values(
        // ii: one line per command, CR LF, /me as a CTCP ACTION.
        SessionCase{"ii_client",
                    {{true, crlf({"NICK ii_user", "USER ii_user localhost irc.example.net :ii_user", "JOIN #suckless",
                                  "PRIVMSG #suckless :hello from ii", "PRIVMSG #suckless :" + ctcp("ACTION waves"),
                                  "TOPIC #suckless :ii all the things", "PRIVMSG anselm :private hello",
                                  "PART #suckless :ii out", "QUIT :bye"})}},
                    {"C account nick ii_user", "C privmsg [#suckless] hello from ii", "C action [#suckless] waves",
                     "C topic [#suckless] ii all the things", "C privmsg [anselm] private hello",
                     "C part [#suckless] ii out", "C quit [] bye"},
                    "nick ii_user"},
        // irssi with CAP and SASL PLAIN: the SASL account wins over the NICK before and after it.
        SessionCase{
            "irssi_sasl_client",
            {{true, crlf({"CAP LS 302", "NICK alice", "USER alice alice irc.libera.chat :Alice Liddell",
                          "CAP REQ :sasl multi-prefix", "AUTHENTICATE PLAIN"}) +
                        kSaslAlice +
                        crlf({"CAP END", "JOIN #wonderland", "PRIVMSG #wonderland :hi all", "NOTICE bob :ping me later",
                              "NICK alice_", "PRIVMSG #wonderland :" + ctcp("ACTION is away"), "QUIT :Leaving"})}},
            {"C account nick alice", "C account sasl alice_acct", "C privmsg [#wonderland] hi all",
             "C notice [bob] ping me later", "C action [#wonderland] is away", "C quit [] Leaving"},
            "sasl alice_acct"},
        // weechat with IRCv3 client tags and labels; TAGMSG carries no text.
        SessionCase{
            "weechat_tags_client",
            {{true, crlf({"CAP LS 302", "NICK wee", "USER wee 0 * :WeeChat user", "CAP END", "@label=l1 JOIN #weechat",
                          "@+typing=active TAGMSG #weechat",
                          "@+draft/reply=msgid-123;label=l2 PRIVMSG #weechat :replying, with tags",
                          "@label=l3 NOTICE #weechat :tagged notice", "PING :irc.libera.chat"})}},
            {"C account nick wee", "C privmsg [#weechat] replying, with tags", "C notice [#weechat] tagged notice"},
            "nick wee"},
        // ngircd to the client: numerics name the client, relays from others are messages, only
        // the client's own nick change renames the account.
        SessionCase{
            "ngircd_server",
            {{false,
              crlf({":irc.example.net NOTICE * :*** Looking up your hostname...",
                    ":irc.example.net 001 alice :Welcome to the Internet Relay Network alice!~alice@localhost",
                    ":irc.example.net 005 alice CHANTYPES=#&+ PREFIX=(qaohv)~&@%+ :are supported on this server",
                    ":irc.example.net 376 alice :End of MOTD command", ":alice!~alice@localhost JOIN :#room",
                    ":irc.example.net 332 alice #room :Room topic", ":irc.example.net 353 alice = #room :alice @bob",
                    ":bob!~bob@example.com PRIVMSG #room :hi alice",
                    ":bob!~bob@example.com PRIVMSG #room :" + ctcp("ACTION waves"),
                    ":bob!~bob@example.com PRIVMSG alice :a private word",
                    ":bob!~bob@example.com NOTICE alice :a notice",
                    ":bob!~bob@example.com PRIVMSG alice :\x01VERSION\x01",
                    ":bob!~bob@example.com TOPIC #room :new topic", "PING :irc.example.net",
                    ":bob!~bob@example.com NICK :bobby", ":alice!~alice@localhost NICK :alice2",
                    ":bobby!~bob@example.com PART #room :see you", ":carol!~carol@h QUIT :Quit: gone",
                    ":bobby!~bob@example.com KICK #room alice2 :not here"})}},
            {"S notice [*] *** Looking up your hostname...", "S account nick alice", "S privmsg [#room] hi alice",
             "S action [#room] waves", "S privmsg [alice] a private word", "S notice [alice] a notice",
             "S topic [#room] new topic", "S account nick alice2", "S part [#room] see you", "S quit [] Quit: gone"},
            "nick alice2"},
        // Both directions of one SASL login (solanum/ergo with server-time tags): the claim, then
        // RPL_LOGGEDIN confirming it; later NICKs leave the account alone.
        SessionCase{"sasl_login_both_directions",
                    {{true, crlf({"CAP LS 302", "NICK alice", "USER alice 0 * :Alice", "CAP REQ :sasl"})},
                     {false, crlf({":ergo.test CAP * LS :sasl=PLAIN,EXTERNAL server-time message-tags",
                                   ":ergo.test CAP alice ACK :sasl"})},
                     {true, crlf({"AUTHENTICATE PLAIN"})},
                     {false, crlf({"AUTHENTICATE +"})},
                     {true, kSaslAlice},
                     {false, crlf({"@time=2024-05-01T10:00:00.000Z :ergo.test 900 alice alice!a@localhost alice_acct "
                                   ":You are now logged in as alice_acct",
                                   ":ergo.test 903 alice :SASL authentication successful"})},
                     {true, crlf({"CAP END", "NICK alice_away"})},
                     {false, crlf({":ergo.test 001 alice :Welcome", ":alice!a@localhost NICK alice_away",
                                   "@time=2024-05-01T10:00:01.000Z;msgid=abc :bob!b@h PRIVMSG #chan :tagged"})}},
                    {"C account nick alice", "C account sasl alice_acct", "S account logged_in alice_acct",
                     "S privmsg [#chan] tagged"},
                    "logged_in alice_acct"},
        // A bot writing LF-only lines, and a server mixing them with CR LF.
        SessionCase{"lf_lines",
                    {{true, "NICK lfbot\nPRIVMSG #bots :lf only\nPRIVMSG #bots :crlf\r\nQUIT :done\n"},
                     {false, ":srv 001 lfbot :hi\n:x!y@z PRIVMSG lfbot :back\n\n\r\n"}},
                    {"C account nick lfbot", "C privmsg [#bots] lf only", "C privmsg [#bots] crlf", "C quit [] done",
                     "S privmsg [lfbot] back"},
                    "nick lfbot"}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- Account --------------------------------------------------------------------------------------

TEST(IrcAccount, NickAndNickChanges) {
  Conn c;
  ASSERT_EQ(c.client_says(crlf({"NICK alice", "USER a 0 * :A", "NICK alice2", "NICK alice2", "nick :alice3"})),
            FeedResult::kOk);
  EXPECT_EQ(c.log, (std::vector<std::string>{"C account nick alice", "C account nick alice2",
                                             "C account nick alice3"}));  // an unchanged nick is not reported again
  EXPECT_TRUE(c.session.has_username);
  EXPECT_FALSE(c.session.account_truncated);
}

TEST(IrcAccount, NumericsConfirmTheNickTheServerKept) {
  Conn c;
  ASSERT_EQ(c.client_says(crlf({"NICK bob", "USER bob 0 * :Bob"})), FeedResult::kOk);
  // Refused before registration ("*"), so the client tries another nick, which the server confirms.
  ASSERT_EQ(c.server_says(crlf({":srv 433 * bob :Nickname is already in use"})), FeedResult::kOk);
  EXPECT_EQ(c.account(), "nick bob");
  ASSERT_EQ(c.client_says(crlf({"NICK bob_"})), FeedResult::kOk);
  ASSERT_EQ(c.server_says(crlf({":srv 001 bob_ :Welcome"})), FeedResult::kOk);
  // After registration a refused NICK does not stick: the refusal names the nick kept.
  ASSERT_EQ(c.client_says(crlf({"NICK trusted"})), FeedResult::kOk);
  EXPECT_EQ(c.account(), "nick trusted");
  ASSERT_EQ(c.server_says(crlf({":srv 433 bob_ trusted :Nickname is already in use"})), FeedResult::kOk);
  EXPECT_EQ(c.account(), "nick bob_");
  EXPECT_EQ(c.log, (std::vector<std::string>{"C account nick bob", "C account nick bob_", "C account nick trusted",
                                             "S account nick bob_"}));
}

TEST(IrcAccount, ServerRenamingTheClientUpdatesIt) {
  Conn c;
  ASSERT_EQ(c.server_says(crlf({":srv 001 Alice[1] :Welcome"})), FeedResult::kOk);
  // Services force a rename; the prefix matches under rfc1459 case mapping ([ and { are one).
  ASSERT_EQ(c.server_says(crlf({":alice{1}!a@h NICK Guest42", ":other!o@h NICK :alice", ":Guest!g@h NICK :x"})),
            FeedResult::kOk);
  EXPECT_EQ(c.account(), "nick Guest42");
  // A prefix longer than the account, or a prefix-less NICK from the server, renames nobody.
  ASSERT_EQ(c.server_says(crlf({":Guest42x!a@h NICK :y", "NICK :z"})), FeedResult::kOk);
  EXPECT_EQ(c.account(), "nick Guest42");
  EXPECT_EQ(c.log, (std::vector<std::string>{"S account nick Alice[1]", "S account nick Guest42"}));
}

TEST(IrcAccount, SaslPlainOverridesNick) {
  Conn c;
  ASSERT_EQ(
      c.client_says(crlf({"NICK alice", "AUTHENTICATE PLAIN"}) + sasl_plain("", "acct", "pw") + crlf({"NICK other"})),
      FeedResult::kOk);
  EXPECT_EQ(c.account(), "sasl acct");
  ASSERT_EQ(c.server_says(crlf({":srv 001 other :Welcome", ":other!u@h NICK :third"})), FeedResult::kOk);
  EXPECT_EQ(c.account(), "sasl acct");
  EXPECT_EQ(c.log, (std::vector<std::string>{"C account nick alice", "C account sasl acct"}));
}

TEST(IrcAccount, SaslAuthzidIsNotTheAccount) {
  Conn c;
  ASSERT_EQ(c.client_says(crlf({"AUTHENTICATE plain"}) + sasl_plain("admin", "carol", "pw")), FeedResult::kOk);
  EXPECT_EQ(c.account(), "sasl carol");
}

TEST(IrcAccount, SaslPayloadInChunksOf400) {
  // Payloads of 399, 400, 401 and 800 base64 bytes: with and without the final "+".
  for (size_t b64_len : {size_t{396}, size_t{400}, size_t{404}, size_t{800}}) {
    std::string authcid = "long_account_name";
    std::string password(b64_len / 4 * 3 - authcid.size() - 2, 'p');
    std::string lines = sasl_plain("", authcid, password);
    SCOPED_TRACE(b64_len);
    ASSERT_EQ(base64(plain_message("", authcid, password)).size(), b64_len);
    for (size_t chunk : {size_t{0}, size_t{1}, size_t{7}}) {
      Conn c;
      ASSERT_EQ(c.client_says(crlf({"NICK n", "AUTHENTICATE PLAIN"}) + lines, chunk), FeedResult::kOk);
      EXPECT_EQ(c.account(), "sasl long_account_name");
    }
  }
}

TEST(IrcAccount, LongSaslAccountIsTruncated) {
  std::string authcid(150, 'a');
  for (size_t i = 0; i < authcid.size(); ++i) authcid[i] = static_cast<char>('a' + i % 26);
  Conn c;
  ASSERT_EQ(c.client_says(crlf({"AUTHENTICATE PLAIN"}) + sasl_plain("", authcid, "pw")), FeedResult::kOk);
  EXPECT_EQ(c.account(), "sasl " + authcid.substr(0, Session::kAccountCap));
  EXPECT_TRUE(c.session.account_truncated);
}

TEST(IrcAccount, SaslWithoutAClaim) {
  const std::string cases[] = {
      crlf({"AUTHENTICATE PLAIN", "AUTHENTICATE *"}),                                            // aborted
      crlf({"AUTHENTICATE PLAIN", "AUTHENTICATE +"}),                                            // empty payload
      crlf({"AUTHENTICATE EXTERNAL", "AUTHENTICATE +"}),                                         // a certificate
      crlf({"AUTHENTICATE SCRAM-SHA-256", "AUTHENTICATE " + base64("n,,n=user,r=abc")}),         // not PLAIN
      crlf({"AUTHENTICATE PLAIN", "AUTHENTICATE " + base64("nonul")}),                           // malformed PLAIN
      crlf({"AUTHENTICATE PLAIN", "AUTHENTICATE AG%%ZQBwdw=="}),                                 // not base64
      crlf({"AUTHENTICATE PLAIN", "AUTHENTICATE " + base64(std::string("\0x\0pw", 5)) + "QQ"}),  // after padding
      crlf({"AUTHENTICATE PLAIN", "AUTHENTICATE " + base64(std::string("\0\0pw", 4))}),          // empty authcid
      sasl_plain("", "x", "pw"),  // no mechanism announced: read as one, not as a payload
  };
  for (const std::string& in : cases) {
    SCOPED_TRACE(in);
    Conn c;
    ASSERT_EQ(c.client_says(crlf({"NICK n"}) + in + crlf({"PRIVMSG #c :still decoding"})), FeedResult::kOk);
    EXPECT_EQ(c.account(), "nick n");
    EXPECT_EQ(c.log.back(), "C privmsg [#c] still decoding");
  }
  // After an abort, a new exchange is read afresh.
  Conn c;
  ASSERT_EQ(c.client_says(crlf({"AUTHENTICATE PLAIN", "AUTHENTICATE *", "AUTHENTICATE PLAIN"}) +
                          sasl_plain("", "second", "pw")),
            FeedResult::kOk);
  EXPECT_EQ(c.account(), "sasl second");
}

TEST(IrcAccount, SaslFailureRevertsToTheNick) {
  for (const char* numeric : {"902", "904", "905", "906"}) {
    SCOPED_TRACE(numeric);
    Conn c;
    ASSERT_EQ(c.client_says(crlf({"NICK mallory", "AUTHENTICATE PLAIN"}) + sasl_plain("", "admin", "guess")),
              FeedResult::kOk);
    EXPECT_EQ(c.account(), "sasl admin");
    ASSERT_EQ(c.server_says(crlf({std::string(":srv ") + numeric + " mallory :SASL authentication failed"})),
              FeedResult::kOk);
    EXPECT_EQ(c.account(), "nick mallory");
  }
  // Addressed to "*" (no nick yet): the account becomes unknown until the server names the client.
  Conn c;
  ASSERT_EQ(c.client_says(crlf({"AUTHENTICATE PLAIN"}) + sasl_plain("", "admin", "guess")), FeedResult::kOk);
  ASSERT_EQ(c.server_says(crlf({":srv 904 * :SASL authentication failed"})), FeedResult::kOk);
  EXPECT_EQ(c.account(), "none");
  EXPECT_FALSE(c.session.has_username);
  ASSERT_EQ(c.server_says(crlf({":srv 001 mal :Welcome"})), FeedResult::kOk);
  EXPECT_EQ(c.log, (std::vector<std::string>{"C account sasl admin", "S account none", "S account nick mal"}));
}

TEST(IrcAccount, LoggedInAndLoggedOut) {
  Conn c;
  ASSERT_EQ(c.client_says(crlf({"NICK dave"})), FeedResult::kOk);
  // NickServ IDENTIFY (no SASL): the server's 900 is the only sign of the account.
  ASSERT_EQ(c.server_says(crlf({":srv 001 dave :Welcome",
                                ":srv 900 dave dave!d@h DaveAccount :You are now logged in as DaveAccount"})),
            FeedResult::kOk);
  EXPECT_EQ(c.account(), "logged_in DaveAccount");
  // Neither NICK, SASL nor numerics replace a confirmed account.
  ASSERT_EQ(c.client_says(crlf({"NICK dave2", "AUTHENTICATE PLAIN"}) + sasl_plain("", "other", "pw")), FeedResult::kOk);
  ASSERT_EQ(c.server_says(crlf({":dave!d@h NICK dave2", ":srv 433 dave2 x :in use", ":srv 904 dave2 :failed"})),
            FeedResult::kOk);
  EXPECT_EQ(c.account(), "logged_in DaveAccount");
  ASSERT_EQ(c.server_says(crlf({":srv 901 dave2 dave2!d@h :You are now logged out"})), FeedResult::kOk);
  EXPECT_EQ(c.account(), "nick dave2");
  // A second 900 (re-authentication) replaces the first.
  ASSERT_EQ(c.server_says(crlf({":srv 900 dave2 dave2!d@h :acct2"})), FeedResult::kOk);
  EXPECT_EQ(c.account(), "logged_in acct2");
}

TEST(IrcAccount, NumericsFromTheClientAreIgnored) {
  Conn c;
  ASSERT_EQ(c.client_says(crlf({"NICK me", "900 me me!a@b admin :fake", "001 someone :x"})), FeedResult::kOk);
  EXPECT_EQ(c.account(), "nick me");
  // And the server's AUTHENTICATE challenge is not a client's.
  ASSERT_EQ(c.server_says(crlf({"AUTHENTICATE +", "AUTHENTICATE " + base64(std::string("\0x\0y", 4))})),
            FeedResult::kOk);
  EXPECT_EQ(c.account(), "nick me");
}

TEST(IrcAccount, LongNickIsTruncated) {
  std::string nick(130, 'n');
  Conn c;
  ASSERT_EQ(c.client_says(crlf({"NICK " + nick})), FeedResult::kOk);
  EXPECT_EQ(c.account(), "nick " + nick.substr(0, Session::kAccountCap));
  EXPECT_TRUE(c.session.account_truncated);
  ASSERT_EQ(c.client_says(crlf({"NICK short"})), FeedResult::kOk);
  EXPECT_FALSE(c.session.account_truncated);
  // The server renaming a client whose truncated nick starts its prefix.
  Conn d;
  ASSERT_EQ(d.client_says(crlf({"NICK " + nick})), FeedResult::kOk);
  ASSERT_EQ(d.server_says(crlf({":" + nick + "!u@h NICK :renamed"})), FeedResult::kOk);
  EXPECT_EQ(d.account(), "nick renamed");
}

// Scans every byte the decoders and the session hold, and everything reported.
bool holds(const Conn& c, const std::string& secret) {
  std::string mem(reinterpret_cast<const char*>(&c.client), sizeof(IrcDecoder));
  mem.append(reinterpret_cast<const char*>(&c.server), sizeof(IrcDecoder));
  mem.append(reinterpret_cast<const char*>(&c.session), sizeof(Session));
  for (const std::string& l : c.log) mem += l;
  return mem.find(secret) != std::string::npos;
}

TEST(IrcAccount, PasswordsAreNeverKept) {
  const std::string password = "correct-horse-battery";
  for (size_t chunk : {size_t{0}, size_t{1}, size_t{5}}) {
    SCOPED_TRACE(chunk);
    Conn c;
    std::string in = crlf({"PASS serverpassword", "NICK alice", "AUTHENTICATE PLAIN"}) +
                     sasl_plain("", "alice", password) +
                     crlf({"OPER alice operpassword", "JOIN #secret channelkey", "PRIVMSG #c :hello"});
    ASSERT_EQ(c.client_says(in, chunk), FeedResult::kOk);
    EXPECT_EQ(c.account(), "sasl alice");
    for (const std::string& s : {password, base64(password), std::string("serverpassword"), std::string("operpassword"),
                                 std::string("channelkey")}) {
      EXPECT_FALSE(holds(c, s)) << s;
    }
    // Not even a payload sent without announcing PLAIN (read as a mechanism name).
    std::string blob = base64(plain_message("", "alice", password));
    ASSERT_EQ(c.client_says(crlf({"AUTHENTICATE " + blob})), FeedResult::kOk);
    EXPECT_FALSE(holds(c, blob.substr(0, 12)));
  }
}

// ---- Messages ------------------------------------------------------------------------------------

struct LineCase {
  const char* name;
  bool from_client;
  std::string line;
  std::vector<std::string> log;  // without the direction
};

void PrintTo(const LineCase& c, std::ostream* os) { *os << c.name; }

class LineTest : public ::testing::TestWithParam<LineCase> {};

TEST_P(LineTest, ReportsTheMessage) {
  const LineCase& c = GetParam();
  std::vector<std::string> expected;
  for (const std::string& e : c.log) expected.push_back((c.from_client ? "C " : "S ") + e);
  for (size_t chunk = 0; chunk <= c.line.size(); ++chunk) {
    SCOPED_TRACE(chunk);
    Conn conn;
    ASSERT_EQ(conn.feed(c.from_client, c.line, chunk), FeedResult::kOk)
        << irc_error_name(conn.dec(c.from_client).error());
    EXPECT_EQ(conn.log, expected);
    EXPECT_TRUE(conn.violations().empty()) << conn.violations()[0];
    EXPECT_TRUE(conn.dec(c.from_client).at_line_boundary());
    if (HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Irc, LineTest,
    ::testing::Values(
        LineCase{"privmsg_channel", true, "PRIVMSG #room :hello there\r\n", {"privmsg [#room] hello there"}},
        LineCase{"privmsg_ampersand_channel", true, "PRIVMSG &local :x\r\n", {"privmsg [&local] x"}},
        LineCase{"privmsg_user", true, "PRIVMSG bob :hi bob\r\n", {"privmsg [bob] hi bob"}},
        LineCase{"notice_user", true, "NOTICE bob :fyi\r\n", {"notice [bob] fyi"}},
        LineCase{
            "notice_channel_from_server", false, ":bob!b@h NOTICE #room :heads up\r\n", {"notice [#room] heads up"}},
        LineCase{"target_list_kept_whole", true, "PRIVMSG #a,#b,carol :to all\r\n", {"privmsg [#a,#b,carol] to all"}},
        LineCase{"text_without_colon", true, "PRIVMSG #room word\r\n", {"privmsg [#room] word"}},
        // Surplus parameters stay in the body: some servers join them into the text.
        LineCase{"text_runs_to_line_end",
                 true,
                 "PRIVMSG #room hello world :and more\r\n",
                 {"privmsg [#room] hello world :and more"}},
        LineCase{"colon_inside_text", true, "PRIVMSG #room ::) a: b\r\n", {"privmsg [#room] :) a: b"}},
        LineCase{"lowercase_command", true, "privmsg #room :lower\r\n", {"privmsg [#room] lower"}},
        LineCase{"runs_of_spaces", true, "  PRIVMSG   #room    :spaced  out  \r\n", {"privmsg [#room] spaced  out  "}},
        LineCase{"empty_text_is_no_message", true, "PRIVMSG #room :\r\nNOTICE bob\r\nPRIVMSG #room   \r\n", {}},
        LineCase{"no_target_is_no_message", true, "PRIVMSG :#room\r\nPRIVMSG\r\n", {}},
        LineCase{"cprivmsg",
                 true,
                 "CPRIVMSG bob #room :via channel\r\nCNOTICE bob #room :n\r\n",
                 {"privmsg [bob] via channel", "notice [bob] n"}},
        LineCase{"action",
                 true,
                 "PRIVMSG #room :\x01"
                 "ACTION waves\x01\r\n",
                 {"action [#room] waves"}},
        LineCase{"action_lowercase_no_final_soh",
                 true,
                 "PRIVMSG #room :\x01"
                 "action waves\r\n",
                 {"action [#room] waves"}},
        LineCase{"action_empty",
                 true,
                 "PRIVMSG #room :\x01"
                 "ACTION\x01\r\nPRIVMSG #room :\x01"
                 "ACTION\r\n",
                 {"action [#room] ", "action [#room] "}},
        LineCase{"action_inner_soh_kept",
                 true,
                 "PRIVMSG #room :" + ctcp("ACTION a") + "b \x01\x01\r\n",
                 {"action [#room] a\x01"
                  "b \x01"}},
        LineCase{"action_to_user",
                 true,
                 "PRIVMSG bob :\x01"
                 "ACTION hugs bob\x01\r\n",
                 {"action [bob] hugs bob"}},
        LineCase{"action_in_notice",
                 true,
                 "NOTICE #room :\x01"
                 "ACTION bows\x01\r\n",
                 {"notice [#room] bows"}},
        LineCase{"other_ctcp_skipped",
                 true,
                 "PRIVMSG bob :\x01VERSION\x01\r\nNOTICE alice :\x01VERSION irssi 1.4.5\x01\r\n"
                 "PRIVMSG bob :\x01PING 1700000000\x01\r\nPRIVMSG bob :\x01"
                 "ACTIONS x\x01\r\n"
                 "PRIVMSG bob :\x01"
                 "ACT\r\nPRIVMSG bob :\x01\r\n"
                 "PRIVMSG bob :\x01"
                 "DCC SEND file.txt 2130706433 5000 100\x01\r\n",
                 {}},
        LineCase{"soh_later_in_text_is_text",
                 true,
                 "PRIVMSG #room :hi \x01VERSION\x01\r\n",
                 {"privmsg [#room] hi \x01VERSION\x01"}},
        LineCase{"topic", true, "TOPIC #room :a new topic\r\n", {"topic [#room] a new topic"}},
        LineCase{"topic_cleared", true, "TOPIC #room :\r\n", {"topic [#room] "}},
        LineCase{"topic_query_is_no_message", true, "TOPIC #room\r\nTOPIC #room \r\n", {}},
        LineCase{"topic_relay", false, ":op!o@h TOPIC #room :set by op\r\n", {"topic [#room] set by op"}},
        LineCase{"topic_ctcp_is_text",
                 true,
                 "TOPIC #room :\x01"
                 "ACTION x\x01\r\n",
                 {"topic [#room] \x01"
                  "ACTION x\x01"}},
        LineCase{"part", true, "PART #a,#b :gone fishing\r\n", {"part [#a,#b] gone fishing"}},
        LineCase{"part_without_text", true, "PART #room\r\nPART #room :\r\n", {}},
        LineCase{"part_relay", false, ":bob!b@h PART #room :bye\r\n", {"part [#room] bye"}},
        LineCase{"quit", true, "QUIT :so long\r\n", {"quit [] so long"}},
        LineCase{"quit_without_text", true, "QUIT\r\nQUIT :\r\n", {}},
        LineCase{"quit_relay_with_long_prefix",
                 false,
                 ":" + std::string(200, 'q') + "!u@h QUIT :Quit: bye\r\n",
                 {"quit [] Quit: bye"}},
        LineCase{"others_skipped",
                 true,
                 "PASS secret\r\nUSER u 0 * :Real Name\r\nJOIN #a,#b k1,k2\r\nMODE #a +o bob\r\n"
                 "PING :x\r\nPONG :x\r\nCAP REQ :sasl\r\nKICK #a bob :reason\r\nAWAY :brb\r\n"
                 "WHO #a\r\nPRIVMSGX #a :x\r\nPRIV-MSG #a :x\r\nAUTHENTICATEX PLAIN\r\n123 #a :x\r\n:\r\n \r\n",
                 {}},
        LineCase{"server_numerics_skipped",
                 false,
                 ":srv 332 me #room :topic on join\r\n:srv 372 me :- motd\r\n:srv 0012 me :x\r\n"
                 ":srv PING :x\r\nERROR :Closing link\r\n",
                 {"account nick me"}},  // only the nick they are addressed to
        LineCase{"tags_and_prefix",
                 false,
                 "@time=2024-01-01T00:00:00Z;msgid=x\\sy :bob!b@h PRIVMSG #room :tagged\r\n",
                 {"privmsg [#room] tagged"}},
        LineCase{"tags_runs_of_spaces", true, "@a=b   PRIVMSG #room :x\r\n", {"privmsg [#room] x"}},
        LineCase{"tag_only_line_ignored", true, "@a=b\r\n@+typing=active\r\n", {}},
        LineCase{"at_sign_not_first_is_not_tags", true, " @a=b PRIVMSG #r :x\r\n", {}},
        LineCase{"nul_is_a_byte",
                 true,
                 std::string("PRIVMSG #room :a\0b\r\n", 20),
                 {std::string("privmsg [#room] a\0b", 19)}},
        LineCase{"server_notice_before_registration",
                 false,
                 "NOTICE AUTH :*** Checking Ident\r\n",
                 {"notice [AUTH] *** Checking Ident"}}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- Lines ---------------------------------------------------------------------------------------

TEST(IrcLines, LoneCrFromTheClientIsAViolation) {
  for (const std::string& in :
       {std::string("PRIVMSG #c :a\rb\r\n"), std::string("PING x\rPRIVMSG #c :hidden\n"), std::string("\r\r\n")}) {
    for (size_t chunk : {size_t{0}, size_t{1}, size_t{2}}) {
      Conn c;
      EXPECT_EQ(c.client_says(in, chunk), FeedResult::kError);
      EXPECT_EQ(c.client.error(), IrcError::kStrayCr);
      EXPECT_EQ(c.client_says("PRIVMSG #c :more\r\n"), FeedResult::kError);  // not fed again
    }
  }
}

TEST(IrcLines, LoneCrFromTheServerIsText) {
  for (size_t chunk : {size_t{0}, size_t{1}, size_t{2}}) {
    Conn c;
    ASSERT_EQ(c.server_says(":b!u@h PRIVMSG #c :a\rb\r\r\n:b!u@h PRIVMSG #c\r :x\r\n:b!u@h PRIVMSG #c :"
                            "\x01"
                            "ACTION y\x01\r\r\n",
                            chunk),
              FeedResult::kOk);
    EXPECT_EQ(c.log,
              (std::vector<std::string>{"S privmsg [#c] a\rb\r", "S privmsg [#c\r] x", "S action [#c] y\x01\r"}));
    EXPECT_TRUE(c.server.at_line_boundary());
  }
}

TEST(IrcLines, CrAtTheEndOfInputWaitsForTheNextByte) {
  Conn c;
  ASSERT_EQ(c.client_says("PRIVMSG #c :x\r"), FeedResult::kOk);
  EXPECT_FALSE(c.client.at_line_boundary());
  EXPECT_TRUE(c.log.empty());
  ASSERT_EQ(c.client_says(""), FeedResult::kOk);
  ASSERT_EQ(c.client_says("\n"), FeedResult::kOk);
  EXPECT_EQ(c.log, (std::vector<std::string>{"C privmsg [#c] x"}));
  EXPECT_TRUE(c.client.at_line_boundary());
}

TEST(IrcLines, BodyIsStreamedAsItArrives) {
  Conn c;
  ASSERT_EQ(c.server_says(":a!b@c PRIVMSG #room :first part "), FeedResult::kOk);
  EXPECT_EQ(c.server_sink.body, "first part ");
  ASSERT_EQ(c.server_says("and the rest\r\n"), FeedResult::kOk);
  EXPECT_EQ(c.log, (std::vector<std::string>{"S privmsg [#room] first part and the rest"}));
}

// ---- Limits --------------------------------------------------------------------------------------

// A PRIVMSG whose message part (terminator included) is exactly `total` bytes.
std::string privmsg_of(size_t total, const std::string& terminator) {
  std::string head = "PRIVMSG #c :";
  return head + std::string(total - head.size() - terminator.size(), 'x') + terminator;
}

std::string tags_of(size_t section) {  // '@' ... ' ' of exactly `section` bytes
  std::string t = "@k=";
  return t + std::string(section - t.size() - 1, 'v') + " ";
}

struct LimitCase {
  const char* name;
  std::string input;
  IrcError error;  // kNone: accepted
};

void PrintTo(const LimitCase& c, std::ostream* os) { *os << c.name; }

class LimitTest : public ::testing::TestWithParam<LimitCase> {};

TEST_P(LimitTest, CountsExactly) {
  const LimitCase& c = GetParam();
  for (bool from_client : {true, false}) {
    for (size_t chunk :
         {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{511}, size_t{512}, size_t{513}, size_t{4096}}) {
      SCOPED_TRACE(::testing::Message() << "client " << from_client << " chunk " << chunk);
      Conn conn;
      FeedResult r = conn.feed(from_client, c.input, chunk);
      EXPECT_EQ(conn.dec(from_client).error(), c.error) << irc_error_name(conn.dec(from_client).error());
      EXPECT_EQ(r, c.error == IrcError::kNone ? FeedResult::kOk : FeedResult::kError);
      EXPECT_TRUE(conn.violations().empty());
      if (c.error == IrcError::kNone) {
        EXPECT_EQ(conn.log.size(), 1u);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Irc, LimitTest,
    ::testing::Values(
        LimitCase{"crlf_512", privmsg_of(512, "\r\n"), IrcError::kNone},
        LimitCase{"crlf_513", privmsg_of(513, "\r\n"), IrcError::kLineTooLong},
        LimitCase{"lf_512", privmsg_of(512, "\n"), IrcError::kNone},
        LimitCase{"lf_513", privmsg_of(513, "\n"), IrcError::kLineTooLong},
        LimitCase{"no_terminator_far_beyond", privmsg_of(5000, "\n").substr(0, 4000), IrcError::kLineTooLong},
        LimitCase{"skipped_line_too", "PING :" + std::string(600, 'p') + "\r\n", IrcError::kLineTooLong},
        LimitCase{"tags_8191_and_message_512", tags_of(8191) + privmsg_of(512, "\r\n"), IrcError::kNone},
        LimitCase{"tags_8192", tags_of(8192) + privmsg_of(100, "\r\n"), IrcError::kTagsTooLong},
        LimitCase{"tags_8191_and_message_513", tags_of(8191) + privmsg_of(513, "\r\n"), IrcError::kLineTooLong},
        LimitCase{"tags_without_end", "@" + std::string(9000, 't'), IrcError::kTagsTooLong},
        LimitCase{"spaces_after_tags_count_in_message", tags_of(100) + " " + privmsg_of(512, "\r\n"),
                  IrcError::kLineTooLong},
        LimitCase{"prefix_counts", ":" + std::string(400, 'p') + " " + privmsg_of(111, "\r\n"), IrcError::kLineTooLong},
        LimitCase{"prefix_at_limit", ":" + std::string(400, 'p') + " " + privmsg_of(110, "\r\n"), IrcError::kNone}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(IrcLimits, MessageCutByTheLimitIsReportedUpToIt) {
  Conn c;
  EXPECT_EQ(c.client_says(privmsg_of(600, "\r\n")), FeedResult::kError);
  EXPECT_EQ(c.client.error(), IrcError::kLineTooLong);
  EXPECT_EQ(c.client_sink.body, std::string(512 - 12, 'x'));  // the bytes within the limit, no more
  EXPECT_TRUE(c.log.empty());                                 // never completed
}

TEST(IrcLimits, ConfiguredLimits) {
  Conn c(1024, 100);
  ASSERT_EQ(c.client_says(tags_of(100) + privmsg_of(1024, "\r\n")), FeedResult::kOk);
  EXPECT_EQ(c.log.size(), 1u);
  Conn d(1024, 100);
  EXPECT_EQ(d.client_says(tags_of(101) + privmsg_of(20, "\r\n")), FeedResult::kError);
  EXPECT_EQ(d.client.error(), IrcError::kTagsTooLong);
  Conn e(1024, 100);
  EXPECT_EQ(e.client_says(privmsg_of(1025, "\n")), FeedResult::kError);
  EXPECT_EQ(e.client.error(), IrcError::kLineTooLong);
}

TEST(IrcLimits, TargetLongerThanTheCap) {
  std::string at_cap(kIrcTargetCap, 'c');
  at_cap[0] = '#';
  std::string over = at_cap + "c";
  {
    Conn c;
    ASSERT_EQ(c.client_says("PRIVMSG " + at_cap + " :x\r\n"), FeedResult::kOk);
    EXPECT_EQ(c.log, (std::vector<std::string>{"C privmsg [" + at_cap + "] x"}));
  }
  for (const std::string& line : {"PRIVMSG " + over + " :x\r\n", "TOPIC " + over + " :\r\n",
                                  "PART " + over + " :bye\r\n", ":a!b@c NOTICE " + over + " :x\r\n"}) {
    SCOPED_TRACE(line);
    for (bool from_client : {true, false}) {
      Conn c;
      EXPECT_EQ(c.feed(from_client, line), FeedResult::kError);
      EXPECT_EQ(c.dec(from_client).error(), IrcError::kTargetTooLong);
      EXPECT_TRUE(c.log.empty());
    }
  }
  // Lines that are no message are skipped whatever their first parameter.
  Conn c;
  ASSERT_EQ(c.client_says("PART " + over + "\r\nPRIVMSG " + over + " :\x01VERSION\x01\r\nJOIN " + over +
                          "\r\nPRIVMSG " + over + " :\r\nQUIT :" + over + "\r\n"),
            FeedResult::kOk);
  EXPECT_EQ(c.log, (std::vector<std::string>{"C quit [] " + over}));
}

// ---- Stopping ------------------------------------------------------------------------------------

TEST(IrcStop, SinkReturningFalseStopsAtThatCallback) {
  std::string in = crlf({"NICK a", "AUTHENTICATE PLAIN"}) + sasl_plain("", "acct", "pw") +
                   crlf({"PRIVMSG #c :hello", "PRIVMSG #c :" + ctcp("ACTION waves"), "TOPIC #c :", "QUIT :bye"});
  Conn whole;
  ASSERT_EQ(whole.client_says(in), FeedResult::kOk);
  const int total = whole.client_sink.calls;
  ASSERT_EQ(total, 2 + 6 + 6 + 5 + 5);  // accounts, privmsg, action, empty topic, quit
  for (size_t chunk : {size_t{0}, size_t{1}}) {
    for (int n = 1; n <= total; ++n) {
      SCOPED_TRACE(::testing::Message() << "chunk " << chunk << " stop at " << n);
      Conn c;
      c.client_sink.stop_after = n;
      EXPECT_EQ(c.client_says(in, chunk), FeedResult::kStopped);
      EXPECT_EQ(c.client_sink.calls, n);  // nothing is called after the refusal
    }
  }
  Conn c;
  c.client_sink.stop_after = total + 1;
  EXPECT_EQ(c.client_says(in), FeedResult::kOk);
}

// ---- Errors and state ----------------------------------------------------------------------------

TEST(IrcErrors, NamesAreStableAndDistinct) {
  EXPECT_STREQ(irc_error_name(IrcError::kNone), "none");
  EXPECT_STREQ(irc_error_name(IrcError::kLineTooLong), "line_too_long");
  EXPECT_STREQ(irc_error_name(IrcError::kTagsTooLong), "tags_too_long");
  EXPECT_STREQ(irc_error_name(IrcError::kStrayCr), "stray_cr");
  EXPECT_STREQ(irc_error_name(IrcError::kTargetTooLong), "target_too_long");
  EXPECT_STREQ(irc_error_name(static_cast<IrcError>(200)), "unknown");
}

TEST(IrcState, IsSmallAndFixed) {
  EXPECT_LE(sizeof(IrcDecoder), 288u);
  std::cout << "[ info ] sizeof(IrcDecoder) = " << sizeof(IrcDecoder) << "\n";
}

// ---- Fuzz ----------------------------------------------------------------------------------------

// Joins pieces drawn in order: a braced list is evaluated left to right, function arguments and
// the operands of + are not, and the corpus must not depend on the compiler.
std::string join(std::initializer_list<std::string> pieces) {
  std::string out;
  for (const std::string& p : pieces) out += p;
  return out;
}

std::string random_line(std::mt19937& rng, bool from_client) {
  auto pick = [&](std::initializer_list<const char*> l) { return std::string(*(l.begin() + rng() % l.size())); };
  auto word = [&](size_t max) {
    std::string s(1 + rng() % max, 'a');
    for (char& c : s) c = "abcdefghijklmnopqrstuvwxyz_#&,*"[rng() % 31];
    return s;
  };
  auto text = [&](size_t max) {
    std::string s(rng() % (max + 1), 'a');
    for (char& c : s) c = " abcdef:\x01\r@!"[rng() % 12];
    return s;
  };
  std::string line;
  if (rng() % 4 == 0) line += join({"@", word(8), "=", word(20), ";+", word(6), " "});
  if (!from_client || rng() % 8 == 0) line += join({":", word(10), "!", word(5), "@", word(8), " "});
  switch (rng() % 16) {
    case 0: line += join({pick({"PRIVMSG ", "NOTICE ", "privmsg "}), word(12), " :", text(40)}); break;
    case 1:
      line += join({"PRIVMSG ", word(8), " :\x01", pick({"ACTION ", "action", "VERSION", "ACT"}), text(20)});
      break;
    case 2: line += join({pick({"TOPIC ", "PART "}), word(10), pick({" :", " ", ""}), text(30)}); break;
    case 3: line += join({"QUIT", pick({" :", " ", ""}), text(30)}); break;
    case 4: line += join({"NICK ", pick({":", ""}), word(12)}); break;
    case 5: line += pick({"AUTHENTICATE PLAIN", "AUTHENTICATE *", "AUTHENTICATE +", "AUTHENTICATE EXTERNAL"}); break;
    case 6: {
      std::string authzid = pick({"", "z"});
      std::string authcid = word(10);
      std::string password = word(8);
      line += "AUTHENTICATE " + base64(plain_message(authzid, authcid, password));
      break;
    }
    case 7:
      line += join({pick({"001 ", "433 ", "900 ", "901 ", "904 "}), pick({"*", "me", "bob"}), " x!y@z acct :t"});
      break;
    case 8: line += join({"CPRIVMSG ", word(5), " ", word(5), " :", text(20)}); break;
    case 9: line += pick({"PING :x", "JOIN #a key", "PASS pw", "CAP LS 302", "MODE #a +b x"}); break;
    case 10:
      line += join({"PRIVMSG ", word(3), " :", std::string(rng() % 600, 'L')});
      break;  // near and over the limit
    case 11: line = "@" + std::string(8185 + rng() % 10, 't') + " PRIVMSG #t :tagged"; break;
    case 12: line += join({"PART #", std::string(124 + rng() % 8, 'c'), pick({" :bye", ""})}); break;
    default: {
      line.resize(rng() % 40);
      for (char& c : line) c = static_cast<char>(rng());
      break;
    }
  }
  line += rng() % 24 == 0 ? pick({"\r", ""}) : pick({"\r\n", "\n"});  // a lone CR, or lines run together
  return line;
}

struct FuzzOutcome {
  FeedResult result;
  IrcError error;
  std::vector<std::string> log;
  std::string account;
  bool boundary;
};

FuzzOutcome run_fuzz_input(const std::string& buf, bool from_client, std::mt19937* chunker) {
  Conn c;
  FeedResult r = FeedResult::kOk;
  size_t off = 0;
  while (off < buf.size()) {
    size_t n = buf.size() - off;
    if (chunker) n = std::min(n, size_t{1} + (*chunker)() % 37);
    r = c.feed_piece(from_client, buf.data() + off, n);
    off += n;
    if (r == FeedResult::kError) {
      EXPECT_NE(c.dec(from_client).error(), IrcError::kNone);
      break;
    }
    EXPECT_EQ(c.dec(from_client).error(), IrcError::kNone);
    EXPECT_EQ(r, FeedResult::kOk);  // the sink never stops
  }
  EXPECT_TRUE(c.violations().empty()) << c.violations()[0];
  EXPECT_LE(c.session.account_len, Session::kAccountCap);
  return {r, c.dec(from_client).error(), c.log, c.account(), c.dec(from_client).at_line_boundary()};
}

TEST(IrcFuzz, RandomAndMutatedInputsAreHandledConsistently) {
  std::mt19937 rng(0x1ec0ffee);
  int errors = 0;
  int by_error[5] = {};
  int messages = 0;
  int accounts = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    bool from_client = rng() % 2 == 0;
    std::string buf;
    int lines = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < lines; ++i) buf += random_line(rng, from_client);
    int mutations = static_cast<int>(rng() % 4);
    for (int i = 0; i < mutations && !buf.empty(); ++i) {
      size_t at = rng() % buf.size();
      switch (rng() % 5) {
        case 0: buf[at] = static_cast<char>(rng()); break;
        case 1: buf[at] = static_cast<char>(buf[at] ^ (1u << (rng() % 8))); break;
        case 2: buf.insert(at, 1, " :\r\n\x01@"[rng() % 6]); break;
        case 3: buf.insert(at, buf.substr(at, rng() % 700)); break;  // repeats: longer lines
        default: buf.resize(at); break;
      }
    }
    SCOPED_TRACE(::testing::Message() << "iteration " << iter);
    FuzzOutcome one = run_fuzz_input(buf, from_client, nullptr);
    FuzzOutcome chunked = run_fuzz_input(buf, from_client, &rng);
    EXPECT_EQ(one.result, chunked.result);
    EXPECT_EQ(one.error, chunked.error);
    EXPECT_EQ(one.log, chunked.log);
    EXPECT_EQ(one.account, chunked.account);
    if (one.result == FeedResult::kOk) {
      EXPECT_EQ(one.boundary, chunked.boundary);
    }
    if (one.result == FeedResult::kError) {
      ++errors;
      ++by_error[static_cast<int>(one.error) % 5];
    }
    for (const std::string& l : one.log) (l.compare(2, 7, "account") == 0 ? accounts : messages)++;
    if (HasFailure()) break;
  }
  // The corpus must reach the error paths and the happy ones.
  std::cout << "[ info ] " << errors << " errors, " << messages << " messages, " << accounts << " account changes\n";
  EXPECT_GT(errors, 400);
  for (IrcError e : {IrcError::kLineTooLong, IrcError::kTagsTooLong, IrcError::kStrayCr, IrcError::kTargetTooLong}) {
    std::cout << "[ info ] " << irc_error_name(e) << ": " << by_error[static_cast<int>(e)] << "\n";
    EXPECT_GT(by_error[static_cast<int>(e)], 20) << irc_error_name(e);
  }
  EXPECT_GT(messages, 800);
  EXPECT_GT(accounts, 150);
}

}  // namespace
}  // namespace imf::dp::proto
