#include "sessions.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "flows.h"
#include "rng.h"

namespace imf::bench::synth {

namespace {

constexpr uint64_t kGroup = 64;  // flows whose handshakes (and closes) interleave

// TCP and MQTT state of one connection. [0] is the client, [1] the server.
struct FlowState {
  uint32_t seq[2];      // next sequence number each side sends
  uint16_t next_id[2];  // next MQTT packet identifier each side uses
  uint8_t unacked[2];   // data segments each side has received and not yet acknowledged
  uint8_t pad_[2];
};
static_assert(sizeof(FlowState) == 16);

// An MQTT packet under construction.
class MqttPacket {
 public:
  void start(uint8_t header, uint32_t remaining) {
    bytes_.clear();
    bytes_.push_back(header);
    do {
      uint8_t b = remaining & 0x7f;
      remaining >>= 7;
      bytes_.push_back(remaining ? (b | 0x80) : b);
    } while (remaining);
  }
  void u16(uint32_t v) {
    bytes_.push_back(static_cast<uint8_t>(v >> 8));
    bytes_.push_back(static_cast<uint8_t>(v));
  }
  void raw(std::string_view s) { bytes_.insert(bytes_.end(), s.begin(), s.end()); }
  void str(std::string_view s) {
    u16(static_cast<uint32_t>(s.size()));
    raw(s);
  }
  void byte(uint8_t b) { bytes_.push_back(b); }
  size_t size() const { return bytes_.size(); }
  const uint8_t* data() const { return bytes_.data(); }

 private:
  std::vector<uint8_t> bytes_;
};

class SessionGenerator {
 public:
  SessionGenerator(const SessionConfig& cfg, BodyMaker& bodies, Capture& capture, MessageLogWriter& log,
                   MessageStats* stats, FragmentStats* frag_stats)
      : cfg_(cfg),
        bodies_(bodies),
        capture_(capture),
        log_(log),
        stats_(stats),
        frag_stats_(frag_stats),
        rng_(cfg.seed),
        flows_(cfg.flows) {}

  void run() {
    for (uint64_t g = 0; g < cfg_.flows; g += kGroup) open(g, std::min(g + kGroup, cfg_.flows));
    uint64_t to_plant = static_cast<uint64_t>(std::llround(cfg_.match_fraction * static_cast<double>(cfg_.messages)));
    for (uint64_t m = 0; m < cfg_.messages; ++m) {
      // Selection sampling: exactly to_plant of the messages, each subset equally likely.
      bool plant = to_plant > 0 && rng_.below(cfg_.messages - m) < to_plant;
      to_plant -= plant;
      publish(plant);
    }
    for (uint64_t g = 0; g < cfg_.flows; g += kGroup) close(g, std::min(g + kGroup, cfg_.flows));
  }

 private:
  // One TCP segment with explicit sequence and acknowledgement numbers; as IPv4 fragments when it
  // carries data and its IP payload is longer than cfg_.fragment.
  void segment(uint64_t f, int dir, uint32_t seq, uint32_t ack, uint8_t flags, const uint8_t* p, uint32_t len,
               bool mss_option = false) {
    FlowEnds e = flow_ends(f, cfg_.server_port);
    TcpFields t{seq, ack, flags, mss_option};
    uint32_t ip_payload = kTcpHeader + (mss_option ? 4 : 0) + len;
    if (cfg_.fragment == 0 || len == 0 || ip_payload <= cfg_.fragment) {
      uint8_t* out = capture_.frame(f);
      capture_.commit(write_tcp_frame(out, e.addr(dir), t, ip_id_++, p, len, cfg_.fragment == 0));
      return;
    }
    write_tcp_frame(whole_, e.addr(dir), t, ip_id_++, p, len, false);
    uint32_t n = 0;
    for (uint32_t off = 0; off < ip_payload; off += cfg_.fragment, ++n) {
      uint8_t* out = capture_.frame(f);
      capture_.commit(write_ipv4_fragment(out, whole_, off, std::min(cfg_.fragment, ip_payload - off)));
    }
    ++frag_stats_->datagrams;
    frag_stats_->fragments += n;
    frag_stats_->max_per_datagram = std::max(frag_stats_->max_per_datagram, n);
  }

  void pure_ack(uint64_t f, int dir) {
    FlowState& s = flows_[f];
    segment(f, dir, s.seq[dir], s.seq[dir ^ 1], kTcpAck, nullptr, 0);
    s.unacked[dir] = 0;
  }

  // Sends `n` bytes from side `dir` in segments of at most kMss, calling on_segment(offset, len)
  // after each; the receiver acknowledges every second segment.
  template <typename OnSegment>
  void send(uint64_t f, int dir, const uint8_t* p, uint32_t n, OnSegment&& on_segment) {
    FlowState& s = flows_[f];
    for (uint32_t off = 0; off < n;) {
      uint32_t len = std::min(kMss, n - off);
      uint8_t flags = kTcpAck | (off + len == n ? kTcpPsh : 0);
      segment(f, dir, s.seq[dir], s.seq[dir ^ 1], flags, p + off, len);
      on_segment(off, len);
      s.seq[dir] += len;
      s.unacked[dir] = 0;  // the segment acknowledged everything received
      if (++s.unacked[dir ^ 1] >= 2) pure_ack(f, dir ^ 1);
      off += len;
    }
  }
  void send(uint64_t f, int dir, const MqttPacket& pkt) {
    send(f, dir, pkt.data(), static_cast<uint32_t>(pkt.size()), [](uint32_t, uint32_t) {});
  }

  uint16_t take_id(uint64_t f, int dir) {
    uint16_t& next = flows_[f].next_id[dir];
    uint16_t id = next;
    next = next == 0xffff ? 1 : next + 1;
    return id;
  }

  void open(uint64_t g0, uint64_t g1) {
    for (uint64_t f = g0; f < g1; ++f) {
      FlowState& s = flows_[f];
      uint64_t isn = mix64(cfg_.seed ^ (f * 0x2545f4914f6cdd1dull));
      s = FlowState{{static_cast<uint32_t>(isn), static_cast<uint32_t>(isn >> 32)}, {1, 1}, {0, 0}, {0, 0}};
      segment(f, 0, s.seq[0], 0, kTcpSyn, nullptr, 0, true);
      ++s.seq[0];
    }
    for (uint64_t f = g0; f < g1; ++f) {
      FlowState& s = flows_[f];
      segment(f, 1, s.seq[1], s.seq[0], kTcpSyn | kTcpAck, nullptr, 0, true);
      ++s.seq[1];
    }
    for (uint64_t f = g0; f < g1; ++f) segment(f, 0, flows_[f].seq[0], flows_[f].seq[1], kTcpAck, nullptr, 0);
    for (uint64_t f = g0; f < g1; ++f) {
      std::string n = std::to_string(f);
      char password[24];
      std::snprintf(password, sizeof(password), "pw-%08x", static_cast<uint32_t>(mix64(cfg_.seed + f)));
      std::string client_id = "synth-" + n, user = "user" + n;
      pkt_.start(0x10, static_cast<uint32_t>(10 + 2 + client_id.size() + 2 + user.size() + 2 + std::strlen(password)));
      pkt_.str("MQTT");
      pkt_.byte(4);     // protocol level 3.1.1
      pkt_.byte(0xc2);  // username, password, clean session
      pkt_.u16(60);     // keep-alive
      pkt_.str(client_id);
      pkt_.str(user);
      pkt_.str(password);
      send(f, 0, pkt_);
    }
    for (uint64_t f = g0; f < g1; ++f) {
      pkt_.start(0x20, 2);
      pkt_.u16(0);  // session present 0, accepted
      send(f, 1, pkt_);
    }
    for (uint64_t f = g0; f < g1; ++f) {
      std::string dm = "dm/user" + std::to_string(f);
      pkt_.start(0x82, static_cast<uint32_t>(2 + 2 + 11 + 1 + 2 + dm.size() + 1));
      pkt_.u16(take_id(f, 0));
      pkt_.str("chat/room/+");
      pkt_.byte(1);
      pkt_.str(dm);
      pkt_.byte(1);
      send(f, 0, pkt_);
    }
    for (uint64_t f = g0; f < g1; ++f) {
      pkt_.start(0x90, 4);
      pkt_.u16(static_cast<uint16_t>(flows_[f].next_id[0] - 1));  // the SUBSCRIBE's id
      pkt_.byte(1);
      pkt_.byte(1);
      send(f, 1, pkt_);
    }
  }

  void publish(bool plant) {
    uint64_t f = rng_.below(cfg_.flows);
    int dir = static_cast<int>(rng_.below(2));
    uint8_t qos = static_cast<uint8_t>(rng_.below(2));
    if (rng_.chance(0.7)) {
      topic_ = "chat/room/" + std::to_string(rng_.below(1000));
    } else {
      topic_ = "dm/user" + std::to_string(dir == 0 ? rng_.below(cfg_.flows) : f);
    }
    std::string_view body = bodies_.make(rng_, draw_message_size(rng_, cfg_.sizes), plant);

    uint32_t topic_len = static_cast<uint32_t>(topic_.size()), body_len = static_cast<uint32_t>(body.size());
    pkt_.start(static_cast<uint8_t>(0x30 | (qos << 1)), 2 + topic_len + (qos ? 2 : 0) + body_len);
    uint32_t topic_at = static_cast<uint32_t>(pkt_.size()) + 2;
    pkt_.str(topic_);
    uint16_t id = qos ? take_id(f, dir) : 0;
    if (qos) pkt_.u16(id);
    uint32_t body_at = static_cast<uint32_t>(pkt_.size());
    pkt_.raw(body);
    uint32_t total = static_cast<uint32_t>(pkt_.size());

    uint32_t stream = static_cast<uint32_t>(f * 2 + dir);
    const uint8_t* base = pkt_.data();
    // Log each field's piece in each segment; an empty field is one empty chunk where it sits.
    auto log_piece = [&](FieldKind kind, uint32_t fa, uint32_t fb, uint32_t sa, uint32_t sb) {
      if (fa == fb) {
        if (sa <= fa && (fa < sb || sb == total)) log_.chunk(stream, kind, true, base + fa, 0);
        return;
      }
      uint32_t a = std::max(fa, sa), b = std::min(fb, sb);
      if (a < b) log_.chunk(stream, kind, b == fb, base + a, b - a);
    };
    send(f, dir, base, total, [&](uint32_t off, uint32_t len) {
      log_piece(FieldKind::kTopic, topic_at, topic_at + topic_len, off, off + len);
      log_piece(FieldKind::kPayload, body_at, total, off, off + len);
    });
    log_.message();
    stats_->add(body_len, plant);

    if (qos) {
      pkt_.start(0x40, 2);
      pkt_.u16(id);
      send(f, dir ^ 1, pkt_);
    }
  }

  void close(uint64_t g0, uint64_t g1) {
    for (uint64_t f = g0; f < g1; ++f) {
      pkt_.start(0xe0, 0);
      send(f, 0, pkt_);
    }
    for (uint64_t f = g0; f < g1; ++f) {
      FlowState& s = flows_[f];
      segment(f, 0, s.seq[0], s.seq[1], kTcpFin | kTcpAck, nullptr, 0);
      ++s.seq[0];
    }
    for (uint64_t f = g0; f < g1; ++f) {
      FlowState& s = flows_[f];
      segment(f, 1, s.seq[1], s.seq[0], kTcpFin | kTcpAck, nullptr, 0);
      ++s.seq[1];
    }
    for (uint64_t f = g0; f < g1; ++f) segment(f, 0, flows_[f].seq[0], flows_[f].seq[1], kTcpAck, nullptr, 0);
  }

  const SessionConfig& cfg_;
  BodyMaker& bodies_;
  Capture& capture_;
  MessageLogWriter& log_;
  MessageStats* stats_;
  FragmentStats* frag_stats_;
  Rng rng_;
  std::vector<FlowState> flows_;
  MqttPacket pkt_;
  std::string topic_;
  uint16_t ip_id_ = 0;
  uint8_t whole_[kMaxFrame];  // a segment before it is cut into fragments
};

}  // namespace

void generate_mqtt_sessions(const SessionConfig& cfg, BodyMaker& bodies, Capture& capture, MessageLogWriter& log,
                            MessageStats* stats, FragmentStats* fragments) {
  SessionGenerator(cfg, bodies, capture, log, stats, fragments).run();
}

void generate_small(const SessionConfig& cfg, Capture& capture) {
  constexpr uint16_t kPort = 443;
  Rng rng(cfg.seed);
  uint16_t ip_id = 0;
  uint8_t datagram[18];
  for (uint64_t m = 0; m < cfg.messages; ++m) {
    uint64_t f = rng.below(cfg.flows);
    L4Addr a = flow_ends(f, kPort).addr(0);
    uint8_t* out = capture.frame(f);
    uint32_t n;
    if (f % 2 == 0) {
      uint64_t h = mix64(cfg.seed ^ (f * 0x2545f4914f6cdd1dull));
      n = write_tcp_frame(out, a, TcpFields{static_cast<uint32_t>(h), static_cast<uint32_t>(h >> 32), kTcpAck, false},
                          ip_id++, nullptr, 0);
    } else {
      for (size_t i = 0; i < sizeof(datagram); i += 8) {
        uint64_t r = rng.next();
        std::memcpy(datagram + i, &r, std::min<size_t>(8, sizeof(datagram) - i));
      }
      n = write_udp_frame(out, a, ip_id++, datagram, sizeof(datagram));
    }
    capture.commit(n);
  }
}

}  // namespace imf::bench::synth
