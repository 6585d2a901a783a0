#include "proto/irc.h"

namespace imf::dp::proto {

namespace {

// RFC 1459 case mapping (servers' default): A-Z and []\~ fold to a-z and {}|^.
uint8_t irc_fold(uint8_t c) {
  if ((c >= 'A' && c <= 'Z') || (c >= '[' && c <= ']') || c == '~') return static_cast<uint8_t>(c + 0x20);
  return c;
}

int base64_value(uint8_t c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

const char* irc_error_name(IrcError e) {
  switch (e) {
    case IrcError::kNone: return "none";
    case IrcError::kLineTooLong: return "line_too_long";
    case IrcError::kTagsTooLong: return "tags_too_long";
    case IrcError::kStrayCr: return "stray_cr";
    case IrcError::kTargetTooLong: return "target_too_long";
  }
  return "unknown";
}

void IrcDecoder::classify(bool from_client) {
  cmd_ = Cmd::kOther;
  capture_idx_ = kNoParam;
  text_idx_ = kNoParam;
  last_idx_ = 0;
  if (command_bad_ || command_len_ == 0) return;

  if (command_len_ == 3 && std::all_of(command_, command_ + 3, [](uint8_t c) { return c >= '0' && c <= '9'; })) {
    if (from_client) return;  // numerics are replies
    int v = (command_[0] - '0') * 100 + (command_[1] - '0') * 10 + (command_[2] - '0');
    capture_idx_ = 0;
    switch (v) {
      case 900:
        cmd_ = Cmd::kLoggedIn;
        capture_idx_ = 2;  // 900 <nick> <nick!ident@host> <account> :text
        break;
      case 901: cmd_ = Cmd::kLoggedOut; break;
      case 902:
      case 904:
      case 905:
      case 906: cmd_ = Cmd::kSaslFail; break;
      default: cmd_ = Cmd::kNumeric; break;
    }
    last_idx_ = capture_idx_;
    return;
  }

  struct Entry {
    const char* name;
    Cmd cmd;
    uint8_t capture;
    uint8_t text;
  };
  static constexpr Entry kCommands[] = {
      {"PRIVMSG", Cmd::kPrivmsg, 0, 1},
      {"NOTICE", Cmd::kNotice, 0, 1},
      {"CPRIVMSG", Cmd::kCprivmsg, 0, 2},
      {"CNOTICE", Cmd::kCnotice, 0, 2},
      {"TOPIC", Cmd::kTopic, 0, 1},
      {"PART", Cmd::kPart, 0, 1},
      {"QUIT", Cmd::kQuit, kNoParam, 0},
      {"NICK", Cmd::kNick, 0, kNoParam},
      {"AUTHENTICATE", Cmd::kAuthenticate, 0, kNoParam},
  };
  for (const Entry& c : kCommands) {
    if (std::strlen(c.name) == command_len_ && std::memcmp(command_, c.name, command_len_) == 0) {
      cmd_ = c.cmd;
      capture_idx_ = c.capture;
      text_idx_ = c.text;
      break;
    }
  }
  if (cmd_ == Cmd::kAuthenticate) {
    if (!from_client) {  // the server's "AUTHENTICATE +" challenge
      cmd_ = Cmd::kOther;
      return;
    }
    sasl_chunk_ = 0;
    if (sasl_ != Sasl::kIdle) capture_idx_ = kNoParam;  // the parameter is payload, decoded in place
  }
  if (cmd_ == Cmd::kNick) renames_client_ = from_client;  // from the server: decided by the prefix
  last_idx_ = 0;
  if (capture_idx_ != kNoParam) last_idx_ = capture_idx_;
  if (text_idx_ != kNoParam) last_idx_ = std::max(last_idx_, text_idx_);
}

void IrcDecoder::start_param(const uint8_t*& p, const Session& s) {
  if (param_idx_ == text_idx_) {
    if (*p == ':') ++p;
    text_pos_ = 0;
    step_ = Step::kText;
    return;
  }
  trailing_ = *p == ':';
  if (trailing_) ++p;
  role_ = Role::kSkip;
  if (param_idx_ == capture_idx_) {
    // target_ still holds the prefix nick: is this the server renaming the client?
    if (cmd_ == Cmd::kNick && !renames_client_) renames_client_ = prefix_is_account(s);
    role_ = Role::kCapture;
    target_len_ = 0;
    target_over_ = false;
  } else if (cmd_ == Cmd::kAuthenticate && param_idx_ == 0) {
    role_ = Role::kSasl;
  }
  step_ = Step::kParam;
}

bool IrcDecoder::prefix_is_account(const Session& s) const {
  if (irc_account_source(s) != IrcAccountSource::kNick || target_len_ == 0) return false;
  uint32_t n = s.account_len;
  // A truncated account is a prefix of the nick: compare what it holds (target_ holds more).
  if (s.account_truncated ? target_len_ < n : (target_over_ || target_len_ != n)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    if (irc_fold(target_[i]) != irc_fold(static_cast<uint8_t>(s.account[i]))) return false;
  }
  return true;
}

bool IrcDecoder::target_is(const char* upper_name) const {
  size_t n = std::strlen(upper_name);
  if (target_over_ || target_len_ != n) return false;
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = target_[i];
    if (c >= 'a' && c <= 'z') c = static_cast<uint8_t>(c - 0x20);
    if (c != static_cast<uint8_t>(upper_name[i])) return false;
  }
  return true;
}

void IrcDecoder::sasl_chars(const uint8_t* p, uint32_t k) {
  for (uint32_t i = 0; i < k; ++i) {
    uint8_t c = p[i];
    if (sasl_chunk_ == 0) sasl_first_ = c;
    if (sasl_chunk_ < UINT16_MAX) ++sasl_chunk_;
    // A line's leading '+' may be the "+" marker (an empty chunk): decoded once a second
    // character shows it is payload.
    if (sasl_chunk_ == 1 && c == '+') continue;
    if (sasl_chunk_ == 2 && sasl_first_ == '+') sasl_decode('+');
    sasl_decode(c);
  }
}

void IrcDecoder::sasl_decode(uint8_t c) {
  if (sasl_ != Sasl::kPayload) return;
  if (c == '=') {
    if (b64_pad_ == 0 && b64_n_ == 2) {
      plain_byte(static_cast<uint8_t>(b64_acc_ >> 4));
      b64_pad_ = 1;  // one more '=' to come
    } else if (b64_pad_ == 0 && b64_n_ == 3) {
      plain_byte(static_cast<uint8_t>(b64_acc_ >> 10));
      plain_byte(static_cast<uint8_t>(b64_acc_ >> 2));
      b64_pad_ = 2;
    } else if (b64_pad_ == 1) {
      b64_pad_ = 2;
    } else {
      sasl_ = Sasl::kBad;
    }
    b64_n_ = 0;
    b64_acc_ = 0;
    return;
  }
  int v = base64_value(c);
  if (v < 0 || b64_pad_ != 0) {
    sasl_ = Sasl::kBad;
    return;
  }
  b64_acc_ = (b64_acc_ << 6) | static_cast<uint32_t>(v);
  if (++b64_n_ == 4) {
    plain_byte(static_cast<uint8_t>(b64_acc_ >> 16));
    plain_byte(static_cast<uint8_t>(b64_acc_ >> 8));
    plain_byte(static_cast<uint8_t>(b64_acc_));
    b64_n_ = 0;
    b64_acc_ = 0;
  }
}

void IrcDecoder::plain_byte(uint8_t b) {
  if (b == 0) {
    if (plain_field_ < 2) ++plain_field_;
    return;
  }
  if (plain_field_ != 1) return;  // the authzid and the password are dropped
  if (sasl_len_ < Session::kAccountCap) {
    sasl_name_[sasl_len_++] = b;
  } else {
    sasl_truncated_ = true;
  }
}

void IrcDecoder::sasl_reset() {
  sasl_ = Sasl::kIdle;
  b64_acc_ = 0;
  b64_n_ = 0;
  b64_pad_ = 0;
  plain_field_ = 0;
  sasl_len_ = 0;
  sasl_truncated_ = false;
  sasl_first_ = 0;
}

void IrcDecoder::reset_line() {
  step_ = Step::kLineStart;
  len_ = 0;
  limit_ = max_message_;
  tags_phase_ = false;
  target_len_ = 0;
  target_over_ = false;
  capture_done_ = false;
  command_len_ = 0;
  command_bad_ = false;
  cmd_ = Cmd::kOther;
  role_ = Role::kSkip;
  param_idx_ = 0;
  text_pos_ = 0;
  trailing_ = false;
  soh_pending_ = false;
  strip_soh_ = false;
  renames_client_ = false;
}

MessageKind IrcDecoder::kind(bool action) const {
  switch (cmd_) {
    case Cmd::kPrivmsg:
    case Cmd::kCprivmsg: return action ? MessageKind::kIrcAction : MessageKind::kIrcPrivmsg;
    case Cmd::kNotice:
    case Cmd::kCnotice: return MessageKind::kIrcNotice;
    case Cmd::kTopic: return MessageKind::kIrcTopic;
    case Cmd::kPart: return MessageKind::kIrcPart;
    default: return MessageKind::kIrcQuit;
  }
}

}  // namespace imf::dp::proto
