// Per-flow inspection of the IM protocols imfd decodes: TCP as the end hosts see it
// (stream/tcp_stream.h), the flow's protocol decoder (proto/decoder.h: MQTT, XMPP, SIP, IRC), and
// streaming rule matching, ending in a verdict for each segment or datagram.
//
// Connection policy (README "Inspection policy", docs/evasion.md):
//  - a connection is inspected from its client's SYN; the bytes a receiver can accept are exactly
//    the bytes inspected (the tracker drops what would break that);
//  - a connection first seen without its handshake (after a restart, an eviction, or a forged
//    mid-stream segment) follows --midstream: reset (default: both ends get an RST, the client
//    reconnects and is inspected), drop, or pass (forwarded uninspected);
//  - a connection on a port no protocol is registered for is, with protocol detection on, decoded
//    as the protocol its client's first bytes open (proto/detect.h), else passed and counted;
//  - a protocol violation resets the connection, as the server itself would (a SIP datagram is
//    dropped alone).
//
// Account policy: the account a protocol's login names (MQTT CONNECT, XMPP SASL or resource
// binding, SIP From / P-Asserted-Identity per request, IRC NICK or SASL) is looked up in the
// account table when it becomes known. Its markers gate rules; its measure judges its connections
// and the messages it sends: warned messages pass and are recorded, restricted ones beyond the
// rate, suspended ones and shut-down connections are reset (on a TCP bump in the wire a message
// cannot be removed from the byte stream without ending it). Every message body is digested (HMAC)
// as it arrives, so a record proves which bytes were acted on.
//
// One Inspector per worker lcore; it owns nothing shared. No allocation, no locks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "decode/packet.h"
#include "inspect/decoder_pool.h"
#include "inspect/flow_classes.h"
#include "inspect/measure.h"
#include "match/matcher.h"
#include "policy/account_table.h"
#include "policy/measures.h"
#include "proto/decoder.h"
#include "proto/detect.h"
#include "proto/mqtt.h"
#include "proto/mqtt_aliases.h"
#include "records/digest.h"
#include "stats/counters.h"
#include "stream/tcp_stream.h"

namespace imf::dp::inspect {

enum class Verdict : uint8_t {
  kForward,  // send on unchanged
  kDrop,     // drop this segment only
  kReset,    // drop this segment, block the flow, send RST to both ends
};

// What to do with a connection first seen without its handshake.
enum class MidstreamPolicy : uint8_t { kReset, kDrop, kPass };

// What a packet of a connection not in the flow table leads to.
enum class NewFlow : uint8_t {
  kOpen,             // a client SYN: add the flow, init_flow(), then on_segment()
  kOpenUninspected,  // mid-stream data under --midstream pass: add it, init_uninspected()
  kForward,          // no state needed (a bare ACK, FIN or RST of a connection not tracked)
  kDrop,             // mid-stream data under --midstream drop
  kReset,            // mid-stream data under --midstream reset: RST both ends, drop it
};

// The protocol of a flow whose client has not spoken yet, under protocol detection.
inline constexpr uint8_t kProtocolPending = 0xff;

using imf::policy::AccountState;

// Counters per protocol, indexed by proto::Protocol.
struct ProtocolCounters {
  Counter logins, messages, body_bytes, malformed;
};
inline constexpr ProtocolCounters kProtocolCounters[proto::kProtocolCount] = {
    {Counter::mqtt_connects, Counter::mqtt_publishes, Counter::mqtt_payload_bytes, Counter::mqtt_malformed},
    {Counter::xmpp_logins, Counter::xmpp_messages, Counter::xmpp_body_bytes, Counter::xmpp_malformed},
    {Counter::sip_logins, Counter::sip_messages, Counter::sip_body_bytes, Counter::sip_malformed},
    {Counter::irc_logins, Counter::irc_messages, Counter::irc_body_bytes, Counter::irc_malformed},
};

// One direction's message state. Fields a segment touches come first, in the state's first
// cache line (Inspector::prefetch fetches it); what only a message's start, end or a record
// reads follows.
struct alignas(64) DirState {
  static constexpr uint32_t kChannelCap = 128;
  bool channel_truncated = false;
  bool body_started = false;    // the message's account measure and any-body rules were judged
  bool record_message = false;  // warned sender: record the message when it ends
  bool pending_reset = false;
  Measure pending = Measure::kRuleAlert;  // with pending_reset: the measure to apply at the body
  proto::MessageKind kind = proto::MessageKind::kMqttPublish;
  uint8_t channel_len = 0;
  uint16_t channel_alias = 0;                // MQTT 5: the message's Topic Alias (0: none)
  AccountState state = AccountState::kNone;  // the sender's state when the message began
  proto::MqttDecoder mqtt;                   // MQTT's decoder; the larger ones are in the DecoderPool
  uint64_t markers = 0;                      // the sender's markers when the message began
  int64_t until_s = 0;                       // when `state` ends (0: indefinite)
  records::HmacStream digest;                // of the current message's body fields
  char channel[kChannelCap];
};

// The account a connection authenticated as, and where the table keeps it.
struct AccountRef {
  int32_t pos = -1;  // position in the account table; valid while epoch matches its epoch()
  uint64_t epoch = ~0ull;
  bool known = false;  // the login named an account that fits the table
  policy::AccountKey key{};
};

// Per packet a flow costs a few cache lines: this first one, its TCP side and its direction's
// first.
struct alignas(64) FlowState {
  bool client_is_a = true;  // which end of the canonical flow key opened the connection
  bool blocked = false;
  bool uninspected = false;                // picked up mid-stream under --midstream pass, or undetected
  uint8_t protocol = 0;                    // proto::Protocol, or kProtocolPending
  uint32_t keepalive_s = 0;                // how long the server keeps the connection through silence (0: unknown)
  uint32_t decoders = DecoderPool::kNone;  // XMPP, SIP or IRC decoders in the DecoderPool
  uint64_t epoch = 0;                      // unique per connection on this lcore (keys its MQTT topic aliases)
  AccountRef account;
  stream::TcpConn tcp;
  DirState dir[2];         // [0] client -> server, [1] server -> client
  proto::Session session;  // what the login told the decoders; read for records
};

struct InspectConfig {
  MidstreamPolicy midstream = MidstreamPolicy::kReset;
  stream::TrackerConfig tcp;
  size_t retain_store_bytes = size_t{16} << 20;  // unacknowledged bytes this lcore may hold in all
  FlowTimeouts timeouts;
  uint32_t max_mqtt_packet = proto::kMqttMaxRemaining;
  uint32_t mqtt_aliases = 16384;                      // MQTT 5 topic aliases this lcore remembers, all flows together
  uint32_t decoder_pairs = 16384;                     // XMPP, SIP and IRC connections this lcore decodes at once
  const policy::AccountTable* accounts = nullptr;     // null: every account unknown
  const records::HmacKeyState* digest_key = nullptr;  // null: bodies are not digested
};

// What a record needs to know about a measure or rule hit.
struct Hit {
  Measure what;
  uint16_t rule;  // for kRule*
  const FlowState* flow;
  const DirState* dir;
  uint8_t dir_index;  // 0 client -> server
  AccountState state_before;
  AccountState state_after;
  int64_t until_s;        // when state_after ends (unix s); 0: indefinite
  const uint8_t* digest;  // HMAC of the first digest_bytes of the body; null when no message
  uint32_t digest_bytes;
};

class Inspector {
 public:
  Inspector(const InspectConfig& cfg, match::Matcher& matcher, match::StreamPool& streams, Counters& counters)
      : cfg_(cfg),
        counters_(counters),
        classes_(cfg.timeouts),
        store_(std::move(stream::ByteStore::create(cfg.retain_store_bytes).value())),
        tcp_(cfg.tcp, *store_, counters),
        aliases_(cfg.mqtt_aliases),
        decoders_(cfg.decoder_pairs) {
    use(matcher, streams);
  }

  // Scans from now on with this rule set's matcher and streams (a rule-set swap, between
  // packets). The streams are fresh: fields in flight continue from here. The last stream of the
  // pool serves datagrams. Owning lcore only.
  void use(match::Matcher& matcher, match::StreamPool& streams) {
    matcher_ = &matcher;
    streams_ = &streams;
    stream_prefetch_bytes_ = std::min<size_t>(matcher.generation().stream_size, 512);
  }

  // The wall clock (unix ns) measures are judged at; set once per burst. Owning lcore only.
  void set_now(int64_t unix_ns) { now_ns_ = unix_ns; }

  // What a segment of a connection without flow state leads to (counted). Owning lcore only.
  NewFlow classify_new(const decode::PacketMeta& m) const;

  // Prepares a fresh flow state in `slot` for the client SYN `m` that created it, arrived on
  // `in_port` (stream::kAnyPort with one port), to be decoded as `protocol` (a proto::Protocol,
  // or kProtocolPending: detected from the client's first bytes). False, with nothing held, when
  // the decoder pool is exhausted: the caller refuses the connection. Owning lcore only.
  bool init_flow(FlowState& fs, uint32_t slot, const decode::PacketMeta& m, bool from_a, uint8_t in_port,
                 uint8_t protocol);
  // Prepares a flow picked up mid-stream under --midstream pass: forwarded, never decoded.
  void init_uninspected(FlowState& fs, const decode::PacketMeta& m, bool from_a, bool to_server_port);
  // Frees what the flow holds beyond its slot (retained bytes, decoders); before it leaves the table.
  void release_flow(FlowState& fs) {
    tcp_.release(fs.tcp);
    release_decoders(fs);
  }

  // Prefetches what on_segment() will touch of the flow in `slot`: its state and, for a segment
  // with payload, the Hyperscan stream state of direction `dir` (0 client -> server; a guess from
  // the ports is fine). Owning lcore only.
  void prefetch(const FlowState& fs, uint32_t slot, bool has_payload, uint8_t dir) const {
    __builtin_prefetch(&fs);
    __builtin_prefetch(&fs.tcp.end[dir]);
    __builtin_prefetch(&fs.dir[dir]);
    if (has_payload) {
      const char* stream = reinterpret_cast<const char*>(streams_->get(slot * 2 + dir));
      for (size_t off = 0; off < stream_prefetch_bytes_; off += 64) __builtin_prefetch(stream + off);
    }
  }

  // Judges one segment of a tracked flow, arrived on `in_port`; `payload` points at m.payload_len
  // bytes. sink.on_hit(const Hit&) is called for every rule hit, in order, before this returns.
  // *flow_class is the flow-table class the flow belongs in after this segment.
  template <typename HitSink>
  Verdict on_segment(FlowState& fs, uint32_t slot, const decode::PacketMeta& m, const uint8_t* payload, bool from_a,
                     uint8_t in_port, HitSink& sink, uint8_t* flow_class);

  // Judges one datagram of a datagram protocol (SIP over UDP): kForward or kDrop (a datagram is
  // dropped alone; the dialog goes on). `from_client`: sent to the protocol's server port.
  template <typename HitSink>
  Verdict on_datagram(proto::Protocol protocol, const decode::PacketMeta& m, const uint8_t* payload, bool from_client,
                      HitSink& sink);

  const FlowClassMap& classes() const { return classes_; }
  const stream::ByteStore& store() const { return *store_; }
  const DecoderPool& decoders() const { return decoders_; }

 private:
  template <typename HitSink>
  struct DecodeSink;

  // Protocol, account and scan state of a flow back to a new connection's (the TCP state is the
  // tracker's). False when the decoder pool has no pair for the protocol.
  bool reset_messages(FlowState& fs, uint32_t slot, uint8_t protocol);
  void release_decoders(FlowState& fs) {
    if (fs.decoders != DecoderPool::kNone) decoders_.release(fs.decoders);
    fs.decoders = DecoderPool::kNone;
  }
  uint8_t class_of(const FlowState& fs) const {
    if (fs.tcp.state == stream::ConnState::kSynSent || fs.tcp.state == stream::ConnState::kSynReceived)
      return FlowClassMap::kHalfOpen;
    if (fs.tcp.state == stream::ConnState::kClosing) return FlowClassMap::kClosing;
    return classes_.established(fs.keepalive_s);
  }
  // Feeds new bytes of one direction to the flow's decoder; the verdict is the sink's.
  template <typename HitSink>
  Verdict decode(FlowState& fs, uint32_t slot, uint8_t di, const uint8_t* p, uint32_t n, HitSink& sink);
  // A flow waiting for its client's first bytes: the protocol they open, or uninspected.
  void detect(FlowState& fs, uint32_t slot, const uint8_t* p, uint32_t n);

  // The live table entry of the flow's account, or null (no account, or not in the table).
  // Re-looks-up the position when the table's epoch moved (a delete or a reload).
  policy::AccountEntry* account_entry(AccountRef& a) const {
    if (!a.known || !cfg_.accounts) return nullptr;
    uint64_t epoch = cfg_.accounts->epoch();
    if (epoch != a.epoch) {
      a.pos = cfg_.accounts->lookup(a.key);
      a.epoch = epoch;
    }
    return a.pos < 0 ? nullptr : &cfg_.accounts->entry(a.pos);
  }

  InspectConfig cfg_;
  int64_t now_ns_ = 0;
  match::Matcher* matcher_;
  match::StreamPool* streams_;
  Counters& counters_;
  size_t stream_prefetch_bytes_;  // of a stream's state, enough for a scan's first touches
  FlowClassMap classes_;
  std::unique_ptr<stream::ByteStore> store_;
  stream::TcpTracker tcp_;
  proto::MqttAliasTable aliases_;
  DecoderPool decoders_;
  uint64_t epochs_ = 0;
  // Datagrams: one message each, judged with a flow state and decoder of their own.
  FlowState datagram_;
  proto::SipDecoder datagram_sip_;
};

// Adapts decoder events to account measures and scans; collects the verdict.
template <typename HitSink>
struct Inspector::DecodeSink {
  Inspector& ins;
  FlowState& fs;
  DirState& d;
  uint8_t dir_index;
  hs_stream_t* stream;
  HitSink& hits;
  Verdict verdict = Verdict::kForward;

  const ProtocolCounters& counted() const { return kProtocolCounters[fs.protocol]; }
  match::MessageContext message() const {
    return {d.channel, d.channel_len, d.markers, dir_index == 0 && fs.account.known, fs.protocol};
  }

  // Reports a measure on the current message (or connection, without a body) to the sink.
  // The account's state stays what it is.
  void report(Measure what, uint16_t rule, bool with_digest) {
    uint8_t digest[32];
    bool digested = with_digest && ins.cfg_.digest_key;
    if (digested) d.digest.peek(*ins.cfg_.digest_key, digest);
    hits.on_hit(Hit{what, rule, &fs, &d, dir_index, d.state, d.state, d.until_s, digested ? digest : nullptr,
                    digested ? static_cast<uint32_t>(d.digest.bytes()) : 0});
  }

  // Reports hits; returns false once the verdict is final.
  bool apply(const match::ScanResult& r) {
    const match::RuleGeneration& gen = ins.matcher_->generation();
    for (uint8_t i = 0; i < r.n_hits; ++i) {
      uint16_t rule = r.hits[i];
      bool drops = r.drop && i + 1 == r.n_hits;
      Measure what = drops                                            ? Measure::kRuleDrop
                     : gen.rules[rule].action == rules::Action::kDrop ? Measure::kRuleWouldDrop
                                                                      : Measure::kRuleAlert;
      report(what, rule, true);
      ins.counters_.add(drops                             ? Counter::rule_drops
                        : what == Measure::kRuleWouldDrop ? Counter::rule_would_drops
                                                          : Counter::rule_alerts);
    }
    if (r.overflow) ins.counters_.add(Counter::hits_overflow);
    if (r.error) {
      ins.counters_.add(Counter::scan_errors);
      verdict = Verdict::kReset;
      return false;
    }
    if (r.drop) {
      verdict = Verdict::kReset;
      return false;
    }
    return true;
  }
  bool channel_scanned() const { return ins.matcher_->generation().scopes & rules::kScopeChannel; }

  // The connection's account became known or changed (a login; for SIP, each request's sender):
  // look it up and judge the connection by its measure.
  bool on_account(const proto::Session& s) {
    ins.counters_.add(counted().logins);
    // An MQTT broker closes a connection silent for 1.5 x its keep-alive (MQTT 3.1.1 3.1.2.10).
    if (s.keepalive_s) fs.keepalive_s = s.keepalive_s + s.keepalive_s / 2 + 1;
    if (s.account_truncated) ins.counters_.add(Counter::account_truncated);
    AccountRef& a = fs.account;
    a = AccountRef{};
    a.known = s.account_len > 0 && !s.account_truncated;
    if (!a.known) return true;
    a.key = policy::account_key(std::string_view(s.account, s.account_len));
    policy::AccountEntry* e = ins.account_entry(a);
    if (!e) return true;
    AccountState lapsed = AccountState::kNone;
    policy::MessageAction act = policy::judge_connect(*e, ins.now_ns_, &lapsed);
    read_measure(*e);
    if (lapsed != AccountState::kNone) report_lapse(lapsed);
    if (act == policy::MessageAction::kPass) return true;
    ins.counters_.add(Counter::account_connects_refused);
    report(act == policy::MessageAction::kResetShutdown ? Measure::kShutdown : Measure::kSuspended, 0, false);
    verdict = Verdict::kReset;
    return false;
  }
  // The sender's state as the message or connection began, for its records.
  void read_measure(const policy::AccountEntry& e) {
    uint64_t m = e.measure.load(std::memory_order_relaxed);
    d.state = policy::measure_state(m);
    d.until_s = policy::measure_until(m);
  }
  // The account's timed measure `from` ran out: a state change to none, no message involved.
  void report_lapse(AccountState from) {
    hits.on_hit(Hit{Measure::kLapsed, 0, &fs, &d, dir_index, from, AccountState::kNone, 0, nullptr, 0});
    ins.counters_.add(Counter::account_measures_lapsed);
  }

  // A message begins: the sender's measure decides now (the rate token is taken per message);
  // the outcome is applied once body bytes arrive, so its record carries their digest.
  bool on_message_begin(proto::MessageKind kind) {
    ins.counters_.add(counted().messages);
    d.kind = kind;
    d.channel_len = 0;
    d.channel_alias = 0;
    d.channel_truncated = false;
    d.body_started = false;
    d.record_message = false;
    d.pending_reset = false;
    d.state = AccountState::kNone;
    d.until_s = 0;
    d.markers = 0;
    if (ins.cfg_.digest_key) d.digest.begin(*ins.cfg_.digest_key);
    if (dir_index != 0) return true;
    policy::AccountEntry* e = ins.account_entry(fs.account);
    if (!e) return true;
    d.markers = e->markers.load(std::memory_order_relaxed);
    AccountState lapsed = AccountState::kNone;
    policy::MessageAction act = policy::judge_message(*e, ins.now_ns_, ins.cfg_.accounts->policy(), &lapsed);
    read_measure(*e);
    if (lapsed != AccountState::kNone) report_lapse(lapsed);
    switch (act) {
      case policy::MessageAction::kPass: break;
      case policy::MessageAction::kPassRecorded: d.record_message = true; break;
      case policy::MessageAction::kDropRate:
        d.pending = Measure::kRateDrop;
        d.pending_reset = true;
        break;
      case policy::MessageAction::kDropSuspended:
        d.pending = Measure::kSuspended;
        d.pending_reset = true;
        break;
      case policy::MessageAction::kResetShutdown:
        d.pending = Measure::kShutdown;
        d.pending_reset = true;
        break;
    }
    return true;
  }
  bool on_channel(const uint8_t* p, uint32_t n) {
    uint32_t room = DirState::kChannelCap - d.channel_len;
    uint32_t c = n < room ? n : room;
    std::memcpy(d.channel + d.channel_len, p, c);
    d.channel_len = static_cast<uint8_t>(d.channel_len + c);
    if (c < n && !d.channel_truncated) {
      d.channel_truncated = true;
      ins.counters_.add(Counter::channel_truncated);
    }
    return !channel_scanned() || apply(ins.matcher_->scan(stream, match::Field::kTopic, p, n, message()));
  }
  // SIP requests of other methods and responses pass (counted).
  bool on_sip_skipped(proto::SipSkipped) {
    ins.counters_.add(Counter::sip_other);
    return true;
  }
  bool on_channel_alias(uint16_t alias) {
    d.channel_alias = alias;
    return true;
  }
  bool on_channel_end() {
    if (d.channel_alias && !resolve_alias()) return false;
    return !channel_scanned() || apply(ins.matcher_->end_field(stream, match::Field::kTopic, message()));
  }
  // MQTT 5: a topic with an alias sets it; an empty one is named by it, and the message is judged
  // on the topic it stands for (scanned like a topic sent in full).
  bool resolve_alias() {
    uint64_t key = fs.epoch << 1 | dir_index;
    if (d.channel_len > 0) {
      proto::MqttAliasTable::Topic t;
      t.len = d.channel_len;
      t.truncated = d.channel_truncated;
      std::memcpy(t.text, d.channel, d.channel_len);
      ins.aliases_.set(key, d.channel_alias, t);
      return true;
    }
    const proto::MqttAliasTable::Topic* t = ins.aliases_.find(key, d.channel_alias);
    if (!t) {  // unknown here, as to a broker that never saw it set: a protocol error
      ins.counters_.add(Counter::mqtt_malformed);
      verdict = Verdict::kReset;
      return false;
    }
    std::memcpy(d.channel, t->text, t->len);
    d.channel_len = t->len;
    d.channel_truncated = t->truncated;
    return !channel_scanned() ||
           apply(ins.matcher_->scan(stream, match::Field::kTopic, reinterpret_cast<const uint8_t*>(d.channel),
                                    d.channel_len, message()));
  }

  // The first body bytes (or the end of a message without them): apply the sender's measure,
  // then the rules without a pattern. Returns false once the verdict is final.
  bool start_body() {
    d.body_started = true;
    if (d.pending_reset) {
      ins.counters_.add(d.pending == Measure::kRateDrop ? Counter::account_rate_drops
                                                        : Counter::account_measure_resets);
      report(d.pending, 0, true);
      verdict = Verdict::kReset;
      return false;
    }
    if (ins.matcher_->generation().any_body.empty()) return true;
    return apply(ins.matcher_->judge_any_body(message()));
  }
  bool on_body(const uint8_t* p, uint32_t n) {
    ins.counters_.add(counted().body_bytes, n);
    if (ins.cfg_.digest_key) d.digest.update(p, n);
    if (!d.body_started && !start_body()) return false;
    return apply(ins.matcher_->scan(stream, match::Field::kPayload, p, n, message()));
  }
  // One body field ends: its end-anchored matches, and the stream is ready for the next field.
  bool on_body_end() {
    if (!d.body_started && !start_body()) return false;
    return apply(ins.matcher_->end_field(stream, match::Field::kPayload, message()));
  }
  bool on_message_end() {
    if (!d.body_started && !start_body()) return false;
    if (d.record_message) {
      ins.counters_.add(Counter::account_warned_messages);
      report(Measure::kWarned, 0, true);
    }
    return true;
  }
};

template <typename HitSink>
Verdict Inspector::decode(FlowState& fs, uint32_t slot, uint8_t di, const uint8_t* p, uint32_t n, HitSink& sink) {
  DirState& d = fs.dir[di];
  DecodeSink<HitSink> ds{*this, fs, d, di, streams_->get(slot * 2 + di), sink};
  bool from_client = di == 0;
  proto::FeedResult fr = proto::FeedResult::kOk;
  bool violation = true;  // an error that breaks the protocol (not, say, TLS starting)
  switch (static_cast<proto::Protocol>(fs.protocol)) {
    case proto::Protocol::kMqtt: fr = d.mqtt.feed(p, n, from_client, fs.session, ds); break;
    case proto::Protocol::kXmpp: {
      auto& dec = decoders_.get<proto::XmppDecoder>(fs.decoders, di);
      fr = dec.feed(p, n, from_client, fs.session, ds);
      if (fr == proto::FeedResult::kError && !proto::xmpp_error_is_violation(dec.error())) {
        counters_.add(Counter::xmpp_encrypted);
        violation = false;
      }
      break;
    }
    case proto::Protocol::kSip:
      fr = decoders_.get<proto::SipDecoder>(fs.decoders, di).feed(p, n, from_client, fs.session, ds);
      break;
    case proto::Protocol::kIrc:
      fr = decoders_.get<proto::IrcDecoder>(fs.decoders, di).feed(p, n, from_client, fs.session, ds);
      break;
  }
  if (fr == proto::FeedResult::kError) {
    // Fail closed: what cannot be decoded (a violation, or a switch to TLS) cannot be judged.
    if (violation) counters_.add(kProtocolCounters[fs.protocol].malformed);
    ds.verdict = Verdict::kReset;
  }
  return ds.verdict;
}

template <typename HitSink>
Verdict Inspector::on_segment(FlowState& fs, uint32_t slot, const decode::PacketMeta& m, const uint8_t* payload,
                              bool from_a, uint8_t in_port, HitSink& sink, uint8_t* flow_class) {
  using namespace decode;
  uint8_t di = from_a == fs.client_is_a ? 0 : 1;
  *flow_class = class_of(fs);
  if (fs.uninspected) {
    if (m.tcp_flags & (kTcpRst | kTcpFin)) *flow_class = FlowClassMap::kClosing;
    return Verdict::kForward;
  }
  // A blocked flow passes nothing but the handshake of a new connection on the same addresses,
  // which the tracker lets restart the flow once the server accepts it.
  if (fs.blocked && !(m.tcp_flags & kTcpSyn)) {
    counters_.add(Counter::blocked_flow_drops);
    return Verdict::kDrop;
  }
  stream::SegmentPlan plan = tcp_.track(fs.tcp, di, m, payload, in_port);
  if (plan.action == stream::SegmentAction::kDrop) {
    if (fs.blocked) counters_.add(Counter::blocked_flow_drops);
    return Verdict::kDrop;
  }
  if (plan.action == stream::SegmentAction::kRestart) {
    // The same protocol as before, or detection again for a pending or detected one.
    if (!reset_messages(fs, slot, fs.protocol)) {
      counters_.add(Counter::decoders_full);
      fs.blocked = true;
      return Verdict::kReset;
    }
    counters_.add(Counter::flows_restarted);
  }
  *flow_class = class_of(fs);
  if (fs.blocked) {
    // A new connection's SYN waiting for the server, or a repeat of the old handshake.
    if (plan.new_len == 0) return Verdict::kForward;
    counters_.add(Counter::blocked_flow_drops);
    return Verdict::kDrop;
  }
  DirState& d = fs.dir[di];
  // A shut-down account loses every connection, on the connection's next packet either way.
  if (policy::AccountEntry* e = account_entry(fs.account); e) {
    uint64_t measure = e->measure.load(std::memory_order_relaxed);
    if (policy::measure_state(measure) == AccountState::kShutdown) {
      counters_.add(Counter::account_measure_resets);
      d.state = AccountState::kShutdown;
      sink.on_hit(Hit{Measure::kShutdown, 0, &fs, &d, di, AccountState::kShutdown, AccountState::kShutdown,
                      policy::measure_until(measure), nullptr, 0});
      fs.blocked = true;
      return Verdict::kReset;
    }
  }
  if (plan.new_len == 0) return Verdict::kForward;
  const uint8_t* bytes = payload + plan.new_offset;
  if (fs.protocol == kProtocolPending) {
    // The server may speak first (an IRC notice); only the client's first bytes name the protocol.
    if (di != 0) return Verdict::kForward;
    detect(fs, slot, bytes, plan.new_len);
    if (fs.uninspected) return Verdict::kForward;
    if (fs.protocol == kProtocolPending) {  // no decoder pair to be had: fail closed
      fs.blocked = true;
      return Verdict::kReset;
    }
  }
  Verdict v = decode(fs, slot, di, bytes, plan.new_len, sink);
  if (v == Verdict::kReset) fs.blocked = true;
  *flow_class = class_of(fs);
  return v;
}

template <typename HitSink>
Verdict Inspector::on_datagram(proto::Protocol protocol, const decode::PacketMeta& m, const uint8_t* payload,
                               bool from_client, HitSink& sink) {
  FlowState& fs = datagram_;
  fs.protocol = static_cast<uint8_t>(protocol);
  fs.session = proto::Session{};
  fs.account = AccountRef{};
  fs.epoch = ++epochs_;
  uint8_t di = from_client ? 0 : 1;
  fs.client_is_a = true;
  DirState& d = fs.dir[di];
  hs_stream_t* stream = streams_->get(streams_->count() - 1);
  match::Matcher::reset(stream);
  DecodeSink<HitSink> ds{*this, fs, d, di, stream, sink};
  datagram_sip_ = proto::SipDecoder();
  if (datagram_sip_.feed_datagram(payload, m.payload_len, from_client, fs.session, ds) == proto::FeedResult::kError) {
    counters_.add(kProtocolCounters[fs.protocol].malformed);
    return Verdict::kDrop;
  }
  // A datagram is one message: a verdict drops it alone; there is no connection to reset.
  return ds.verdict == Verdict::kForward ? Verdict::kForward : Verdict::kDrop;
}

}  // namespace imf::dp::inspect
