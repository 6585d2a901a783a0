// Streaming IRC decoder (RFC 1459 / RFC 2812 lines, IRCv3 message tags) for one direction of one
// TCP connection.
//
// Bytes are fed as they arrive, in order, in chunks of any size. Each line is
//   ['@' tags ' '] [':' prefix ' '] command [' ' middle]* [' ' ':' trailing] (CR LF | LF)
// Tags are skipped; of the prefix only the nick is kept; commands are letters or 3 digits,
// matched case-insensitively (as servers do); runs of spaces separate parameters (RFC 1459
// allows them, servers accept them). Only short fields are buffered — the command (12 bytes), the
// first parameter or the prefix nick (kIrcTargetCap) — and a message's text is streamed to the
// sink as it arrives, so memory per direction is constant (static_assert below).
//
// Line ends: LF, or CR LF. A lone CR (a CR followed by anything but LF) is not a line end:
//   - from the client it is a violation (kStrayCr): servers disagree on it (ngircd and solanum
//     end the line there), so "PING x\rPRIVMSG #c :text" is two commands to them and one skipped
//     PING to a decoder that read CR as a byte; the RFC forbids CR inside a message anyway;
//   - from the server it is an ordinary byte of the line, part of whatever field holds it: a
//     server forwarding one does not split there, the text around it is still judged, and a
//     third party's text must not get the receiving client's connection reset.
// NUL is an ordinary byte (servers written in C stop reading the line there, so they act on a
// prefix of what the decoder judges).
//
// Limits, counted exactly and independently of chunking (the violation fires at the first byte
// beyond the limit; the bytes before it were decoded and their events delivered, so a message cut
// by a violation has no on_body_end/on_message_end):
//   - the tag section, from the leading '@' through the first space after it, is at most
//     max_tags bytes (IRCv3 message-tags: 8191 "including the leading '@' and trailing space");
//     longer is kTagsTooLong. A line that ends inside its tag section has no command and is
//     ignored; its terminator then counts with the tags.
//   - the message part, everything after the tag section (or the whole line when it has no tags)
//     through the terminator, CR and LF included, is at most max_message bytes (RFC 2812 2.3: 512
//     "counting all characters including the trailing CR-LF"), so a CR LF line carries at most
//     510 bytes of prefix, command and parameters and an LF line 511. Spaces after the tag
//     section count here. Longer is kLineTooLong.
// Servers cut or reject longer lines; which part of the surplus a server would act on cannot be
// known here, so the caller resets the connection (kError). Servers configured for longer lines
// (IRCv3 maxline, InspIRCd <limits>) need a decoder built with those limits.
//
// Messages (one event sequence each, see decoder.h; the channel is the first parameter as sent —
// "#chan", "&chan", a nick, or a comma-separated target list kept whole — and the body is the
// text parameter):
//   PRIVMSG/NOTICE <target> <text>            kIrcPrivmsg / kIrcNotice
//   CPRIVMSG/CNOTICE <nick> <channel> <text>  the same (hybrid/solanum variants that deliver to
//                                             <nick>, the channel)
//   PRIVMSG <target> :\x01ACTION <text>\x01   kIrcAction, body <text>: without the \x01
//                                             delimiters, "ACTION" (any case) and one space; the
//                                             final \x01 is dropped only when it is the line's last
//                                             byte, and may be missing. In a NOTICE: kIrcNotice
//                                             with the same body.
//   TOPIC <channel> <text>                    kIrcTopic; an empty text (clearing the topic) is a
//                                             message with an empty body; no text (a query) is not
//   PART <channels> <text>                    kIrcPart, only with a non-empty text
//   QUIT <text>                               kIrcQuit, no channel, only with a non-empty text
// in both directions: a server's relay (":alice!u@h PRIVMSG #room :hi") and its own notices
// (":irc.example NOTICE * :*** Looking up your hostname") are messages the receiving client gets.
// The text parameter is everything from its first byte to the end of the line (a leading ':'
// removed): "PRIVMSG #c hello world" gives "hello world", as servers differ on surplus parameters
// (InspIRCd joins them into the text, solanum drops them) and the body must cover what any
// receiver delivers. PRIVMSG/NOTICE with an empty text are not messages (servers answer 412).
// Other CTCPs (text starting with \x01: VERSION, PING, TIME, DCC...) are client metadata, not
// conversation: the line is skipped. Everything else (PING, PONG, JOIN, MODE, KICK, CAP, USER,
// PASS, TAGMSG, numerics other than below) is skipped without buffering; no parameter of PASS,
// OPER or JOIN is ever copied.
//
// Account (Session::account, has_username = true while it is known), shared by both directions
// through the Session; where it came from is kept in Session::account_source as an IrcAccountSource,
// which decides what may replace it:
//   client: NICK <nick>                       source kNick (replaces kNone/kNick)
//   client: AUTHENTICATE PLAIN, then AUTHENTICATE <base64 of authzid\0authcid\0passwd> in one or
//           more 400-byte chunks (a final "+" after an exact multiple; "*" aborts): the authcid,
//           source kSasl (replaces all but kLoggedIn). The password is decoded and dropped; the
//           base64 state is wiped when the exchange ends, the mechanism field at the end of each
//           AUTHENTICATE line (a payload sent unannounced is read as a mechanism name).
//   server: 900 <nick> <nick!ident@host> <account> :...   RPL_LOGGEDIN: source kLoggedIn, always
//   server: 901 (logged out); 902, 904, 905, 906 (SASL failed or aborted): the claim is dropped
//           (from kLoggedIn/kSasl on 901, from kSasl on the others) for the nick the numeric is
//           addressed to, or kNone when it is "*".
//   server: any other numeric: its first parameter is the client's nick as the server knows it;
//           unless "*", it replaces a kNone/kNick account (so a NICK the server refused with 433
//           does not stick).
//   server: :<old>!u@h NICK <new> where <old> is the account (kNick source, rfc1459 case
//           mapping): source kNick. Other users' nick changes are ignored.
// on_account is called at the end of the line that changed the account (value, truncation or
// source), never inside a message. Values longer than Session::kAccountCap are truncated
// (account_truncated).
//
// Thread model: one decoder per flow direction, used by the owning lcore only. No allocation;
// nothing is read outside [p, p + n).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "proto/decoder.h"

namespace imf::dp::proto {

// Stable values: records and counters carry them (names from irc_error_name).
enum class IrcError : uint8_t {
  kNone = 0,
  kLineTooLong = 1,    // the message part, terminator included, is over max_message bytes
  kTagsTooLong = 2,    // the tag section, '@' through its space, is over max_tags bytes
  kStrayCr = 3,        // from the client: a CR not followed by LF
  kTargetTooLong = 4,  // a message's channel (first parameter) is over kIrcTargetCap bytes
};

// Stable snake_case name of `e` ("line_too_long"...); "unknown" for a value outside the enum.
// Any thread.
const char* irc_error_name(IrcError e);

// Where Session::account came from, stored in Session::account_source so that both
// directions of a connection apply the same precedence. Stable values.
enum class IrcAccountSource : uint8_t {
  kNone = 0,      // no account known
  kNick = 1,      // the nick (client NICK, numerics, the server's NICK relay)
  kSasl = 2,      // the authcid of a SASL PLAIN exchange, until the server confirms or refuses
  kLoggedIn = 3,  // RPL_LOGGEDIN (900)
};

inline IrcAccountSource irc_account_source(const Session& s) { return static_cast<IrcAccountSource>(s.account_source); }

inline constexpr uint16_t kIrcMaxMessage = 512;  // RFC 2812 2.3
inline constexpr uint16_t kIrcMaxTags = 8191;    // IRCv3 message-tags, size limit
// Longest channel (first parameter) a message may have. Channel names are at most 50 (RFC 2812)
// or CHANNELLEN (64 on most servers), nicks fewer; only a long comma-separated list exceeds it,
// which a message then cannot be judged on (kTargetTooLong) — unless the line turns out to be no
// message (a PART without text, a CTCP), which is skipped.
inline constexpr uint32_t kIrcTargetCap = 128;
inline constexpr uint32_t kIrcSaslChunk = 400;  // IRCv3 SASL: AUTHENTICATE payload chunk size

// Sink: the decoder.h concept (on_account, on_message_begin, on_channel, on_channel_end, on_body,
// on_body_end, on_message_end; never on_channel_alias). Each message has one body field.
class IrcDecoder {
 public:
  IrcDecoder() = default;
  // Limits for servers that allow longer lines; the defaults are the standards'.
  IrcDecoder(uint16_t max_message, uint16_t max_tags)
      : max_message_(max_message), max_tags_(max_tags), limit_(max_message) {}

  // Decodes `n` bytes of one direction; `from_client` tells which (numerics and relays come from
  // the server, NICK and AUTHENTICATE are read as the client's own). Returns kOk when all bytes
  // were consumed, kStopped when the sink refused a call (the decoder is not fed again), kError on
  // a violation (error() says which; feeding again returns kError without reading).
  template <typename Sink>
  FeedResult feed(const uint8_t* p, uint32_t n, bool from_client, Session& session, Sink& sink);

  IrcError error() const { return error_; }
  // True between lines: nothing of a line is pending.
  bool at_line_boundary() const { return step_ == Step::kLineStart && !cr_pending_; }

 private:
  enum class Step : uint8_t {
    kLineStart,     // nothing of the line seen
    kTags,          // '@' up to the space that ends the tag section
    kMessageStart,  // spaces, then ':' (a prefix) or the command
    kPrefix,        // the prefix's nick, up to '!', '@' or ' ' (kept in target_)
    kPrefixRest,    // the prefix's !user@host
    kCommandStart,  // spaces before the command
    kCommand,
    kParamStart,  // spaces before a parameter
    kParam,       // a middle parameter (to the next space) or the trailing one (to the line end)
    kText,        // the text parameter's first bytes, until its kind is known (CTCP ACTION or not)
    kBody,        // the rest of the text, streamed
    kSkip,        // the rest of the line is ignored
  };
  enum class Cmd : uint8_t {
    kOther,
    kPrivmsg,
    kNotice,
    kCprivmsg,
    kCnotice,
    kTopic,
    kPart,
    kQuit,
    kNick,
    kAuthenticate,
    kNumeric,    // any numeric but those below: its first parameter is the client's nick
    kLoggedIn,   // 900
    kLoggedOut,  // 901
    kSaslFail,   // 902, 904, 905, 906
  };
  enum class Role : uint8_t { kSkip, kCapture, kSasl };
  enum class Sasl : uint8_t { kIdle, kPayload, kBad };  // kBad: malformed, skip to its end

  static constexpr uint8_t kNoParam = 0xff;
  static constexpr uint32_t kCommandCap = 12;  // "AUTHENTICATE"; longer commands are not ours
  static constexpr uint8_t kCr = '\r';
  static constexpr uint8_t kSoh = 0x01;
  static constexpr uint8_t kActionLen = 6;  // "ACTION"

  FeedResult fail(IrcError e) {
    error_ = e;
    return FeedResult::kError;
  }
  IrcError over_limit() const { return tags_phase_ ? IrcError::kTagsTooLong : IrcError::kLineTooLong; }

  template <typename Sink>
  FeedResult consume(const uint8_t* p, const uint8_t* q, bool from_client, Session& s, Sink& sink);
  template <typename Sink>
  FeedResult end_line(uint32_t terminator, bool from_client, Session& s, Sink& sink);
  template <typename Sink>
  FeedResult begin_message(bool action, Sink& sink);
  template <typename Sink>
  bool finish_command(Session& s, Sink& sink);
  template <typename Sink>
  bool set_account(Session& s, IrcAccountSource src, const uint8_t* v, uint32_t n, bool truncated, Sink& sink);
  template <typename Sink>
  bool set_nick_from_target(Session& s, bool clear_if_none, Sink& sink);

  // Sets cmd_ and the parameter roles from the command bytes. Once per line.
  void classify(bool from_client);
  // A parameter begins at `p` (not a space): picks its role.
  void start_param(const uint8_t*& p, const Session& s);
  void end_param() {
    if (role_ == Role::kCapture) capture_done_ = true;
    ++param_idx_;
    step_ = param_idx_ > last_idx_ ? Step::kSkip : Step::kParamStart;
  }
  void capture(const uint8_t* p, uint32_t k) {
    uint32_t c = std::min<uint32_t>(k, kIrcTargetCap - target_len_);
    std::memcpy(target_ + target_len_, p, c);
    target_len_ = static_cast<uint8_t>(target_len_ + c);
    if (c < k) target_over_ = true;
  }
  // True if the prefix nick (in target_) is the client's nick account.
  bool prefix_is_account(const Session& s) const;
  bool target_is(const char* upper_name) const;
  // Feeds payload characters of an AUTHENTICATE line to the base64 / PLAIN decoder.
  void sasl_chars(const uint8_t* p, uint32_t k);
  void sasl_decode(uint8_t c);
  void plain_byte(uint8_t b);
  void sasl_reset();
  void reset_line();
  MessageKind kind(bool action) const;
  bool ctcp_capable() const { return cmd_ >= Cmd::kPrivmsg && cmd_ <= Cmd::kCnotice; }

  uint8_t target_[kIrcTargetCap];            // the prefix nick, then the captured parameter
  uint8_t sasl_name_[Session::kAccountCap];  // the authcid being decoded
  uint8_t command_[kCommandCap];             // upper-cased
  uint32_t b64_acc_ = 0;                     // sextets of the base64 quad being decoded
  uint16_t max_message_ = kIrcMaxMessage;
  uint16_t max_tags_ = kIrcMaxTags;
  uint16_t len_ = 0;                 // bytes of the current part (tags or message) so far, terminator excluded
  uint16_t limit_ = kIrcMaxMessage;  // of the current part
  uint16_t sasl_chunk_ = 0;          // payload characters on this AUTHENTICATE line
  uint8_t target_len_ = 0;
  uint8_t sasl_len_ = 0;
  uint8_t command_len_ = 0;
  uint8_t param_idx_ = 0;
  uint8_t capture_idx_ = kNoParam;  // the parameter kept in target_
  uint8_t text_idx_ = kNoParam;     // the parameter that starts the text
  uint8_t last_idx_ = 0;            // parameters after this one are skipped
  uint8_t text_pos_ = 0;            // 0: no text byte yet; 1: "\x01"; 1 + k: "\x01" and k of "ACTION"
  uint8_t b64_n_ = 0;               // sextets in b64_acc_
  uint8_t b64_pad_ = 0;             // '=' seen: 1 after "xx=", 2 when complete
  uint8_t plain_field_ = 0;         // 0 authzid, 1 authcid, 2 password (NULs seen)
  uint8_t sasl_first_ = 0;          // first payload character of the line ('+', '*')
  Step step_ = Step::kLineStart;
  Cmd cmd_ = Cmd::kOther;
  Role role_ = Role::kSkip;
  Sasl sasl_ = Sasl::kIdle;
  IrcError error_ = IrcError::kNone;
  bool target_over_ = false;     // the captured field was longer than target_
  bool capture_done_ = false;    // the captured parameter is complete
  bool command_bad_ = false;     // not letters or 3 digits, or too long
  bool trailing_ = false;        // the current parameter started with ':'
  bool tags_phase_ = false;      // counting against max_tags_
  bool cr_pending_ = false;      // the last byte fed was a CR
  bool soh_pending_ = false;     // an action's \x01 held back: dropped if the line ends next
  bool strip_soh_ = false;       // the body is an action's
  bool renames_client_ = false;  // a NICK line is the client's own, or the server renaming it
  bool sasl_truncated_ = false;
};

// Per direction; a flow holds two.
static_assert(sizeof(IrcDecoder) <= 288, "IrcDecoder state grew: it lives in every IRC flow");

template <typename Sink>
FeedResult IrcDecoder::feed(const uint8_t* p, uint32_t n, bool from_client, Session& session, Sink& sink) {
  if (error_ != IrcError::kNone) return FeedResult::kError;
  const uint8_t* end = p + n;
  for (;;) {
    if (cr_pending_) {
      if (p == end) return FeedResult::kOk;
      cr_pending_ = false;
      if (*p == '\n') {
        ++p;
        if (FeedResult r = end_line(2, from_client, session, sink); r != FeedResult::kOk) return r;
        continue;
      }
      if (from_client) return fail(IrcError::kStrayCr);
      // From the server, the CR is a byte of the line like any other.
      if (FeedResult r = consume(&kCr, &kCr + 1, from_client, session, sink); r != FeedResult::kOk) return r;
    }
    if (p == end) return FeedResult::kOk;
    // The run up to the next CR or LF is content; the CR or LF is decided here.
    const auto* lf = static_cast<const uint8_t*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    const uint8_t* stop = lf ? lf : end;
    const auto* cr = static_cast<const uint8_t*>(std::memchr(p, '\r', static_cast<size_t>(stop - p)));
    if (cr) stop = cr;
    if (stop != p) {
      if (FeedResult r = consume(p, stop, from_client, session, sink); r != FeedResult::kOk) return r;
      p = stop;
    }
    if (p == end) return FeedResult::kOk;
    if (*p++ == '\r') {
      cr_pending_ = true;
    } else if (FeedResult r = end_line(1, from_client, session, sink); r != FeedResult::kOk) {
      return r;
    }
  }
}

// Consumes [p, q), which holds no LF and no CR but a literal one from the server.
template <typename Sink>
FeedResult IrcDecoder::consume(const uint8_t* p, const uint8_t* q, bool from_client, Session& s, Sink& sink) {
  while (p < q) {
    if (step_ == Step::kLineStart) {
      if (*p == '@') {
        tags_phase_ = true;
        limit_ = max_tags_;
        step_ = Step::kTags;
      } else {
        step_ = Step::kMessageStart;
      }
    }
    if (len_ >= limit_) return fail(over_limit());
    // No state reads past the current part's limit: the next byte is then the violation.
    const uint8_t* e = p + std::min<uint32_t>(static_cast<uint32_t>(q - p), uint32_t{limit_} - len_);
    const uint8_t* start = p;
    switch (step_) {
      case Step::kLineStart: break;  // decided above
      case Step::kTags: {
        const auto* sp = static_cast<const uint8_t*>(std::memchr(p, ' ', static_cast<size_t>(e - p)));
        if (!sp) {
          p = e;
          break;
        }
        // The tag section ends with this space (counted in it); the message part follows.
        p = sp + 1;
        tags_phase_ = false;
        limit_ = max_message_;
        len_ = 0;
        step_ = Step::kMessageStart;
        continue;
      }
      case Step::kMessageStart:
        if (*p == ' ') {
          ++p;
        } else if (*p == ':') {
          ++p;
          step_ = Step::kPrefix;
        } else {
          step_ = Step::kCommand;
        }
        break;
      case Step::kPrefix:
        while (p < e) {
          uint8_t c = *p++;
          if (c == ' ') {
            step_ = Step::kCommandStart;
            break;
          }
          if (c == '!' || c == '@') {
            step_ = Step::kPrefixRest;
            break;
          }
          capture(&c, 1);
        }
        break;
      case Step::kPrefixRest: {
        const auto* sp = static_cast<const uint8_t*>(std::memchr(p, ' ', static_cast<size_t>(e - p)));
        p = sp ? sp + 1 : e;
        if (sp) step_ = Step::kCommandStart;
        break;
      }
      case Step::kCommandStart:
        if (*p == ' ') {
          ++p;
        } else {
          step_ = Step::kCommand;
        }
        break;
      case Step::kCommand:
        while (p < e) {
          uint8_t c = *p++;
          if (c == ' ') {
            classify(from_client);
            param_idx_ = 0;
            step_ = cmd_ == Cmd::kOther ? Step::kSkip : Step::kParamStart;
            break;
          }
          bool letter = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
          bool digit = c >= '0' && c <= '9';
          if ((!letter && !digit) || command_len_ == kCommandCap) {
            command_bad_ = true;
          } else {
            command_[command_len_++] = letter ? static_cast<uint8_t>(c & ~0x20) : c;
          }
        }
        break;
      case Step::kParamStart:
        if (*p == ' ') {
          ++p;
        } else {
          start_param(p, s);
        }
        break;
      case Step::kParam: {
        const uint8_t* sp =
            trailing_ ? nullptr : static_cast<const uint8_t*>(std::memchr(p, ' ', static_cast<size_t>(e - p)));
        const uint8_t* upto = sp ? sp : e;
        auto k = static_cast<uint32_t>(upto - p);
        if (role_ == Role::kCapture) {
          capture(p, k);
        } else if (role_ == Role::kSasl) {
          sasl_chars(p, k);
        }
        p = upto;
        if (sp) {
          ++p;
          end_param();
        }
        break;
      }
      case Step::kText: {
        uint8_t c = *p;
        if (text_pos_ == 0) {
          if (c == kSoh && ctcp_capable()) {
            text_pos_ = 1;
            ++p;
            break;
          }
          if (FeedResult r = begin_message(false, sink); r != FeedResult::kOk) return r;
          continue;  // the byte is the body's first
        }
        if (text_pos_ <= kActionLen) {
          uint8_t u = (c >= 'a' && c <= 'z') ? static_cast<uint8_t>(c - 0x20) : c;
          if (u != static_cast<uint8_t>("ACTION"[text_pos_ - 1])) {
            step_ = Step::kSkip;  // another CTCP
            break;
          }
          ++text_pos_;
          ++p;
          break;
        }
        // "\x01ACTION" seen: a space starts the action's text, a \x01 may end it at once.
        if (c != ' ' && c != kSoh) {
          step_ = Step::kSkip;  // "\x01ACTIONS...": another CTCP
          break;
        }
        if (c == ' ') ++p;
        len_ = static_cast<uint16_t>(len_ + (p - start));
        if (FeedResult r = begin_message(true, sink); r != FeedResult::kOk) return r;
        continue;
      }
      case Step::kBody: {
        auto k = static_cast<uint32_t>(e - p);
        if (strip_soh_) {
          if (soh_pending_) {
            soh_pending_ = false;
            if (!sink.on_body(&kSoh, 1)) return FeedResult::kStopped;
          }
          if (e[-1] == kSoh) {  // held back: dropped if the line ends right after it
            soh_pending_ = true;
            --k;
          }
        }
        if (k && !sink.on_body(p, k)) return FeedResult::kStopped;
        p = e;
        break;
      }
      case Step::kSkip: p = e; break;
    }
    len_ = static_cast<uint16_t>(len_ + (p - start));
  }
  return FeedResult::kOk;
}

template <typename Sink>
FeedResult IrcDecoder::begin_message(bool action, Sink& sink) {
  bool has_channel = cmd_ != Cmd::kQuit;
  if (has_channel && target_over_) return fail(IrcError::kTargetTooLong);
  step_ = Step::kBody;
  strip_soh_ = action;
  if (!sink.on_message_begin(kind(action))) return FeedResult::kStopped;
  if (has_channel && target_len_ > 0 && !sink.on_channel(target_, target_len_)) return FeedResult::kStopped;
  if (!sink.on_channel_end()) return FeedResult::kStopped;
  return FeedResult::kOk;
}

template <typename Sink>
FeedResult IrcDecoder::end_line(uint32_t terminator, bool from_client, Session& s, Sink& sink) {
  if (len_ + terminator > limit_) return fail(over_limit());
  if (step_ == Step::kCommand) classify(from_client);  // a command without parameters
  if (step_ == Step::kParam) end_param();
  if (step_ == Step::kText) {
    // An empty text: a message only for TOPIC (clearing it) and for a bare "\x01ACTION".
    bool action = text_pos_ == kActionLen + 1;
    if (action || (text_pos_ == 0 && cmd_ == Cmd::kTopic)) {
      if (FeedResult r = begin_message(action, sink); r != FeedResult::kOk) return r;
    }
  }
  if (step_ == Step::kBody) {
    soh_pending_ = false;  // an action's final \x01
    if (!sink.on_body_end() || !sink.on_message_end()) return FeedResult::kStopped;
  }
  bool go_on = finish_command(s, sink);
  reset_line();
  return go_on ? FeedResult::kOk : FeedResult::kStopped;
}

template <typename Sink>
bool IrcDecoder::finish_command(Session& s, Sink& sink) {
  IrcAccountSource src = irc_account_source(s);
  switch (cmd_) {
    case Cmd::kNick:
      if (!renames_client_ || !capture_done_ || target_len_ == 0 || src > IrcAccountSource::kNick) return true;
      return set_account(s, IrcAccountSource::kNick, target_, target_len_, target_over_, sink);
    case Cmd::kLoggedIn:
      if (!capture_done_ || target_len_ == 0) return true;
      return set_account(s, IrcAccountSource::kLoggedIn, target_, target_len_, target_over_, sink);
    case Cmd::kNumeric: return src > IrcAccountSource::kNick || set_nick_from_target(s, false, sink);
    case Cmd::kLoggedOut:
    case Cmd::kSaslFail: {
      bool drop = cmd_ == Cmd::kLoggedOut ? src >= IrcAccountSource::kSasl : src == IrcAccountSource::kSasl;
      if (drop) return set_nick_from_target(s, true, sink);
      return src > IrcAccountSource::kNick || set_nick_from_target(s, false, sink);
    }
    case Cmd::kAuthenticate: {
      bool ok = true;
      if (sasl_ == Sasl::kIdle) {
        if (capture_done_ && target_is("PLAIN")) {
          sasl_reset();
          sasl_ = Sasl::kPayload;
        }
      } else if (sasl_chunk_ == 1 && sasl_first_ == '*') {
        sasl_reset();  // aborted
      } else if (sasl_chunk_ != kIrcSaslChunk) {
        // The payload's last line ("+" after an exact multiple of 400 adds nothing).
        bool plus = sasl_chunk_ == 1 && sasl_first_ == '+';
        bool whole = sasl_ == Sasl::kPayload && (plus || b64_n_ == 0) && plain_field_ >= 2 && sasl_len_ > 0;
        if (whole && src != IrcAccountSource::kLoggedIn)
          ok = set_account(s, IrcAccountSource::kSasl, sasl_name_, sasl_len_, sasl_truncated_, sink);
        sasl_reset();
      }
      // The mechanism field may have held a payload the decoder took for one.
      std::memset(target_, 0, target_len_);
      return ok;
    }
    default: return true;
  }
}

template <typename Sink>
bool IrcDecoder::set_nick_from_target(Session& s, bool clear_if_none, Sink& sink) {
  bool star = target_len_ == 1 && target_[0] == '*';
  if (capture_done_ && target_len_ > 0 && !star)
    return set_account(s, IrcAccountSource::kNick, target_, target_len_, target_over_, sink);
  if (clear_if_none) return set_account(s, IrcAccountSource::kNone, target_, 0, false, sink);
  return true;
}

template <typename Sink>
bool IrcDecoder::set_account(Session& s, IrcAccountSource src, const uint8_t* v, uint32_t n, bool truncated,
                             Sink& sink) {
  uint32_t k = std::min<uint32_t>(n, Session::kAccountCap);
  truncated = truncated || k < n;
  if (irc_account_source(s) == src && s.account_len == k && s.account_truncated == truncated &&
      std::memcmp(s.account, v, k) == 0)
    return true;  // unchanged
  std::memcpy(s.account, v, k);
  s.account_len = static_cast<uint8_t>(k);
  s.account_truncated = truncated;
  s.has_username = k > 0;
  s.account_source = static_cast<uint8_t>(src);
  return sink.on_account(s);
}

}  // namespace imf::dp::proto
