#include "proto/sip.h"

namespace imf::dp::proto {
namespace {

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

bool equals_lower(const char* s, uint32_t n, const char* lit) {
  uint32_t m = static_cast<uint32_t>(std::strlen(lit));
  if (n != m) return false;
  for (uint32_t i = 0; i < n; ++i) {
    if (ascii_lower(s[i]) != lit[i]) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3261 25.1: reserved = ";" / "/" / "?" / ":" / "@" / "&" / "=" / "+" / "$" / ","
bool is_reserved(uint8_t c) {
  switch (c) {
    case ';':
    case '/':
    case '?':
    case ':':
    case '@':
    case '&':
    case '=':
    case '+':
    case '$':
    case ',': return true;
    default: return false;
  }
}

}  // namespace

const char* sip_error_name(SipError e) {
  switch (e) {
    case SipError::kNone: return "none";
    case SipError::kBadStartLine: return "bad_start_line";
    case SipError::kBadLineEnd: return "bad_line_end";
    case SipError::kBadCharacter: return "bad_character";
    case SipError::kBadHeader: return "bad_header";
    case SipError::kLineTooLong: return "line_too_long";
    case SipError::kTooManyHeaders: return "too_many_headers";
    case SipError::kHeadersTooLarge: return "headers_too_large";
    case SipError::kDuplicateHeader: return "duplicate_header";
    case SipError::kBadContentLength: return "bad_content_length";
    case SipError::kContentLengthTooLarge: return "content_length_too_large";
    case SipError::kMissingContentLength: return "missing_content_length";
    case SipError::kMissingFrom: return "missing_from";
    case SipError::kDatagramTruncated: return "datagram_truncated";
    case SipError::kTrailingData: return "trailing_data";
    case SipError::kCpimHeadersTooLarge: return "cpim_headers_too_large";
    case SipError::kBadCpim: return "bad_cpim";
  }
  return "unknown";
}

SipScheme sip_uri_scheme(const char* s, uint32_t n) {
  // RFC 3986 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ':'.
  uint32_t j = 0;
  while (j < n) {
    char c = ascii_lower(s[j]);
    bool alpha = c >= 'a' && c <= 'z';
    if (!(alpha || (j > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')))) break;
    ++j;
  }
  if (j == 0 || j == n || s[j] != ':') return SipScheme::kNone;
  if (equals_lower(s, j, "sip") || equals_lower(s, j, "sips")) return SipScheme::kSip;
  if (equals_lower(s, j, "tel")) return SipScheme::kTel;
  return SipScheme::kOther;
}

SipIdentity sip_uri_identity(const char* s, uint32_t n, bool cut, char* out, uint32_t cap) {
  SipIdentity id;
  auto put = [&](char c) {
    if (id.len < cap) {
      out[id.len++] = c;
    } else {
      id.truncated = true;
    }
  };
  SipScheme scheme = sip_uri_scheme(s, n);
  uint32_t i = 0;
  if (scheme == SipScheme::kSip || scheme == SipScheme::kTel) {
    i = static_cast<uint32_t>(static_cast<const char*>(std::memchr(s, ':', n)) - s) + 1;
  }
  // The user part ends at the first '@' (it never holds an unescaped one) and may hold ';' and
  // '?' (telephone-subscriber users); parameters and headers start after the host.
  uint32_t user_b = i;
  uint32_t user_e = i;
  uint32_t host_b = i;
  bool has_user = false;
  if (scheme == SipScheme::kSip) {
    if (const void* at = std::memchr(s + i, '@', n - i)) {
      has_user = true;
      host_b = static_cast<uint32_t>(static_cast<const char*>(at) - s) + 1;
      user_e = host_b - 1;
      if (const void* colon = std::memchr(s + user_b, ':', user_e - user_b)) {  // user:password
        user_e = static_cast<uint32_t>(static_cast<const char*>(colon) - s);
      }
    } else if (cut) {
      // The '@' may lie past the cut: what is here is (part of) a user, kept as such.
      user_e = host_b = n;
    }
  }
  uint32_t host_e = host_b;
  while (host_e < n && s[host_e] != ';' && s[host_e] != '?') ++host_e;
  const bool ended = host_e < n || !cut;

  if (scheme == SipScheme::kSip) {
    // The port is no part of the identity; an IPv6 reference keeps its brackets.
    uint32_t j = host_b;
    if (j < host_e && s[j] == '[') {
      while (j < host_e && s[j] != ']') ++j;
      if (j < host_e) ++j;
    }
    while (j < host_e && s[j] != ':') ++j;
    host_e = j;
    for (uint32_t k = user_b; k < user_e; ++k) {
      char c = s[k];
      if (c == '%' && user_e - k > 2) {
        int hi = hex_value(s[k + 1]);
        int lo = hex_value(s[k + 2]);
        if (hi >= 0 && lo >= 0) {
          auto d = static_cast<uint8_t>(hi << 4 | lo);
          if (d > 0x20 && d != 0x7f && d != '%' && !is_reserved(d)) {
            put(static_cast<char>(d));
            k += 2;
            continue;
          }
        }
      }
      put(c);
    }
    if (has_user) put('@');
    for (uint32_t k = host_b; k < host_e; ++k) put(ascii_lower(s[k]));
  } else {
    for (uint32_t k = host_b; k < host_e; ++k) put(s[k]);
  }
  if (!ended) id.truncated = true;
  return id;
}

SipDecoder::Hdr SipDecoder::header_kind(const char* name, uint32_t len) {
  if (len > kNameCap) return Hdr::kOther;
  auto is = [&](const char* lit) { return std::strlen(lit) == len && std::memcmp(name, lit, len) == 0; };
  if (len == 1) {
    switch (name[0]) {  // RFC 3261 7.3.3 compact forms
      case 'f': return Hdr::kFrom;
      case 't': return Hdr::kTo;
      case 'l': return Hdr::kContentLength;
      case 'c': return Hdr::kContentType;
      default: return Hdr::kOther;
    }
  }
  if (is("from")) return Hdr::kFrom;
  if (is("to")) return Hdr::kTo;
  if (is("content-length")) return Hdr::kContentLength;
  if (is("content-type")) return Hdr::kContentType;
  if (is("p-asserted-identity")) return Hdr::kPai;
  return Hdr::kOther;
}

SipError SipDecoder::start_value() {
  Hdr k = header_kind(token_, token_len_);
  if (!message_ && k != Hdr::kContentLength) k = Hdr::kOther;  // only framing matters
  bool* seen = nullptr;
  switch (k) {
    case Hdr::kFrom: seen = &have_from_; break;
    case Hdr::kTo: seen = &have_to_; break;
    case Hdr::kContentLength:
      seen = &have_cl_;
      num_ = Num::kLead;
      content_length_ = 0;
      break;
    case Hdr::kContentType:
      seen = &have_ctype_;
      type_len_ = 0;
      type_done_ = type_cut_ = false;
      break;
    default: break;
  }
  if (seen) {
    if (*seen) return SipError::kDuplicateHeader;
    *seen = true;
  }
  if (k == Hdr::kFrom || k == Hdr::kTo || k == Hdr::kPai) {
    uri_ = Uri::kLead;
    uri_values_ = 0;
    start_uri();
  }
  hdr_ = k;
  step_ = Step::kHeaderValue;
  return SipError::kNone;
}

SipError SipDecoder::end_header() {
  switch (hdr_) {
    case Hdr::kFrom:
    case Hdr::kTo:
    case Hdr::kPai:
      // A bare addr-spec ends with its header; an unclosed '<' is taken as far as it goes.
      if (uri_ == Uri::kBare || uri_ == Uri::kAngle) commit_uri();
      break;
    case Hdr::kContentLength:
      if (num_ == Num::kLead) return SipError::kBadContentLength;
      break;
    case Hdr::kContentType: cpim_ = !type_cut_ && type_len_ == 12 && std::memcmp(type_, "message/cpim", 12) == 0; break;
    default: break;
  }
  return SipError::kNone;
}

void SipDecoder::commit_uri() {
  while (scratch_len_ > 0 && scratch_[scratch_len_ - 1] == ' ') --scratch_len_;  // LWS before ';'
  const uint8_t index = uri_values_;
  if (uri_values_ < 0xff) ++uri_values_;
  if (scratch_len_ == 0) return;  // "<>": names nothing
  switch (hdr_) {
    case Hdr::kFrom:
    case Hdr::kPai: {
      uint8_t rank = hdr_ == Hdr::kFrom                                          ? (index == 0 ? kRankFrom : kRankNone)
                     : sip_uri_scheme(scratch_, scratch_len_) == SipScheme::kSip ? kRankPaiSip
                                                                                 : kRankPaiOther;
      if (rank <= account_rank_) break;
      SipIdentity id = sip_uri_identity(scratch_, scratch_len_, scratch_cut_, account_, Session::kAccountCap);
      account_len_ = static_cast<uint8_t>(id.len);
      account_truncated_ = id.truncated;
      account_rank_ = rank;
      break;
    }
    case Hdr::kTo:
      if (index == 0) set_channel_from_scratch();
      break;
    default: break;
  }
}

}  // namespace imf::dp::proto
