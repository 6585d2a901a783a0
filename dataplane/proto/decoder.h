// What every IM protocol decoder produces: a stream of events about one direction of one
// connection (or one datagram), which the inspector turns into account lookups, measures, scans,
// digests and records without knowing which protocol spoke.
//
// A decoder is a class with
//   template <typename Sink>
//   FeedResult feed(const uint8_t* p, uint32_t n, bool from_client, Session& session, Sink& sink);
// fed one direction's bytes as they arrive, in order, in chunks of any size (a message may span
// many segments, a segment may hold many messages), and for datagram protocols
//   template <typename Sink>
//   FeedResult feed_datagram(const uint8_t* p, uint32_t n, bool from_client, Session& session, Sink& sink);
// fed one whole datagram (the decoder starts afresh for each). A decoder's state is bounded and
// sized per protocol, it allocates nothing, and it never buffers a body: body bytes are streamed to
// the sink as they arrive (after the protocol's own decoding: XML entities, CDATA, CPIM wrapping).
// After kError, error() says why (the decoder's own error enum) and feeding again is not allowed.
//
// Sink concept (calls are inline, never virtual; each returns false to stop decoding at once,
// feed() then returns kStopped):
//   bool on_account(const Session&);             the sending account became known or changed
//                                                (login, SASL, resource binding, NICK, a SIP From)
//   bool on_message_begin(MessageKind);           a message begins
//   bool on_channel(const uint8_t* p, uint32_t n); its channel (topic, recipient, room), in pieces
//   bool on_channel_alias(uint16_t alias);        MQTT 5: the channel is named by an alias
//   bool on_channel_end();                        once per message, before any body
//   bool on_body(const uint8_t* p, uint32_t n);   bytes of the current body field, in pieces
//   bool on_body_end();                           ends one body field (a message may carry several:
//                                                 XMPP bodies per xml:lang, a subject); every body
//                                                 field, even empty, ends with it
//   bool on_message_end();                        the message is complete
// Order per message: on_message_begin, on_channel*, [on_channel_alias], on_channel_end,
// (on_body* on_body_end)*, on_message_end. on_account comes between messages (or before the
// first), never inside one.
//
// Thread model: one decoder per flow direction (or per lcore for datagrams), owning lcore only.
#pragma once

#include <cstdint>

namespace imf::dp::proto {

// Stable values: records and counters carry them.
enum class Protocol : uint8_t { kMqtt = 0, kXmpp = 1, kSip = 2, kIrc = 3 };
inline constexpr uint8_t kProtocolCount = 4;

enum class FeedResult : uint8_t { kOk, kStopped, kError };

// What kind of message the events describe. Stable values: records carry the name.
enum class MessageKind : uint8_t {
  kMqttPublish = 0,
  kMqttWill,       // a CONNECT's will, which the broker publishes for the client later
  kXmppChat,       // <message type='chat'>
  kXmppGroupchat,  // type='groupchat' (MUC)
  kXmppNormal,     // type='normal' or no type
  kXmppHeadline,   // type='headline'
  kSipMessage,     // a SIP MESSAGE request (RFC 3428)
  kIrcPrivmsg,     // PRIVMSG
  kIrcNotice,      // NOTICE
  kIrcAction,      // PRIVMSG carrying a CTCP ACTION (/me)
  kIrcTopic,       // TOPIC with a new topic text
  kIrcPart,        // PART with a message
  kIrcQuit,        // QUIT with a message
};

// What a connection's login told the decoders; shared by both directions of a connection (for a
// datagram protocol, one per datagram).
struct Session {
  static constexpr uint32_t kAccountCap = 96;
  uint8_t version = 0;         // MQTT: protocol level 3, 4 or 5 (0 until CONNECT)
  uint8_t account_source = 0;  // protocol-specific: where the account came from (0: nowhere yet),
                               // so both directions apply the same precedence (XMPP, IRC)
  bool has_username = false;   // the account is a user name the server authenticates (not an id)
  uint16_t keepalive_s = 0;    // how long the server keeps a silent connection (0: unknown)
  bool account_truncated = false;
  uint8_t account_len = 0;
  char account[kAccountCap];
};

const char* protocol_name(Protocol p);
const char* message_kind_name(MessageKind k);

}  // namespace imf::dp::proto
