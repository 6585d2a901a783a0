// Streaming XMPP client-to-server decoder (RFC 6120 streams, RFC 6121 messages) for one direction
// of one plaintext TCP connection. Implements the decoder interface of proto/decoder.h.
//
// The XML stream is parsed incrementally, one byte at a time where it must be and in runs where it
// can (character data, attribute values, CDATA), fed in chunks of any size. Nothing is buffered
// but a few bounded fields, nothing is allocated, and nothing is read outside [p, p + n).
//
// What it reports
//   Account (on_account; Session::account, has_username = true), between stanzas:
//   - client side, SASL <auth> in the first stream (before any restart): PLAIN (`authzid NUL
//     authcid NUL password`: the authcid; decoding stops at the NUL after it, so the password is
//     never decoded) and SCRAM-* (client-first-message `gs2-header n=user,r=...`, user with =2C and
//     =3D unescaped). An authcid without '@' becomes user@domain, domain being the `to` of the
//     client's stream header. An <auth> without an initial response is read from the <response>
//     that follows it. Other mechanisms yield no SASL account.
//   - server side, resource binding (<iq type='result'><bind><jid>user@host/res</jid></bind></iq>):
//     the bare JID. It is authoritative and replaces the SASL account. Only the first one counts:
//     the server routes nothing to a client before it binds, so a later one can only be forged
//     (an iq result another user sends).
//   Session::account_source says where the account came from: kXmppAccountSasl or
//   kXmppAccountBound (0: none yet). Once bound, nothing changes the account: neither a later bind
//   result nor an <auth> from a client that skipped the restart.
//   Longer than Session::kAccountCap: the first kAccountCap bytes, account_truncated set.
//
//   Messages: each <message> stanza (child of the stream, any prefix) is one message.
//   - kind from `type`: chat, groupchat, headline; normal, absent, error and unknown values are
//     kXmppNormal (RFC 6121 5.2.2: an unknown type is normal). Error messages are judged like any
//     other: they may carry the original body back.
//   - channel = where the message goes, entity-decoded, as one on_channel call then on_channel_end
//     when the start tag ends (attributes come in any order):
//       groupchat, client side: the bare `to` (the room); server side: the bare `from` (the room;
//         its `to` is the occupant's own full JID);
//       other kinds, either side: `to` as carried (the recipient; on the server side that is the
//         receiving account). No `to` (a message to one's own account): no on_channel call.
//     Kept to kXmppChannelCap bytes; beyond that the first kXmppChannelCap bytes are reported and
//     channel_truncated() is true until the next message.
//   - body fields (on_body* on_body_end each, even when empty), in document order, holding the
//     text a client displays (entities, decimal and hex character references as UTF-8, CDATA,
//     line ends normalized to LF as XML requires):
//       each <body> (every xml:lang) and <subject> child of the message, with any text nested in
//         them;
//       each XHTML-IM <html> child (XEP-0071): all its text as one more field, with an LF at the
//         start and end of block elements (p, div, li, ul, ol, blockquote, pre, body) and at <br/>,
//         since clients display it instead of the plain body;
//       the same children of a <message> nested anywhere inside (XEP-0297 forwarded, XEP-0280
//         carbons, XEP-0313 archive results): fields of the outer message, whose kind and channel
//         they share.
//     Every other child (thread, delay, chat states, x/oob, occupant-id, ...) is skipped.
//   Namespaces are not resolved: elements are recognized by their local name (after the last
//   ':'), so a message, body or stream in any prefix or namespace counts. This never misses what a
//   server accepts; what it would reject is judged all the same.
//
//   Everything else (stream features, presence, iq, SASL exchanges, whitespace keep-alives) is
//   parsed for structure and skipped. The stream header may be restarted inside the stream (RFC
//   6120 4.3.3, after SASL), with or without a new XML declaration. </stream:stream> ends it; only
//   whitespace may follow.
//
// Policy on what cannot or must not be read: the decoder stops at the first problem with kError
// and error() says which; the caller resets the flow (the server itself closes the stream on
// malformed XML, RFC 6120 4.9.3.13). Two outcomes are not violations (xmpp_error_is_violation()
// is false): kStartTls (client <starttls/>, server <proceed/>: the rest is TLS) and kCompression
// (client <compress>, server <compressed/>, XEP-0138: the rest is zlib). The caller judges such a
// flow by its policy for flows it cannot read.
//
// Limits (crossing one is a violation with its own error):
//   nesting depth       kXmppMaxDepth = 32 open elements, the stream element included
//   name length         kXmppMaxName = 64 bytes, prefix included (elements and attributes)
//   attribute value     kXmppMaxAttrValue = 3072 raw bytes (kept ones: see kXmppChannelCap)
//   entity reference    kXmppMaxEntity = 10 bytes between '&' and ';'
//   XML declaration     kXmppMaxDecl = 256 bytes after "<?xml"
// Comments, DOCTYPE and processing instructions other than the XML declaration are violations
// (RFC 6120 11.1, restricted XML). Names are checked for ASCII syntax; bytes >= 0x80 are taken as
// name characters without UTF-8 validation. Duplicate attributes are detected where the decoder
// reads them (to, from, type, mechanism on the stream header and on message, auth and iq stanzas),
// not elsewhere. Stanza, text and start-tag lengths (the number of attributes) are not limited:
// nothing of them is kept.
//
// Cost: about 5 cycles per byte on Prosody-style traffic, about 10 when bodies are dense with
// entity references (GCC 12 -O2, x86-64, 1448-byte segments).
//
// Sink data: on_channel points into the decoder, on_body into the fed chunk, the decoder or
// static storage; valid only during the call.
//
// State: 864 bytes per direction (static_assert below), fixed, most of it the two JID buffers.
//
// Thread model: one decoder per flow direction, used by the owning lcore only. After kError or
// kStopped the decoder must not be fed again.
#pragma once

#include <cstdint>
#include <cstring>

#include "proto/decoder.h"

namespace imf::dp::proto {

inline constexpr uint32_t kXmppMaxDepth = 32;
inline constexpr uint32_t kXmppMaxName = 64;
inline constexpr uint32_t kXmppMaxAttrValue = 3072;
inline constexpr uint32_t kXmppMaxEntity = 10;
inline constexpr uint32_t kXmppMaxDecl = 256;
inline constexpr uint32_t kXmppChannelCap = 256;

// Session::account_source for XMPP: where the account came from.
inline constexpr uint8_t kXmppAccountSasl = 1;
inline constexpr uint8_t kXmppAccountBound = 2;

// Stable values: counters and records carry the names.
enum class XmppError : uint8_t {
  kNone = 0,
  kTextOutsideStream,      // non-whitespace (text, CDATA) before the stream header
  kNoStreamHeader,         // the first element is not a stream header
  kAfterStreamEnd,         // anything but whitespace after </stream:stream>
  kBadMarkup,              // '<' or "<!" followed by something that is not markup, junk inside a tag
  kBadName,                // a character not allowed in a name
  kNameTooLong,            // a name longer than kXmppMaxName
  kTooDeep,                // more than kXmppMaxDepth open elements
  kMismatchedEndTag,       // an end tag that does not close the open element
  kAttrValueTooLong,       // an attribute value longer than kXmppMaxAttrValue
  kLtInAttrValue,          // '<' inside an attribute value
  kDuplicateAttr,          // a kept attribute (to, from, type, mechanism) given twice
  kBadEntity,              // unknown entity, malformed character reference
  kEntityTooLong,          // more than kXmppMaxEntity bytes between '&' and ';'
  kBadCharRef,             // a character reference to a character XML does not allow
  kComment,                // <!-- -->
  kProcessingInstruction,  // <?target ...?> other than the XML declaration between stanzas
  kDoctype,                // <!DOCTYPE
  kDeclTooLong,            // an XML declaration longer than kXmppMaxDecl
  kStartTls,               // not a violation: the stream continues in TLS
  kCompression,            // not a violation: the stream continues compressed (XEP-0138)
};

// A stable snake_case name for e ("mismatched_end_tag"); "unknown" for values outside the enum.
const char* xmpp_error_name(XmppError e);
// False for kNone, kStartTls and kCompression: the stream became unreadable, not malformed.
bool xmpp_error_is_violation(XmppError e);

class XmppDecoder {
 public:
  // Decodes `n` bytes of one direction; `from_client` tells which (the same on every call).
  // Returns kOk when all bytes were consumed, kStopped when the sink returned false, kError (see
  // error()) at the first violation.
  template <typename Sink>
  FeedResult feed(const uint8_t* p, uint32_t n, bool from_client, Session& session, Sink& sink);

  XmppError error() const { return error_; }
  // The current (or last) message's channel was longer than kXmppChannelCap and was cut.
  bool channel_truncated() const { return channel_truncated_; }
  // Open elements, the stream element included (0 before the stream header and after its end).
  uint32_t depth() const { return depth_; }
  // True between stanzas (and before or after the stream): no stanza and no markup is pending.
  bool at_stanza_boundary() const { return (depth_ <= 1 && st_ == St::kText) || st_ == St::kClosed; }
  bool stream_closed() const { return st_ == St::kClosed; }

 private:
  // Parser state: where in the XML grammar the next byte lands.
  enum class St : uint8_t {
    kText,        // character data (prolog whitespace at depth 0)
    kEntity,      // after '&', in text or in an attribute value (ent_attr_)
    kLt,          // after '<'
    kStartName,   // element name of a start tag
    kTagSpace,    // inside a start tag, before an attribute
    kAttrName,    // attribute name
    kAttrEq,      // after an attribute name: '='
    kAttrQuote,   // after '=': the opening quote
    kAttrValue,   // attribute value, until quote_
    kAfterValue,  // after a value's closing quote
    kEmptyClose,  // after '/' in a start tag: '>'
    kEndName,     // after "</"
    kEndSpace,    // after an end tag's name: '>'
    kBang,        // after "<!"
    kBangDash,    // after "<!-"
    kCdataOpen,   // matching "[CDATA["
    kCdata,       // CDATA content, until "]]>"
    kPiTarget,    // after "<?"
    kPiBody,      // the XML declaration, until "?>"
    kClosed,      // after </stream:stream>
  };
  // Local names the decoder acts on.
  enum class Name : uint8_t {
    kOther,
    kStream,
    kMessage,
    kBody,
    kSubject,
    kHtml,
    kAuth,
    kResponse,
    kIq,
    kBind,
    kJid,
    kStartTls,
    kProceed,
    kCompress,
    kCompressed,
    kBlock,  // XHTML-IM block element
    kBr,
  };
  enum class Attr : uint8_t { kOther, kTo, kFrom, kType, kMechanism };
  // Which attributes of the element being parsed are kept.
  enum class Keep : uint8_t { kNone, kStreamHeader, kMessage, kAuth, kIq };
  enum class Target : uint8_t { kNone, kTo, kFrom, kSmall, kDomain };
  // The stanza (child of the stream) being parsed, as far as the decoder cares.
  enum class Stanza : uint8_t { kOther, kMessage, kSasl, kIqResult, kTls, kCompress };
  // Where character data goes.
  enum class Text : uint8_t { kSkip, kBody, kSasl, kJid };
  enum class Sasl : uint8_t { kOff, kPlain, kScram, kAwaitPlain, kAwaitScram, kDone, kBad };

  static constexpr uint16_t kNoSlash = 0xffff;
  static constexpr uint32_t kLocalCap = 16;  // longest local name worth recognizing
  static constexpr uint32_t kFnvBasis = 2166136261u;
  static constexpr uint32_t kFnvPrime = 16777619u;

  // An attribute value (or JID text) kept entity-decoded, cut at Cap bytes.
  template <uint16_t Cap>
  struct Kept {
    uint16_t len = 0;
    uint16_t slash = kNoSlash;  // index of the first '/', if within the kept bytes
    bool over = false;          // bytes were dropped
    uint8_t b[Cap];
    void clear() {
      len = 0;
      slash = kNoSlash;
      over = false;
    }
    void put(const uint8_t* p, uint32_t n) {
      for (uint32_t i = 0; i < n; ++i) {
        if (len == Cap) {
          over = true;
          return;
        }
        if (p[i] == '/' && slash == kNoSlash) slash = len;
        b[len++] = p[i];
      }
    }
    // The part before '/' (a bare JID) and whether it was cut.
    uint16_t bare_len() const { return slash != kNoSlash ? slash : len; }
    bool bare_over() const { return slash == kNoSlash && over; }
    bool equals(const char* s) const {
      size_t n = std::strlen(s);
      return !over && len == n && std::memcmp(b, s, n) == 0;
    }
  };

  static bool is_space(uint8_t c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
  static bool name_start(uint8_t c) {
    uint8_t l = c | 0x20;
    return (l >= 'a' && l <= 'z') || c == '_' || c == ':' || c >= 0x80;
  }
  static bool name_char(uint8_t c) { return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.'; }

  FeedResult fail(XmppError e) {
    error_ = e;
    return FeedResult::kError;
  }
  void name_begin() {
    name_len_ = 0;
    local_len_ = 0;
    colon_ = false;
    hash_ = kFnvBasis;
  }
  // Adds one name byte; false when the name gets too long.
  bool name_byte(uint8_t c) {
    if (++name_len_ > kXmppMaxName) return false;
    hash_ = (hash_ ^ c) * kFnvPrime;
    if (c == ':') {
      colon_ = true;
      local_len_ = 0;
      return true;
    }
    if (local_len_ < kLocalCap) local_[local_len_] = c;
    ++local_len_;  // beyond kLocalCap: not a name the decoder acts on
    return true;
  }

  // Out of line (xmpp.cpp): no sink involved.
  Name classify_element() const;
  Attr classify_attr() const;
  // The start tag's name is complete: what it is and which attributes to keep.
  void element_named();
  // An attribute name is complete: where its value goes; false on a duplicate kept attribute.
  bool attr_named();
  void keep(const uint8_t* p, uint32_t n);
  // Decodes ent_ into UTF-8 (out, up to 4 bytes); returns its length, or 0 with *err set.
  uint32_t decode_entity(uint8_t* out, XmppError* err) const;
  MessageKind message_kind() const;
  void sasl_begin();
  void sasl_text(const uint8_t* p, uint32_t n);
  void sasl_byte(uint8_t b);
  void sasl_flush_partial();
  // The <auth> or <response> ended: true if it set the account.
  bool sasl_finish(Session& s);
  // A <jid> in a bind result ended: true if it set the account.
  bool bind_finish(Session& s);
  void set_account(Session& s, const uint8_t* user, uint32_t n, bool cut, bool add_domain) const;

  template <typename Sink>
  FeedResult text(const uint8_t* p, uint32_t n, Sink& sink);
  template <typename Sink>
  FeedResult start_element(bool empty, Session& s, Sink& sink);
  template <typename Sink>
  FeedResult stanza_begins(Sink& sink);
  template <typename Sink>
  FeedResult end_element(Session& s, Sink& sink);
  template <typename Sink>
  FeedResult end_tag(Session& s, Sink& sink);
  template <typename Sink>
  FeedResult entity_done(Sink& sink);

  // Kept values. from_ doubles as the account being assembled (SASL user, bind JID): an account
  // is only assembled outside messages.
  Kept<kXmppChannelCap> to_;
  Kept<kXmppChannelCap> from_;
  Kept<Session::kAccountCap> domain_;  // `to` of the client's stream header
  Kept<20> small_;                     // a message's or iq's type, an auth's mechanism
  uint32_t stack_[kXmppMaxDepth];      // hash of each open element's name, the stream's at [0]
  uint32_t hash_ = kFnvBasis;          // of the name being parsed
  uint32_t elem_hash_ = 0;             // of the start tag being parsed
  uint64_t msg_mask_ = 0;              // bit d: the open element at depth d is a <message>
  uint32_t b64_acc_ = 0;
  uint16_t value_len_ = 0;  // raw bytes of the attribute value so far
  uint16_t pi_len_ = 0;
  uint8_t local_[kLocalCap];
  uint8_t ent_[kXmppMaxEntity];
  uint8_t name_len_ = 0;
  uint8_t local_len_ = 0;
  uint8_t ent_len_ = 0;
  uint8_t depth_ = 0;
  uint8_t field_depth_ = 0;  // depth of the element holding the open body field (0: none)
  uint8_t seen_ = 0;         // kept attributes seen on this start tag (bit per Attr)
  uint8_t quote_ = 0;
  uint8_t cdata_idx_ = 0;  // of "CDATA[" matched; in CDATA: held ']' bytes (0..2)
  uint8_t b64_n_ = 0;
  uint8_t sasl_step_ = 0;
  St st_ = St::kText;
  Name elem_ = Name::kOther;
  Keep keep_ = Keep::kNone;
  Target target_ = Target::kNone;
  Stanza stanza_ = Stanza::kOther;
  Text text_ = Text::kSkip;
  Sasl sasl_ = Sasl::kOff;
  XmppError error_ = XmppError::kNone;
  bool client_ = true;
  bool colon_ = false;      // the name has a prefix
  bool ent_attr_ = false;   // the entity is in an attribute value
  bool cr_ = false;         // the last text byte was a CR, reported as LF: drop a LF right after
  bool pi_q_ = false;       // the last declaration byte was '?'
  bool xhtml_ = false;      // the open body field is XHTML-IM
  bool bind_ = false;       // inside <bind> of an iq result
  bool restarted_ = false;  // the stream header was restarted (no SASL from here on)
  bool b64_end_ = false;
  bool sasl_any_ = false;  // the SASL exchange carried data
  bool channel_truncated_ = false;
};

// 864 bytes on x86-64 (GCC 12, clang 14): to_ and from_ 2 x 262, domain_ 102, the element stack 128.
static_assert(sizeof(XmppDecoder) <= 864, "XmppDecoder state grew: check the layout");

template <typename Sink>
FeedResult XmppDecoder::feed(const uint8_t* p, uint32_t n, bool from_client, Session& session, Sink& sink) {
  if (error_ != XmppError::kNone) return FeedResult::kError;
  client_ = from_client;
  const uint8_t* const end = p + n;
  while (p < end) {
    switch (st_) {
      case St::kText: {
        if (depth_ == 0) {  // the prolog: whitespace, the XML declaration, the stream header
          uint8_t c = *p++;
          if (c == '<') {
            st_ = St::kLt;
          } else if (!is_space(c)) {
            return fail(XmppError::kTextOutsideStream);
          }
          break;
        }
        if (cr_) {  // XML 2.11: CR LF is one line end
          cr_ = false;
          if (*p == '\n') {
            ++p;
            break;
          }
        }
        const uint8_t* q = p;
        while (q < end && *q != '<' && *q != '&' && *q != '\r') ++q;
        if (q > p) {
          if (FeedResult r = text(p, static_cast<uint32_t>(q - p), sink); r != FeedResult::kOk) return r;
          p = q;
          if (p == end) break;
        }
        uint8_t c = *p++;
        if (c == '<') {
          st_ = St::kLt;
        } else if (c == '&') {
          ent_len_ = 0;
          ent_attr_ = false;
          st_ = St::kEntity;
        } else {  // CR
          static constexpr uint8_t kLf = '\n';
          cr_ = true;
          if (FeedResult r = text(&kLf, 1, sink); r != FeedResult::kOk) return r;
        }
        break;
      }
      case St::kLt: {
        uint8_t c = *p++;
        if (c == '/') {
          name_begin();
          st_ = St::kEndName;
        } else if (c == '?') {
          name_begin();
          st_ = St::kPiTarget;
        } else if (c == '!') {
          st_ = St::kBang;
        } else if (name_start(c)) {
          name_begin();
          name_byte(c);
          st_ = St::kStartName;
        } else {
          return fail(XmppError::kBadMarkup);
        }
        break;
      }
      case St::kStartName: {
        uint8_t c = *p++;
        if (name_char(c)) {
          if (!name_byte(c)) return fail(XmppError::kNameTooLong);
          break;
        }
        element_named();
        if (is_space(c)) {
          st_ = St::kTagSpace;
        } else if (c == '/') {
          st_ = St::kEmptyClose;
        } else if (c == '>') {
          if (FeedResult r = start_element(false, session, sink); r != FeedResult::kOk) return r;
        } else {
          return fail(XmppError::kBadName);
        }
        break;
      }
      case St::kTagSpace:
      case St::kAfterValue: {
        uint8_t c = *p++;
        if (is_space(c)) {
          st_ = St::kTagSpace;
        } else if (c == '/') {
          st_ = St::kEmptyClose;
        } else if (c == '>') {
          if (FeedResult r = start_element(false, session, sink); r != FeedResult::kOk) return r;
        } else if (st_ == St::kTagSpace && name_start(c)) {  // attributes are separated by whitespace
          name_begin();
          name_byte(c);
          st_ = St::kAttrName;
        } else {
          return fail(XmppError::kBadMarkup);
        }
        break;
      }
      case St::kAttrName: {
        uint8_t c = *p++;
        if (name_char(c)) {
          if (!name_byte(c)) return fail(XmppError::kNameTooLong);
          break;
        }
        if (is_space(c)) {
          st_ = St::kAttrEq;
        } else if (c == '=') {
          st_ = St::kAttrQuote;
        } else {
          return fail(XmppError::kBadMarkup);
        }
        if (!attr_named()) return fail(XmppError::kDuplicateAttr);
        break;
      }
      case St::kAttrEq: {
        uint8_t c = *p++;
        if (c == '=') {
          st_ = St::kAttrQuote;
        } else if (!is_space(c)) {
          return fail(XmppError::kBadMarkup);
        }
        break;
      }
      case St::kAttrQuote: {
        uint8_t c = *p++;
        if (c == '\'' || c == '"') {
          quote_ = c;
          value_len_ = 0;
          st_ = St::kAttrValue;
        } else if (!is_space(c)) {
          return fail(XmppError::kBadMarkup);
        }
        break;
      }
      case St::kAttrValue: {
        const uint8_t* q = p;
        while (q < end && *q != quote_ && *q != '<' && *q != '&') ++q;
        uint32_t k = static_cast<uint32_t>(q - p);
        if (k > kXmppMaxAttrValue - value_len_) return fail(XmppError::kAttrValueTooLong);
        value_len_ = static_cast<uint16_t>(value_len_ + k);
        if (target_ != Target::kNone) keep(p, k);
        p = q;
        if (p == end) break;
        uint8_t c = *p++;
        if (c == quote_) {
          st_ = St::kAfterValue;
        } else if (c == '<') {
          return fail(XmppError::kLtInAttrValue);
        } else {  // '&'
          if (++value_len_ > kXmppMaxAttrValue) return fail(XmppError::kAttrValueTooLong);
          ent_len_ = 0;
          ent_attr_ = true;
          st_ = St::kEntity;
        }
        break;
      }
      case St::kEmptyClose: {
        if (*p++ != '>') return fail(XmppError::kBadMarkup);
        if (FeedResult r = start_element(true, session, sink); r != FeedResult::kOk) return r;
        break;
      }
      case St::kEndName: {
        uint8_t c = *p++;
        if (name_len_ == 0 ? name_start(c) : name_char(c)) {
          if (!name_byte(c)) return fail(XmppError::kNameTooLong);
          break;
        }
        if (name_len_ == 0) return fail(XmppError::kBadName);
        if (is_space(c)) {
          st_ = St::kEndSpace;
        } else if (c == '>') {
          if (FeedResult r = end_tag(session, sink); r != FeedResult::kOk) return r;
        } else {
          return fail(XmppError::kBadName);
        }
        break;
      }
      case St::kEndSpace: {
        uint8_t c = *p++;
        if (c == '>') {
          if (FeedResult r = end_tag(session, sink); r != FeedResult::kOk) return r;
        } else if (!is_space(c)) {
          return fail(XmppError::kBadMarkup);
        }
        break;
      }
      case St::kEntity: {
        uint8_t c = *p++;
        if (ent_attr_ && ++value_len_ > kXmppMaxAttrValue) return fail(XmppError::kAttrValueTooLong);
        if (c == ';') {
          if (FeedResult r = entity_done(sink); r != FeedResult::kOk) return r;
          break;
        }
        if (ent_len_ == kXmppMaxEntity) return fail(XmppError::kEntityTooLong);
        uint8_t l = c | 0x20;
        if (!((l >= 'a' && l <= 'z') || (c >= '0' && c <= '9') || c == '#')) return fail(XmppError::kBadEntity);
        ent_[ent_len_++] = c;
        break;
      }
      case St::kBang: {
        uint8_t c = *p++;
        if (c == '-') {
          st_ = St::kBangDash;
        } else if (c == '[') {
          if (depth_ == 0) return fail(XmppError::kTextOutsideStream);
          cdata_idx_ = 0;
          st_ = St::kCdataOpen;
        } else if (c == 'D') {
          return fail(XmppError::kDoctype);
        } else {
          return fail(XmppError::kBadMarkup);
        }
        break;
      }
      case St::kBangDash: return fail(*p == '-' ? XmppError::kComment : XmppError::kBadMarkup);
      case St::kCdataOpen: {
        static constexpr uint8_t kOpen[] = {'C', 'D', 'A', 'T', 'A', '['};
        if (*p++ != kOpen[cdata_idx_]) return fail(XmppError::kBadMarkup);
        if (++cdata_idx_ == sizeof(kOpen)) {
          cdata_idx_ = 0;  // from here: ']' bytes held back, maybe the start of "]]>"
          st_ = St::kCdata;
        }
        break;
      }
      case St::kCdata: {
        static constexpr uint8_t kBrackets[] = {']', ']'};
        static constexpr uint8_t kLf = '\n';
        if (cr_) {
          cr_ = false;
          if (*p == '\n' && cdata_idx_ == 0) {
            ++p;
            break;
          }
        }
        if (cdata_idx_ == 0) {
          const uint8_t* q = p;
          while (q < end && *q != ']' && *q != '\r') ++q;
          if (q > p) {
            if (FeedResult r = text(p, static_cast<uint32_t>(q - p), sink); r != FeedResult::kOk) return r;
            p = q;
            if (p == end) break;
          }
        }
        uint8_t c = *p++;
        FeedResult r = FeedResult::kOk;
        if (c == ']') {
          if (cdata_idx_ == 2) {
            r = text(kBrackets, 1, sink);  // "]]]": the first is content
          } else {
            ++cdata_idx_;
          }
        } else if (c == '>' && cdata_idx_ == 2) {
          cdata_idx_ = 0;
          st_ = St::kText;
        } else {
          if (cdata_idx_ > 0) r = text(kBrackets, cdata_idx_, sink);
          cdata_idx_ = 0;
          if (r == FeedResult::kOk) {
            if (c == '\r') {
              cr_ = true;
              r = text(&kLf, 1, sink);
            } else {
              r = text(p - 1, 1, sink);
            }
          }
        }
        if (r != FeedResult::kOk) return r;
        break;
      }
      case St::kPiTarget: {
        uint8_t c = *p++;
        if (name_len_ == 0 ? name_start(c) : name_char(c)) {
          if (!name_byte(c)) return fail(XmppError::kNameTooLong);
          break;
        }
        if (name_len_ == 0 || !(is_space(c) || c == '?')) return fail(XmppError::kBadMarkup);
        // Only the XML declaration, before a stream header (the first, or a restart between stanzas).
        if (colon_ || local_len_ != 3 || std::memcmp(local_, "xml", 3) != 0 || depth_ > 1) {
          return fail(XmppError::kProcessingInstruction);
        }
        pi_len_ = 0;
        pi_q_ = c == '?';
        st_ = St::kPiBody;
        break;
      }
      case St::kPiBody: {
        uint8_t c = *p++;
        if (++pi_len_ > kXmppMaxDecl) return fail(XmppError::kDeclTooLong);
        if (pi_q_ && c == '>') {
          st_ = St::kText;
        } else {
          pi_q_ = c == '?';
        }
        break;
      }
      case St::kClosed:
        if (!is_space(*p++)) return fail(XmppError::kAfterStreamEnd);
        break;
    }
  }
  return FeedResult::kOk;
}

template <typename Sink>
FeedResult XmppDecoder::text(const uint8_t* p, uint32_t n, Sink& sink) {
  switch (text_) {
    case Text::kSkip: break;
    case Text::kBody: return sink.on_body(p, n) ? FeedResult::kOk : FeedResult::kStopped;
    case Text::kSasl: sasl_text(p, n); break;
    case Text::kJid: from_.put(p, n); break;
  }
  return FeedResult::kOk;
}

template <typename Sink>
FeedResult XmppDecoder::entity_done(Sink& sink) {
  uint8_t u[4];
  XmppError err = XmppError::kNone;
  uint32_t k = decode_entity(u, &err);
  if (k == 0) return fail(err);
  if (ent_attr_) {
    if (target_ != Target::kNone) keep(u, k);
    st_ = St::kAttrValue;
    return FeedResult::kOk;
  }
  st_ = St::kText;
  return text(u, k, sink);
}

template <typename Sink>
FeedResult XmppDecoder::start_element(bool empty, Session& s, Sink& sink) {
  st_ = St::kText;
  if (depth_ == 0 || (depth_ == 1 && elem_ == Name::kStream)) {
    // The stream header, or its restart after SASL (RFC 6120 4.3.3): a new stream replaces the old.
    if (elem_ != Name::kStream) return fail(XmppError::kNoStreamHeader);
    if (depth_ == 1) {
      restarted_ = true;
      sasl_ = Sasl::kOff;
    }
    stack_[0] = elem_hash_;
    depth_ = 1;
    if (empty) {
      depth_ = 0;
      st_ = St::kClosed;
    }
    return FeedResult::kOk;
  }
  if (depth_ == kXmppMaxDepth) return fail(XmppError::kTooDeep);
  stack_[depth_++] = elem_hash_;
  const uint32_t d = depth_;
  FeedResult r = FeedResult::kOk;
  if (d == 2) {
    r = stanza_begins(sink);
  } else if (stanza_ == Stanza::kMessage) {
    static constexpr uint8_t kLf = '\n';
    if (field_depth_ != 0) {
      if (xhtml_ && (elem_ == Name::kBlock || elem_ == Name::kBr || elem_ == Name::kBody)) r = text(&kLf, 1, sink);
    } else if ((msg_mask_ >> (d - 1)) & 1) {
      if (elem_ == Name::kBody || elem_ == Name::kSubject || elem_ == Name::kHtml) {
        field_depth_ = static_cast<uint8_t>(d);
        xhtml_ = elem_ == Name::kHtml;
        text_ = Text::kBody;
      }
    }
    if (field_depth_ == 0 && elem_ == Name::kMessage) msg_mask_ |= uint64_t{1} << d;  // forwarded (XEP-0297)
  } else if (stanza_ == Stanza::kIqResult) {
    if (d == 3 && elem_ == Name::kBind) {
      bind_ = true;
    } else if (d == 4 && bind_ && elem_ == Name::kJid) {
      from_.clear();
      text_ = Text::kJid;
    }
  }
  if (r != FeedResult::kOk) return r;
  return empty ? end_element(s, sink) : FeedResult::kOk;
}

template <typename Sink>
FeedResult XmppDecoder::stanza_begins(Sink& sink) {
  stanza_ = Stanza::kOther;
  switch (elem_) {
    case Name::kMessage: {
      stanza_ = Stanza::kMessage;
      msg_mask_ = uint64_t{1} << 2;
      MessageKind kind = message_kind();
      bool room = kind == MessageKind::kXmppGroupchat;
      const Kept<kXmppChannelCap>& src = room && !client_ ? from_ : to_;
      uint32_t len = room ? src.bare_len() : src.len;
      channel_truncated_ = room ? src.bare_over() : src.over;
      if (!sink.on_message_begin(kind)) return FeedResult::kStopped;
      if (len > 0 && !sink.on_channel(src.b, len)) return FeedResult::kStopped;
      if (!sink.on_channel_end()) return FeedResult::kStopped;
      break;
    }
    case Name::kAuth:
    case Name::kResponse:
      // <auth> names the mechanism; a <response> carries the initial response an <auth> lacked.
      if (client_ && !restarted_) {
        if (elem_ == Name::kAuth) {
          sasl_ = small_.equals("PLAIN")                                                      ? Sasl::kPlain
                  : small_.len > 6 && !small_.over && std::memcmp(small_.b, "SCRAM-", 6) == 0 ? Sasl::kScram
                                                                                              : Sasl::kOff;
        } else if (sasl_ == Sasl::kAwaitPlain || sasl_ == Sasl::kAwaitScram) {
          sasl_ = sasl_ == Sasl::kAwaitPlain ? Sasl::kPlain : Sasl::kScram;
        } else {
          break;
        }
        if (sasl_ != Sasl::kOff) {
          sasl_begin();
          stanza_ = Stanza::kSasl;
          text_ = Text::kSasl;
        }
      }
      break;
    case Name::kIq:
      if (!client_ && small_.equals("result")) stanza_ = Stanza::kIqResult;
      break;
    case Name::kStartTls:
    case Name::kProceed:
      if (client_ == (elem_ == Name::kStartTls)) stanza_ = Stanza::kTls;
      break;
    case Name::kCompress:
    case Name::kCompressed:
      if (client_ == (elem_ == Name::kCompress)) stanza_ = Stanza::kCompress;
      break;
    default: break;
  }
  return FeedResult::kOk;
}

template <typename Sink>
FeedResult XmppDecoder::end_element(Session& s, Sink& sink) {
  const uint32_t d = depth_;
  --depth_;
  msg_mask_ &= ~(uint64_t{1} << d);
  if (field_depth_ != 0) {
    if (d == field_depth_) {
      field_depth_ = 0;
      text_ = Text::kSkip;
      if (!sink.on_body_end()) return FeedResult::kStopped;
    } else if (xhtml_ && (elem_ == Name::kBlock || elem_ == Name::kBody)) {
      static constexpr uint8_t kLf = '\n';
      if (FeedResult r = text(&kLf, 1, sink); r != FeedResult::kOk) return r;
    }
  }
  if (text_ == Text::kJid && d == 4) {
    text_ = Text::kSkip;
    if (bind_finish(s) && !sink.on_account(s)) return FeedResult::kStopped;
  }
  if (d == 3) bind_ = false;
  if (d != 2) return FeedResult::kOk;

  Stanza stanza = stanza_;
  stanza_ = Stanza::kOther;
  text_ = Text::kSkip;
  switch (stanza) {
    case Stanza::kMessage: return sink.on_message_end() ? FeedResult::kOk : FeedResult::kStopped;
    case Stanza::kSasl:
      if (sasl_finish(s) && !sink.on_account(s)) return FeedResult::kStopped;
      break;
    case Stanza::kTls: return fail(XmppError::kStartTls);
    case Stanza::kCompress: return fail(XmppError::kCompression);
    default: break;
  }
  return FeedResult::kOk;
}

template <typename Sink>
FeedResult XmppDecoder::end_tag(Session& s, Sink& sink) {
  if (depth_ == 0 || hash_ != stack_[depth_ - 1]) return fail(XmppError::kMismatchedEndTag);
  st_ = St::kText;
  if (depth_ == 1) {  // </stream:stream>
    depth_ = 0;
    st_ = St::kClosed;
    return FeedResult::kOk;
  }
  elem_ = classify_element();
  return end_element(s, sink);
}

}  // namespace imf::dp::proto
