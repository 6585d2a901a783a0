// Streaming MQTT 3.1 / 3.1.1 / 5.0 decoder for one direction of one TCP connection.
//
// Bytes are fed as they arrive, in order, in chunks of any size: one PUBLISH may span many
// segments and one segment may hold many packets. Topics and payloads are streamed to a sink
// without buffering, so memory per direction is constant. CONNECT yields the account (username,
// else client id) into the per-connection MqttSession, and its will message, which the broker
// publishes later on the client's behalf, is streamed like a PUBLISH. An MQTT 5 PUBLISH's Topic
// Alias property is reported, so a message that names its topic only by alias can be judged on
// the topic the alias stands for.
//
// Policy on malformed input (MQTT 3.1.1 §4.8 / 5.0 §4.13: the receiver closes the connection):
// the decoder stops at the first violation and reports which; the caller resets the flow.
//
// Thread model: one decoder per flow direction, used by the owning lcore only. No allocation.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "proto/decoder.h"

namespace imf::dp::proto {

enum class MqttError : uint8_t {
  kNone,
  kBadRemainingLength,  // varint longer than 4 bytes
  kPacketTooLarge,      // remaining length above the configured maximum
  kReservedType,        // packet type 0, or 15 (AUTH) before MQTT 5
  kBadPublishQos,       // QoS 3
  kFieldOverrun,        // a length field points past the end of its packet
  kBadProtocolLevel,    // CONNECT protocol level other than 3, 4 or 5
  kBadPropertyLength,   // v5 property length varint longer than 4 bytes
  kBadProperty,         // v5 PUBLISH property unknown, cut short, or a topic alias of 0 or twice
};

const char* mqtt_error_name(MqttError e);

// What a connection's CONNECT told us (version, account, keep-alive); shared by both directions.
using MqttSession = Session;

// Spec maximum of the remaining-length field (2^28 - 1).
inline constexpr uint32_t kMqttMaxRemaining = 268435455;

// Events (proto/decoder.h): on_account after each CONNECT's account fields (username, else client
// id); a PUBLISH is a kMqttPublish message (topic = channel, Topic Alias = on_channel_alias,
// payload = one body field), a CONNECT's will a kMqttWill message.
class MqttDecoder {
 public:
  MqttDecoder() = default;
  explicit MqttDecoder(uint32_t max_remaining) : max_remaining_(max_remaining) {}

  // Decodes `n` bytes of one direction. `from_client` tells whether this is the client's side
  // (only a client sends CONNECT). After kError, error() says why; feeding again is not allowed.
  template <typename Sink>
  FeedResult feed(const uint8_t* p, uint32_t n, bool from_client, MqttSession& session, Sink& sink);

  MqttError error() const { return error_; }
  // True between packets: nothing of a packet is pending.
  bool at_packet_boundary() const { return step_ == Step::kFixedHeader; }

 private:
  enum class Step : uint8_t {
    kFixedHeader,
    kRemainingLength,
    kSkip,
    kConnNameLen,
    kConnName,
    kConnLevel,
    kConnFlags,
    kConnKeepAlive,
    kConnPropsLen,
    kConnProps,
    kConnClientIdLen,
    kConnClientId,
    kConnWillPropsLen,
    kConnWillProps,
    kConnWillTopicLen,
    kConnWillTopic,
    kConnWillPayloadLen,
    kConnWillPayload,
    kConnUserLen,
    kConnUser,
    kPubTopicLen,
    kPubTopic,
    kPubPacketId,
    kPubPropsLen,
    kPubProps,
    kPubPayload,
  };

  FeedResult fail(MqttError e) {
    error_ = e;
    return FeedResult::kError;
  }
  // Starts a field of `len` bytes; false if it would run past the packet.
  bool start_field(uint32_t len) {
    if (len > remaining_) return false;
    field_left_ = len;
    return true;
  }
  // Accumulates a big-endian u16 one byte at a time; true when complete.
  bool read_u16(const uint8_t*& p) {
    acc_ = (acc_ << 8) | *p++;
    --remaining_;
    return ++acc_bytes_ == 2;
  }
  void begin_int(Step s) {
    step_ = s;
    acc_ = 0;
    acc_bytes_ = 0;
  }
  // Consumes up to field_left_ bytes of the current field; returns how many.
  uint32_t take(const uint8_t* p, const uint8_t* end) {
    uint32_t k = std::min<uint32_t>(static_cast<uint32_t>(end - p), field_left_);
    field_left_ -= k;
    remaining_ -= k;
    return k;
  }
  void capture_account(MqttSession& s, const uint8_t* p, uint32_t k) {
    uint32_t room = MqttSession::kAccountCap - s.account_len;
    uint32_t c = std::min(room, k);
    std::memcpy(s.account + s.account_len, p, c);
    s.account_len = static_cast<uint8_t>(s.account_len + c);
    if (c < k) s.account_truncated = true;
  }
  // After the client id and will fields: read the username if flagged, else finish.
  Step after_will() const { return (conn_flags_ & 0x80) ? Step::kConnUserLen : Step::kSkip; }
  Step after_client_id() const {
    if (conn_flags_ & 0x04) return version_ == 5 ? Step::kConnWillPropsLen : Step::kConnWillTopicLen;
    return after_will();
  }
  // Steps that consume a length-delimited field; an empty one completes without input.
  static bool is_field_step(Step s) {
    switch (s) {
      case Step::kConnName:
      case Step::kConnProps:
      case Step::kConnWillProps:
      case Step::kPubProps:
      case Step::kConnClientId:
      case Step::kConnWillTopic:
      case Step::kConnWillPayload:
      case Step::kConnUser:
      case Step::kPubTopic: return true;
      default: return false;
    }
  }
  Step after_packet_id() const { return version_ == 5 ? Step::kPubPropsLen : Step::kPubPayload; }

  // The v5 PUBLISH property walker: each property is an identifier and a value whose form the
  // identifier fixes (MQTT 5.0 2.2.2.2).
  enum class Prop : uint8_t { kId, kFixed, kVarint, kLenHi, kLenLo, kBody };
  enum PropForm : uint8_t { kByte1, kByte2, kByte4, kVarInt, kString, kPair, kInvalid };
  static PropForm prop_form(uint8_t id) {
    switch (id) {
      case 0x01: return kByte1;   // payload format indicator
      case 0x02: return kByte4;   // message expiry interval
      case 0x03: return kString;  // content type
      case 0x08: return kString;  // response topic
      case 0x09: return kString;  // correlation data (binary: same form)
      case 0x0b: return kVarInt;  // subscription identifier
      case 0x23: return kByte2;   // topic alias
      case 0x26: return kPair;    // user property
      default: return kInvalid;   // not allowed in a PUBLISH
    }
  }
  // Consumes property bytes of a PUBLISH; false on a malformed property.
  template <typename Sink>
  bool walk_properties(const uint8_t*& p, const uint8_t* end, Sink& sink, bool* stopped);

  uint32_t max_remaining_ = kMqttMaxRemaining;
  uint32_t prop_left_ = 0;  // bytes left of the current property value
  uint16_t prop_acc_ = 0;
  uint16_t topic_len_ = 0;  // of the PUBLISH being decoded
  bool alias_seen_ = false;
  uint8_t prop_id_ = 0;
  Prop prop_ = Prop::kId;
  bool prop_second_ = false;  // in a user property's second string
  uint32_t remaining_ = 0;    // body bytes of the current packet not yet consumed
  uint32_t field_left_ = 0;   // bytes left in the current variable-length field
  uint32_t acc_ = 0;          // integer being assembled
  uint8_t acc_bytes_ = 0;
  uint8_t header_ = 0;
  uint8_t conn_flags_ = 0;
  uint8_t version_ = 0;  // cached from the session at packet start
  Step step_ = Step::kFixedHeader;
  MqttError error_ = MqttError::kNone;
};

template <typename Sink>
FeedResult MqttDecoder::feed(const uint8_t* p, uint32_t n, bool from_client, MqttSession& session, Sink& sink) {
  const uint8_t* end = p + n;
  // Each iteration consumes at least one byte or completes a step whose field is empty.
  for (;;) {
    // Steps that finish without consuming (empty fields, end of body) run before the end check.
    if (step_ == Step::kPubPayload && remaining_ == 0) {
      step_ = Step::kFixedHeader;
      if (!sink.on_body_end() || !sink.on_message_end()) return FeedResult::kStopped;
      continue;
    }
    if (remaining_ == 0 &&
        (step_ == Step::kConnPropsLen || step_ == Step::kConnWillPropsLen || step_ == Step::kPubPropsLen)) {
      return fail(MqttError::kFieldOverrun);  // a v5 packet that ends where its properties should be
    }
    if (step_ == Step::kSkip && remaining_ == 0) {
      step_ = Step::kFixedHeader;
      continue;
    }
    if (p == end && !(is_field_step(step_) && field_left_ == 0)) return FeedResult::kOk;

    switch (step_) {
      case Step::kFixedHeader: {
        header_ = *p++;
        uint8_t type = header_ >> 4;
        if (type == 0 || (type == 15 && session.version != 5)) return fail(MqttError::kReservedType);
        begin_int(Step::kRemainingLength);
        break;
      }
      case Step::kRemainingLength: {
        uint8_t b = *p++;
        acc_ |= uint32_t{b & 0x7fu} << (7 * acc_bytes_);
        if (b & 0x80) {
          if (++acc_bytes_ == 4) return fail(MqttError::kBadRemainingLength);
          break;
        }
        if (acc_ > max_remaining_) return fail(MqttError::kPacketTooLarge);
        remaining_ = acc_;
        version_ = session.version;
        uint8_t type = header_ >> 4;
        if (type == 3) {
          uint8_t qos = (header_ >> 1) & 3;
          if (qos == 3) return fail(MqttError::kBadPublishQos);
          if (!start_field(2)) return fail(MqttError::kFieldOverrun);
          if (!sink.on_message_begin(MessageKind::kMqttPublish)) return FeedResult::kStopped;
          begin_int(Step::kPubTopicLen);
        } else if (type == 1 && from_client) {
          if (!start_field(2)) return fail(MqttError::kFieldOverrun);
          session.account_len = 0;
          session.has_username = false;
          session.account_truncated = false;
          begin_int(Step::kConnNameLen);
        } else {
          step_ = Step::kSkip;
        }
        break;
      }
      case Step::kSkip:
        field_left_ = remaining_;
        p += take(p, end);
        break;

      // ---- CONNECT: protocol name, level, flags, keep-alive, [props], client id, [will], [user]
      case Step::kConnNameLen:
        if (read_u16(p)) {
          if (!start_field(acc_)) return fail(MqttError::kFieldOverrun);
          step_ = Step::kConnName;
        }
        break;
      case Step::kConnName:
        p += take(p, end);
        if (field_left_ == 0) {
          if (!start_field(4)) return fail(MqttError::kFieldOverrun);  // level, flags, keep-alive
          step_ = Step::kConnLevel;
        }
        break;
      case Step::kConnLevel: {
        uint8_t level = *p++;
        --remaining_;
        if (level < 3 || level > 5) return fail(MqttError::kBadProtocolLevel);
        session.version = version_ = level;
        step_ = Step::kConnFlags;
        break;
      }
      case Step::kConnFlags:
        conn_flags_ = *p++;
        --remaining_;
        if (((conn_flags_ >> 3) & 3) == 3) return fail(MqttError::kBadPublishQos);  // the will's QoS
        begin_int(Step::kConnKeepAlive);
        break;
      case Step::kConnKeepAlive:
        if (read_u16(p)) {
          session.keepalive_s = static_cast<uint16_t>(acc_);
          if (version_ == 5) {
            begin_int(Step::kConnPropsLen);
          } else {
            if (!start_field(2)) return fail(MqttError::kFieldOverrun);
            begin_int(Step::kConnClientIdLen);
          }
        }
        break;
      case Step::kConnPropsLen:
      case Step::kConnWillPropsLen:
      case Step::kPubPropsLen: {
        if (remaining_ == 0) return fail(MqttError::kFieldOverrun);
        uint8_t b = *p++;
        --remaining_;
        acc_ |= uint32_t{b & 0x7fu} << (7 * acc_bytes_);
        if (b & 0x80) {
          if (++acc_bytes_ == 4) return fail(MqttError::kBadPropertyLength);
          break;
        }
        if (!start_field(acc_)) return fail(MqttError::kFieldOverrun);
        prop_ = Prop::kId;
        step_ = step_ == Step::kConnPropsLen       ? Step::kConnProps
                : step_ == Step::kConnWillPropsLen ? Step::kConnWillProps
                                                   : Step::kPubProps;
        if (field_left_ > 0) break;
        [[fallthrough]];  // empty property block: continue with what follows it
      }
      case Step::kConnProps:
      case Step::kConnWillProps:
      case Step::kPubProps:
        if (step_ == Step::kPubProps) {
          bool stopped = false;
          if (!walk_properties(p, end, sink, &stopped)) return fail(MqttError::kBadProperty);
          if (stopped) return FeedResult::kStopped;
        } else {
          p += take(p, end);
        }
        if (field_left_ == 0) {
          if (step_ == Step::kPubProps) {
            // MQTT 5.0 3.3.2.3.4: a zero-length topic needs an alias.
            if (topic_len_ == 0 && !alias_seen_) return fail(MqttError::kBadProperty);
            step_ = Step::kPubPayload;
            if (!sink.on_channel_end()) return FeedResult::kStopped;
          } else {
            if (!start_field(2)) return fail(MqttError::kFieldOverrun);
            begin_int(step_ == Step::kConnProps ? Step::kConnClientIdLen : Step::kConnWillTopicLen);
          }
        }
        break;
      case Step::kConnClientIdLen:
      case Step::kConnWillTopicLen:
      case Step::kConnWillPayloadLen:
      case Step::kConnUserLen:
        if (read_u16(p)) {
          if (!start_field(acc_)) return fail(MqttError::kFieldOverrun);
          // The will is a message the broker will publish for the client: judged as one.
          if (step_ == Step::kConnWillTopicLen && !sink.on_message_begin(MessageKind::kMqttWill))
            return FeedResult::kStopped;
          step_ = static_cast<Step>(static_cast<uint8_t>(step_) + 1);  // the matching value step
          if (step_ == Step::kConnUser) {
            session.account_len = 0;
            session.account_truncated = false;
            session.has_username = true;
          }
        }
        break;
      case Step::kConnClientId:
      case Step::kConnWillTopic:
      case Step::kConnWillPayload:
      case Step::kConnUser: {
        const uint8_t* start = p;
        uint32_t k = take(p, end);
        p += k;
        if (step_ == Step::kConnClientId || step_ == Step::kConnUser) capture_account(session, start, k);
        if (step_ == Step::kConnWillTopic && k && !sink.on_channel(start, k)) return FeedResult::kStopped;
        if (step_ == Step::kConnWillPayload && k && !sink.on_body(start, k)) return FeedResult::kStopped;
        if (field_left_ != 0) break;
        if (step_ == Step::kConnWillTopic && !sink.on_channel_end()) return FeedResult::kStopped;
        if (step_ == Step::kConnWillPayload && (!sink.on_body_end() || !sink.on_message_end()))
          return FeedResult::kStopped;
        Step next = step_ == Step::kConnClientId      ? after_client_id()
                    : step_ == Step::kConnWillTopic   ? Step::kConnWillPayloadLen
                    : step_ == Step::kConnWillPayload ? after_will()
                                                      : Step::kSkip;
        if (next == Step::kSkip) {
          step_ = Step::kSkip;  // the password, if any
          if (!sink.on_account(session)) return FeedResult::kStopped;
        } else if (next == Step::kConnWillPropsLen) {
          begin_int(next);
        } else {
          if (!start_field(2)) return fail(MqttError::kFieldOverrun);
          begin_int(next);
        }
        break;
      }

      // ---- PUBLISH: topic, [packet id], [props], payload
      case Step::kPubTopicLen:
        if (read_u16(p)) {
          if (!start_field(acc_)) return fail(MqttError::kFieldOverrun);
          topic_len_ = static_cast<uint16_t>(acc_);
          alias_seen_ = false;
          step_ = Step::kPubTopic;
        }
        break;
      case Step::kPubTopic: {
        const uint8_t* start = p;
        uint32_t k = take(p, end);
        p += k;
        if (k && !sink.on_channel(start, k)) return FeedResult::kStopped;
        if (field_left_ != 0) break;
        if ((header_ >> 1) & 3) {
          if (!start_field(2)) return fail(MqttError::kFieldOverrun);
          begin_int(Step::kPubPacketId);
          break;
        }
        if (version_ == 5) {
          begin_int(Step::kPubPropsLen);
          break;
        }
        step_ = Step::kPubPayload;
        if (!sink.on_channel_end()) return FeedResult::kStopped;
        break;
      }
      case Step::kPubPacketId:
        if (read_u16(p)) {
          step_ = after_packet_id();
          if (step_ == Step::kPubPropsLen) {
            begin_int(Step::kPubPropsLen);
          } else if (!sink.on_channel_end()) {
            return FeedResult::kStopped;
          }
        }
        break;
      case Step::kPubPayload: {
        field_left_ = remaining_;
        const uint8_t* start = p;
        uint32_t k = take(p, end);
        p += k;
        if (!sink.on_body(start, k)) return FeedResult::kStopped;
        break;
      }
    }
  }
}

template <typename Sink>
bool MqttDecoder::walk_properties(const uint8_t*& p, const uint8_t* end, Sink& sink, bool* stopped) {
  while (p < end && field_left_ > 0) {
    if (prop_ == Prop::kBody) {  // skip string or binary bytes in bulk
      uint32_t k = std::min<uint32_t>({static_cast<uint32_t>(end - p), field_left_, prop_left_});
      p += k;
      field_left_ -= k;
      remaining_ -= k;
      prop_left_ -= k;
      if (prop_left_ == 0) {
        prop_ = prop_id_ == 0x26 && !prop_second_ ? Prop::kLenHi : Prop::kId;
        prop_second_ = prop_ == Prop::kLenHi;
      }
      continue;
    }
    uint8_t b = *p++;
    --field_left_;
    --remaining_;
    switch (prop_) {
      case Prop::kId:
        prop_id_ = b;
        prop_second_ = false;
        switch (prop_form(b)) {
          case kByte1: prop_left_ = 1, prop_ = Prop::kFixed; break;
          case kByte2: prop_left_ = 2, prop_ = Prop::kFixed; break;
          case kByte4: prop_left_ = 4, prop_ = Prop::kFixed; break;
          case kVarInt: prop_left_ = 0, prop_ = Prop::kVarint; break;
          case kString:
          case kPair: prop_ = Prop::kLenHi; break;
          case kInvalid: return false;
        }
        prop_acc_ = 0;
        break;
      case Prop::kFixed:
        prop_acc_ = static_cast<uint16_t>(prop_acc_ << 8 | b);
        if (--prop_left_ == 0) {
          prop_ = Prop::kId;
          if (prop_id_ == 0x23) {
            // MQTT 5.0 3.3.2.3.4: an alias of 0, or a second alias, is a protocol error (a broker
            // may take either of two, so the message could be judged on another channel).
            if (prop_acc_ == 0 || alias_seen_) return false;
            alias_seen_ = true;
            if (!sink.on_channel_alias(prop_acc_)) {
              *stopped = true;
              return true;
            }
          }
        }
        break;
      case Prop::kVarint:
        if (!(b & 0x80)) {
          prop_ = Prop::kId;
        } else if (++prop_left_ == 4) {
          return false;
        }
        break;
      case Prop::kLenHi:
        prop_left_ = uint32_t{b} << 8;
        prop_ = Prop::kLenLo;
        break;
      case Prop::kLenLo:
        prop_left_ |= b;
        if (prop_left_ > 0) {
          prop_ = Prop::kBody;
        } else {
          prop_ = prop_id_ == 0x26 && !prop_second_ ? Prop::kLenHi : Prop::kId;
          prop_second_ = prop_ == Prop::kLenHi;
        }
        break;
      case Prop::kBody: break;
    }
  }
  // The property block must end between properties.
  return field_left_ > 0 || prop_ == Prop::kId;
}

}  // namespace imf::dp::proto
