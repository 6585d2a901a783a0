#include "proto/xmpp.h"

#include <algorithm>
#include <string_view>

namespace imf::dp::proto {

const char* xmpp_error_name(XmppError e) {
  switch (e) {
    case XmppError::kNone: return "none";
    case XmppError::kTextOutsideStream: return "text_outside_stream";
    case XmppError::kNoStreamHeader: return "no_stream_header";
    case XmppError::kAfterStreamEnd: return "data_after_stream_end";
    case XmppError::kBadMarkup: return "bad_markup";
    case XmppError::kBadName: return "bad_name";
    case XmppError::kNameTooLong: return "name_too_long";
    case XmppError::kTooDeep: return "too_deep";
    case XmppError::kMismatchedEndTag: return "mismatched_end_tag";
    case XmppError::kAttrValueTooLong: return "attribute_value_too_long";
    case XmppError::kLtInAttrValue: return "lt_in_attribute_value";
    case XmppError::kDuplicateAttr: return "duplicate_attribute";
    case XmppError::kBadEntity: return "bad_entity";
    case XmppError::kEntityTooLong: return "entity_too_long";
    case XmppError::kBadCharRef: return "bad_char_ref";
    case XmppError::kComment: return "comment";
    case XmppError::kProcessingInstruction: return "processing_instruction";
    case XmppError::kDoctype: return "doctype";
    case XmppError::kDeclTooLong: return "declaration_too_long";
    case XmppError::kStartTls: return "starttls";
    case XmppError::kCompression: return "compression";
  }
  return "unknown";
}

bool xmpp_error_is_violation(XmppError e) {
  return e != XmppError::kNone && e != XmppError::kStartTls && e != XmppError::kCompression;
}

XmppDecoder::Name XmppDecoder::classify_element() const {
  if (local_len_ > kLocalCap) return Name::kOther;
  struct Entry {
    std::string_view name;
    Name value;
  };
  static constexpr Entry kNames[] = {
      {"message", Name::kMessage},   {"body", Name::kBody},
      {"subject", Name::kSubject},   {"html", Name::kHtml},
      {"stream", Name::kStream},     {"iq", Name::kIq},
      {"bind", Name::kBind},         {"jid", Name::kJid},
      {"auth", Name::kAuth},         {"response", Name::kResponse},
      {"starttls", Name::kStartTls}, {"proceed", Name::kProceed},
      {"compress", Name::kCompress}, {"compressed", Name::kCompressed},
      {"p", Name::kBlock},           {"br", Name::kBr},
      {"div", Name::kBlock},         {"li", Name::kBlock},
      {"ul", Name::kBlock},          {"ol", Name::kBlock},
      {"blockquote", Name::kBlock},  {"pre", Name::kBlock},
  };
  std::string_view s(reinterpret_cast<const char*>(local_), local_len_);
  for (const Entry& e : kNames) {
    if (e.name == s) return e.value;
  }
  return Name::kOther;
}

XmppDecoder::Attr XmppDecoder::classify_attr() const {
  if (colon_ || local_len_ > kLocalCap) return Attr::kOther;  // xml:lang, xmlns:stream, ...
  std::string_view s(reinterpret_cast<const char*>(local_), local_len_);
  if (s == "to") return Attr::kTo;
  if (s == "from") return Attr::kFrom;
  if (s == "type") return Attr::kType;
  if (s == "mechanism") return Attr::kMechanism;
  return Attr::kOther;
}

void XmppDecoder::element_named() {
  elem_ = classify_element();
  elem_hash_ = hash_;
  seen_ = 0;
  keep_ = Keep::kNone;
  target_ = Target::kNone;
  if (depth_ == 0 || (depth_ == 1 && elem_ == Name::kStream)) {
    if (client_ && elem_ == Name::kStream) {
      keep_ = Keep::kStreamHeader;
      domain_.clear();
    }
    return;
  }
  if (depth_ != 1) return;
  switch (elem_) {
    case Name::kMessage:
      keep_ = Keep::kMessage;
      to_.clear();
      from_.clear();
      small_.clear();
      break;
    case Name::kAuth:
      if (client_) keep_ = Keep::kAuth;
      small_.clear();
      break;
    case Name::kIq:
      if (!client_) keep_ = Keep::kIq;
      small_.clear();
      break;
    default: break;
  }
}

bool XmppDecoder::attr_named() {
  target_ = Target::kNone;
  if (keep_ == Keep::kNone) return true;
  Attr a = classify_attr();
  if (a == Attr::kOther) return true;
  uint8_t bit = static_cast<uint8_t>(1u << static_cast<uint8_t>(a));
  if (seen_ & bit) return false;
  seen_ |= bit;
  switch (keep_) {
    case Keep::kStreamHeader:
      if (a == Attr::kTo) target_ = Target::kDomain;
      break;
    case Keep::kMessage:
      if (a == Attr::kTo) target_ = Target::kTo;
      if (a == Attr::kFrom && !client_) target_ = Target::kFrom;  // the server sets it; a client's is ignored
      if (a == Attr::kType) target_ = Target::kSmall;
      break;
    case Keep::kAuth:
      if (a == Attr::kMechanism) target_ = Target::kSmall;
      break;
    case Keep::kIq:
      if (a == Attr::kType) target_ = Target::kSmall;
      break;
    case Keep::kNone: break;
  }
  return true;
}

void XmppDecoder::keep(const uint8_t* p, uint32_t n) {
  switch (target_) {
    case Target::kNone: break;
    case Target::kTo: to_.put(p, n); break;
    case Target::kFrom: from_.put(p, n); break;
    case Target::kSmall: small_.put(p, n); break;
    case Target::kDomain: domain_.put(p, n); break;
  }
}

uint32_t XmppDecoder::decode_entity(uint8_t* out, XmppError* err) const {
  std::string_view e(reinterpret_cast<const char*>(ent_), ent_len_);
  uint32_t cp = 0;
  if (e.size() >= 2 && e[0] == '#') {
    // At most kXmppMaxEntity = 10 bytes: 9 decimal or 8 hex digits, so no overflow.
    bool hex = e[1] == 'x';
    size_t i = hex ? 2 : 1;
    if (i == e.size()) {
      *err = XmppError::kBadEntity;
      return 0;
    }
    for (; i < e.size(); ++i) {
      char c = e[i];
      uint32_t v;
      if (c >= '0' && c <= '9') {
        v = static_cast<uint32_t>(c - '0');
      } else if (hex && (c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
        v = static_cast<uint32_t>((c | 0x20) - 'a' + 10);
      } else {
        *err = XmppError::kBadEntity;
        return 0;
      }
      cp = cp * (hex ? 16 : 10) + v;
    }
    // XML 1.0 2.2 Char.
    bool ok = cp == 0x9 || cp == 0xa || cp == 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) ||
              (cp >= 0x10000 && cp <= 0x10ffff);
    if (!ok) {
      *err = XmppError::kBadCharRef;
      return 0;
    }
  } else if (e == "lt") {
    cp = '<';
  } else if (e == "gt") {
    cp = '>';
  } else if (e == "amp") {
    cp = '&';
  } else if (e == "apos") {
    cp = '\'';
  } else if (e == "quot") {
    cp = '"';
  } else {
    *err = XmppError::kBadEntity;  // no DTD, so only the predefined five exist
    return 0;
  }
  if (cp < 0x80) {
    out[0] = static_cast<uint8_t>(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = static_cast<uint8_t>(0xc0 | cp >> 6);
    out[1] = static_cast<uint8_t>(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = static_cast<uint8_t>(0xe0 | cp >> 12);
    out[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3f));
    out[2] = static_cast<uint8_t>(0x80 | (cp & 0x3f));
    return 3;
  }
  out[0] = static_cast<uint8_t>(0xf0 | cp >> 18);
  out[1] = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3f));
  out[2] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3f));
  out[3] = static_cast<uint8_t>(0x80 | (cp & 0x3f));
  return 4;
}

MessageKind XmppDecoder::message_kind() const {
  if (small_.equals("chat")) return MessageKind::kXmppChat;
  if (small_.equals("groupchat")) return MessageKind::kXmppGroupchat;
  if (small_.equals("headline")) return MessageKind::kXmppHeadline;
  return MessageKind::kXmppNormal;  // normal, error, absent, unknown (RFC 6121 5.2.2)
}

// ---- SASL: base64 decoded as it streams, the user name kept in from_, nothing after it decoded

void XmppDecoder::sasl_begin() {
  b64_acc_ = 0;
  b64_n_ = 0;
  b64_end_ = false;
  sasl_step_ = 0;
  sasl_any_ = false;
  from_.clear();
}

namespace {
uint8_t base64_value(uint8_t c) {
  if (c >= 'A' && c <= 'Z') return static_cast<uint8_t>(c - 'A');
  if (c >= 'a' && c <= 'z') return static_cast<uint8_t>(c - 'a' + 26);
  if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0' + 52);
  if (c == '+') return 62;
  if (c == '/') return 63;
  return 0xff;
}
}  // namespace

void XmppDecoder::sasl_text(const uint8_t* p, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    if (sasl_ != Sasl::kPlain && sasl_ != Sasl::kScram) return;  // done (the password follows) or bad
    uint8_t c = p[i];
    if (is_space(c)) continue;
    sasl_any_ = true;
    if (c == '=') {
      sasl_flush_partial();
      b64_end_ = true;
      continue;
    }
    uint8_t v = base64_value(c);
    if (b64_end_ || v == 0xff) {
      sasl_ = Sasl::kBad;
      return;
    }
    b64_acc_ = (b64_acc_ << 6) | v;
    if (++b64_n_ == 4) {
      uint32_t a = b64_acc_;
      b64_acc_ = 0;
      b64_n_ = 0;
      sasl_byte(static_cast<uint8_t>(a >> 16));
      sasl_byte(static_cast<uint8_t>(a >> 8));
      sasl_byte(static_cast<uint8_t>(a));
    }
  }
}

void XmppDecoder::sasl_flush_partial() {
  uint32_t a = b64_acc_;
  uint8_t k = b64_n_;
  b64_acc_ = 0;
  b64_n_ = 0;
  if (b64_end_ || k == 0) return;
  if (k == 1) {
    sasl_ = Sasl::kBad;
  } else if (k == 2) {
    sasl_byte(static_cast<uint8_t>(a >> 4));
  } else {
    sasl_byte(static_cast<uint8_t>(a >> 10));
    sasl_byte(static_cast<uint8_t>(a >> 2));
  }
}

void XmppDecoder::sasl_byte(uint8_t b) {
  if (sasl_ == Sasl::kPlain) {
    // RFC 4616: [authzid] NUL authcid NUL passwd.
    if (sasl_step_ == 0) {
      if (b == 0) sasl_step_ = 1;
    } else if (b == 0) {
      sasl_ = Sasl::kDone;
      b64_acc_ = 0;
    } else {
      from_.put(&b, 1);
    }
    return;
  }
  if (sasl_ != Sasl::kScram) return;
  // RFC 5802 7: gs2-header (flag "," [authzid] ",") then "n=" saslname "," "r=" nonce ...
  switch (sasl_step_) {
    case 0:
    case 1:
      if (b == ',') ++sasl_step_;
      break;
    case 2:
      if (b != 'n') sasl_ = Sasl::kBad;
      sasl_step_ = 3;
      break;
    case 3:
      if (b != '=') sasl_ = Sasl::kBad;
      sasl_step_ = 4;
      break;
    case 4:
      if (b == ',') {
        sasl_ = Sasl::kDone;
        b64_acc_ = 0;
      } else if (b == '=') {
        sasl_step_ = 5;
      } else {
        from_.put(&b, 1);
      }
      break;
    case 5:  // "=2C" is ',', "=3D" is '='
      if (b == '2' || b == '3') {
        sasl_step_ = b == '2' ? 6 : 7;
      } else {
        sasl_ = Sasl::kBad;
      }
      break;
    default: {
      uint8_t out = sasl_step_ == 6 ? ',' : '=';
      uint8_t want = sasl_step_ == 6 ? 'C' : 'D';
      if (b != want) {
        sasl_ = Sasl::kBad;
        break;
      }
      from_.put(&out, 1);
      sasl_step_ = 4;
      break;
    }
  }
}

bool XmppDecoder::sasl_finish(Session& s) {
  if (sasl_ == Sasl::kPlain || sasl_ == Sasl::kScram) {
    if (!sasl_any_ && elem_ == Name::kAuth) {  // no initial response: it comes in a <response>
      sasl_ = sasl_ == Sasl::kPlain ? Sasl::kAwaitPlain : Sasl::kAwaitScram;
      return false;
    }
    sasl_flush_partial();
    // A user name that runs to the end of the data (no password or nonce after it) still counts.
    if ((sasl_ == Sasl::kPlain && sasl_step_ == 1) || (sasl_ == Sasl::kScram && sasl_step_ == 4)) sasl_ = Sasl::kDone;
  }
  bool done = sasl_ == Sasl::kDone;
  sasl_ = Sasl::kOff;
  b64_acc_ = 0;
  if (!done || from_.len == 0 || s.account_source == kXmppAccountBound) return false;
  set_account(s, from_.b, from_.len, from_.over, true);
  s.account_source = kXmppAccountSasl;
  return true;
}

bool XmppDecoder::bind_finish(Session& s) {
  uint32_t n = from_.bare_len();
  if (s.account_source == kXmppAccountBound || n == 0) return false;
  set_account(s, from_.b, n, from_.bare_over(), false);
  s.account_source = kXmppAccountBound;
  return true;
}

void XmppDecoder::set_account(Session& s, const uint8_t* user, uint32_t n, bool cut, bool add_domain) const {
  constexpr uint32_t kCap = Session::kAccountCap;
  uint32_t len = std::min(n, kCap);
  std::memcpy(s.account, user, len);
  bool truncated = cut || n > kCap;
  // A SASL user name is the local part of the JID; the domain is the one the stream was opened to.
  if (add_domain && !truncated && domain_.len > 0 && std::memchr(user, '@', n) == nullptr) {
    if (len < kCap) {
      s.account[len++] = '@';
      uint32_t k = std::min<uint32_t>(domain_.len, kCap - len);
      std::memcpy(s.account + len, domain_.b, k);
      len += k;
      truncated = k < domain_.len || domain_.over;
    } else {
      truncated = true;
    }
  }
  s.account_len = static_cast<uint8_t>(len);
  s.account_truncated = truncated;
  s.has_username = true;
}

}  // namespace imf::dp::proto
