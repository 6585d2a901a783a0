#include "worker.h"

#include <rte_cycles.h>
#include <rte_prefetch.h>

#include <algorithm>

#include "action/normalize.h"
#include "action/tcp_reset.h"
#include "decode/checksum.h"
#include "decode/packet.h"

namespace imf::dp {

namespace {

using decode::DecodeStatus;
using decode::PacketMeta;
using inspect::Verdict;

// Turns measures and rule hits into events while the packet that caused them is at hand.
struct EventSink {
  LcoreCtx& c;
  const PacketMeta& m;
  uint64_t now;

  void on_hit(const inspect::Hit& h) {
    record::Event e;
    e.tsc = now;
    e.version = 0;
    e.until_s = h.until_s;
    std::memcpy(e.src_ip, m.src_ip, sizeof(e.src_ip));
    std::memcpy(e.dst_ip, m.dst_ip, sizeof(e.dst_ip));
    e.src_port = m.src_port;
    e.dst_port = m.dst_port;
    e.vlan = m.has_vlan ? (m.vlan_tci & 0x0fff) : 0;
    e.ip_version = m.ip_version;
    e.lcore = static_cast<uint8_t>(c.lcore_id);
    e.measure = static_cast<uint8_t>(h.what);
    e.state_before = static_cast<uint8_t>(h.state_before);
    e.state_after = static_cast<uint8_t>(h.state_after);
    e.to_client = h.dir_index;
    e.rule_len = 0;
    e.category_len = 0;
    if (inspect::measure_has_rule(h.what)) {
      Engine& eng = *c.engine.load(std::memory_order_relaxed);
      __atomic_store_n(&eng.rule_hits[h.rule], eng.rule_hits[h.rule] + 1, __ATOMIC_RELAXED);
      const rules::RuleMeta& rule = eng.gen->rules[h.rule];
      e.version = eng.gen->version;
      e.rule_len = static_cast<uint8_t>(std::min<size_t>(rule.id.size(), record::Event::kRuleIdCap));
      std::memcpy(e.rule, rule.id.data(), e.rule_len);
      e.category_len = static_cast<uint8_t>(std::min<size_t>(rule.cond.category.size(), record::Event::kCategoryCap));
      std::memcpy(e.category, rule.cond.category.data(), e.category_len);
    }
    e.has_digest = h.digest != nullptr;
    e.digest_bytes = h.digest_bytes;
    if (h.digest) std::memcpy(e.digest, h.digest, sizeof(e.digest));
    const proto::Session& s = h.flow->session;
    e.protocol = h.flow->protocol;
    e.message_kind = static_cast<uint8_t>(h.dir->kind);
    e.l4_proto = m.l4_proto;
    e.account_known = h.flow->account.known;
    e.account_len = s.account_len;
    std::memcpy(e.account, s.account, s.account_len);
    // Connection-level measures (no message at hand) name no channel.
    e.has_message = h.digest || inspect::measure_has_rule(h.what);
    e.channel_len = e.has_message ? h.dir->channel_len : 0;
    std::memcpy(e.channel, h.dir->channel, e.channel_len);
    if (!c.events->push(e)) c.counters.add(Counter::events_lost);
  }
};

void send_frame(LcoreCtx& c, uint16_t port, const uint8_t* frame, uint16_t len) {
  rte_mbuf* m = rte_pktmbuf_alloc(c.pool);
  if (!m) {
    c.counters.add(Counter::reset_alloc_failed);
    return;
  }
  auto* dst = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, len));
  std::memcpy(dst, frame, len);
  rte_eth_tx_buffer(port, c.queue, c.tx[port], m);
  c.counters.add(Counter::resets_sent);
}

// Resets both ends: onward to the receiver through `out`, back to the sender through `in`.
void send_resets(LcoreCtx& c, uint16_t in, uint16_t out, const uint8_t* frame, const PacketMeta& m) {
  uint8_t buf[action::kResetFrameMax];
  uint16_t len = action::build_reset(frame, m, action::ResetTarget::kReceiver, buf);
  send_frame(c, out, buf, len);
  len = action::build_reset(frame, m, action::ResetTarget::kSender, buf);
  send_frame(c, in, buf, len);
}

// What the first pass over a burst learns of a packet, for the passes after it.
struct PacketPlan {
  PacketMeta m;
  flow::FlowKey key;
  uint64_t hash;
  uint64_t now;      // the packet's time in ticks
  bool inspect;      // TCP of an IM protocol (or to be detected), checksums verified
  bool datagram;     // UDP of an IM protocol, checksums verified
  bool drop;         // malformed: a receiver would discard it too
  bool fragment;     // an IP fragment, for the reassembler
  uint8_t protocol;  // proto::Protocol, or inspect::kProtocolPending (detection)
  bool to_server_port;
  bool from_a;
};

// The packet's time: the burst's, or offline its capture time (kept monotonic: flow ages are
// differences of it).
uint64_t packet_time(LcoreCtx& c, const rte_mbuf* mbuf, uint64_t burst_now) {
  if (!c.capture_time || !(mbuf->ol_flags & c.timestamp_flag)) return c.capture_time ? c.capture_now : burst_now;
  // net_pcap stamps the capture's time in microseconds (the field's unit is the driver's choice).
  auto ns = static_cast<int64_t>(*RTE_MBUF_DYNFIELD(mbuf, c.timestamp_offset, const rte_mbuf_timestamp_t*)) * 1000;
  if (c.capture_base_ns < 0) c.capture_base_ns = ns;
  int64_t since = std::max<int64_t>(ns - c.capture_base_ns, 0);
  auto t =
      c.clock.base_tsc + static_cast<uint64_t>(static_cast<double>(since) * 1e-9 * static_cast<double>(c.clock.tsc_hz));
  c.capture_now = std::max(c.capture_now, t);
  return c.capture_now;
}

// Whether the checksums of an inspected packet hold: the NIC's verdict where it gave one, else
// computed. A receiver discards a packet whose checksum fails, so its bytes must never be
// inspected as if they had arrived (insertion).
bool checksums_ok(LcoreCtx& c, uint64_t ol_flags, const uint8_t* frame, const PacketMeta& m) {
  uint64_t ip = ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
  if (m.ip_version == 4 && ip != RTE_MBUF_F_RX_IP_CKSUM_GOOD &&
      (ip == RTE_MBUF_F_RX_IP_CKSUM_BAD || !decode::ipv4_header_checksum_ok(frame, m))) {
    c.counters.add(Counter::checksum_bad_ip);
    return false;
  }
  uint64_t l4 = ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
  if (l4 != RTE_MBUF_F_RX_L4_CKSUM_GOOD && (l4 == RTE_MBUF_F_RX_L4_CKSUM_BAD || !decode::l4_checksum_ok(frame, m))) {
    c.counters.add(Counter::checksum_bad_l4);
    return false;
  }
  return true;
}

// Decodes a frame and plans its judgement: for inspected TCP, verifies checksums and computes the
// flow key. `ol_flags` carries the NIC's checksum verdicts (0: none).
void plan_frame(LcoreCtx& c, const uint8_t* frame, uint32_t len, uint64_t ol_flags, PacketPlan& p) {
  p.inspect = false;
  p.datagram = false;
  p.drop = false;
  p.fragment = false;
  switch (decode::decode_packet(frame, len, &p.m)) {
    case DecodeStatus::kOk: {
      bool tcp = p.m.l4_proto == decode::kProtoTcp;
      if (!tcp && p.m.l4_proto != decode::kProtoUdp) return;
      const auto& ports = tcp ? c.services->tcp : c.services->udp;
      uint8_t service = ports[p.m.dst_port];
      p.to_server_port = service != 0;
      if (!service) service = ports[p.m.src_port];
      if (service) {
        p.protocol = static_cast<uint8_t>(service - 1);
      } else if (tcp && c.services->detect) {
        // Its SYN will say which end serves; until then the lower port is the likelier server.
        p.protocol = inspect::kProtocolPending;
        p.to_server_port = p.m.dst_port < p.m.src_port;
      } else {
        if (tcp) c.counters.add(Counter::tcp_uninspected);
        return;
      }
      if (c.verify_checksums && !checksums_ok(c, ol_flags, frame, p.m)) {
        p.drop = true;
        return;
      }
      if (!tcp) {
        p.datagram = true;
        return;
      }
      p.inspect = true;
      p.key = flow::make_flow_key(p.m, &p.from_a);
      p.hash = flow::hash_flow_key(p.key);
      return;
    }
    case DecodeStatus::kNonIp: c.counters.add(Counter::decode_non_ip); return;
    // An IP packet whose headers do not hold together is discarded by any receiver; forwarding
    // it could only serve to desynchronize a filter.
    case DecodeStatus::kTruncated:
      c.counters.add(Counter::decode_truncated);
      p.drop = true;
      return;
    case DecodeStatus::kBadHeader:
      c.counters.add(Counter::decode_bad_header);
      p.drop = true;
      return;
    case DecodeStatus::kFragment:
      // Judged as a whole once reassembled (the reassembler counts it).
      if (c.defrag) {
        p.fragment = true;
      } else {
        c.counters.add(Counter::ip_fragments);
      }
      return;
  }
}

// Pass 1: decode, count the outcome, and for inspected TCP verify checksums, compute the flow
// key and prefetch its hash bucket.
void plan_packet(LcoreCtx& c, const rte_mbuf* mbuf, PacketPlan& p, uint64_t burst_now) {
  p.now = packet_time(c, mbuf, burst_now);
  plan_frame(c, rte_pktmbuf_mtod(mbuf, const uint8_t*), rte_pktmbuf_data_len(mbuf), mbuf->ol_flags, p);
  if (p.inspect) c.flows->prefetch_bucket(p.hash);
}

// Pass 2: guess the flow's slot from its bucket and prefetch the entry and the flow's state.
void prefetch_flow(LcoreCtx& c, const PacketPlan& p) {
  uint32_t slot = c.flows->peek(p.hash);
  if (slot == flow::FlowTable::kNone) return;
  c.flows->prefetch_entry(slot);
  // A segment to the server port comes from the client: direction 0.
  c.inspector->prefetch(c.flow_state[slot], slot, p.m.payload_len > 0, p.to_server_port ? 0 : 1);
}

// A connection not in the flow table: start tracking it, or judge it by --midstream.
Verdict open_flow(LcoreCtx& c, const PacketPlan& p, uint8_t in_port, uint32_t* slot) {
  const PacketMeta& m = p.m;
  inspect::NewFlow what = c.inspector->classify_new(m);
  switch (what) {
    case inspect::NewFlow::kForward: return Verdict::kForward;
    case inspect::NewFlow::kDrop: return Verdict::kDrop;
    case inspect::NewFlow::kReset: return Verdict::kReset;
    case inspect::NewFlow::kOpen:
    case inspect::NewFlow::kOpenUninspected: break;
  }
  bool syn = what == inspect::NewFlow::kOpen;
  uint8_t cls = syn ? inspect::FlowClassMap::kHalfOpen : c.inspector->classes().established(0);
  bool evicted;
  *slot = c.flows->insert(p.key, p.hash, p.now, cls, &evicted);
  if (*slot == flow::FlowTable::kNone) {
    c.counters.add(Counter::flows_refused);
    return Verdict::kDrop;
  }
  c.counters.add(Counter::flows_created);
  inspect::FlowState& fs = c.flow_state[*slot];
  if (evicted) {
    c.counters.add(Counter::flows_evicted);
    c.inspector->release_flow(fs);
  }
  if (!syn) {
    c.inspector->init_uninspected(fs, m, p.from_a, p.to_server_port);
  } else if (!c.inspector->init_flow(fs, *slot, m, p.from_a, in_port, p.protocol)) {
    // No decoder state left for the protocol: refused, as a full table refuses.
    c.flows->remove(*slot);
    *slot = flow::FlowTable::kNone;
    return Verdict::kDrop;
  }
  return Verdict::kForward;
}

Verdict inspect_tcp(LcoreCtx& c, const uint8_t* frame, const PacketPlan& p, uint16_t in) {
  const PacketMeta& m = p.m;
  uint8_t in_port = c.n_ports > 1 && !c.sides_on_one_port ? static_cast<uint8_t>(in) : stream::kAnyPort;
  uint32_t slot = c.flows->lookup(p.key, p.hash, p.now);
  if (slot == flow::FlowTable::kNone) {
    Verdict v = open_flow(c, p, in_port, &slot);
    if (slot == flow::FlowTable::kNone) return v;
  }
  EventSink sink{c, m, p.now};
  uint8_t cls;
  inspect::FlowState& fs = c.flow_state[slot];
  bool undetermined = fs.protocol == inspect::kProtocolPending && !fs.uninspected;
  Verdict v = c.inspector->on_segment(fs, slot, m, frame + m.payload_offset, p.from_a, in_port, sink, &cls);
  if (undetermined && fs.uninspected) {  // the client spoke to this port
    uint32_t& n = c.undetected_by_port[m.dst_port];
    __atomic_store_n(&n, n + 1, __ATOMIC_RELAXED);  // read by the stats reader
  }
  if (cls != c.flows->flow_class(slot)) {
    if (cls == inspect::FlowClassMap::kClosing) c.counters.add(Counter::flows_closed);
    c.flows->set_class(slot, cls);
  }
  return v;
}

// A datagram of a datagram protocol (SIP over UDP): judged alone, dropped alone.
Verdict inspect_datagram(LcoreCtx& c, const uint8_t* frame, const PacketPlan& p) {
  EventSink sink{c, p.m, p.now};
  return c.inspector->on_datagram(static_cast<proto::Protocol>(p.protocol), p.m, frame + p.m.payload_offset,
                                  p.to_server_port, sink);
}

// What reaches the server must be what was judged: past every hop a TTL could expire on, and
// with no byte taken out of band.
void normalize(LcoreCtx& c, uint8_t* frame, const PacketMeta& m) {
  if (action::raise_ttl(frame, m, c.min_ttl)) c.counters.add(Counter::ttl_raised);
  if (action::clear_urgent(frame, m)) c.counters.add(Counter::tcp_urgent_cleared);
}

// A complete datagram: judged as one packet, then its original fragments all go on or all are
// dropped. Returns how many were queued to go on.
unsigned judge_datagram(LcoreCtx& c, uint16_t in, const defrag::Datagram& dg, uint64_t now) {
  PacketPlan p;
  p.now = now;
  plan_frame(c, dg.frame, dg.len, 0, p);
  Verdict v = p.drop ? Verdict::kDrop : p.inspect ? inspect_tcp(c, dg.frame, p, in) : Verdict::kForward;
  if (p.datagram) v = inspect_datagram(c, dg.frame, p);
  // The urgent pointer lives in one fragment only; a fragmented segment with urgent data is not
  // worth rewriting (TCP does not fragment): it is dropped.
  if (v == Verdict::kForward && p.inspect && (p.m.tcp_flags & decode::kTcpUrg)) {
    c.counters.add(Counter::tcp_invalid);
    v = Verdict::kDrop;
  }
  uint16_t out = c.peer[in];
  if (v == Verdict::kReset) send_resets(c, in, out, dg.frame, p.m);
  for (uint8_t i = 0; i < dg.n_fragments; ++i) {
    if (v == Verdict::kForward) {
      rte_mbuf* f = dg.fragments[i];
      if (p.inspect || p.datagram) {
        PacketMeta fm;
        auto* frame = rte_pktmbuf_mtod(f, uint8_t*);
        decode::decode_packet(frame, rte_pktmbuf_data_len(f), &fm);  // kFragment: its IP header only
        normalize(c, frame, fm);
      }
      rte_eth_tx_buffer(out, c.queue, c.tx[out], f);
      c.counters.add(Counter::forwarded);
    } else {
      rte_pktmbuf_free(dg.fragments[i]);
      c.counters.add(Counter::dropped);
    }
  }
  return v == Verdict::kForward ? dg.n_fragments : 0;
}

// Expires idle flows and incomplete datagrams, at most every aging_ticks of `clock`.
void age(LcoreCtx& c, uint64_t clock) {
  if (clock - c.last_aging <= c.aging_ticks) return;
  uint32_t aged = c.flows->expire(clock, 64, [&c](uint32_t slot) { c.inspector->release_flow(c.flow_state[slot]); });
  if (aged) c.counters.add(Counter::flows_aged, aged);
  if (c.defrag) c.defrag->expire(clock);
  c.last_aging = clock;
}

// Pass 3: judge and act. Returns how many packets were queued to go on.
unsigned judge_packet(LcoreCtx& c, uint16_t in, rte_mbuf* mbuf, const PacketPlan& p) {
  if (c.capture_time) age(c, p.now);  // a pause inside one burst of a capture is still a pause
  if (p.fragment) {
    defrag::Datagram dg;
    if (c.defrag->add(mbuf, p.m, p.now, &dg) != defrag::AddResult::kComplete) return 0;  // held or dropped
    return judge_datagram(c, in, dg, p.now);
  }
  auto* frame = rte_pktmbuf_mtod(mbuf, uint8_t*);
  Verdict v = p.drop       ? Verdict::kDrop
              : p.inspect  ? inspect_tcp(c, frame, p, in)
              : p.datagram ? inspect_datagram(c, frame, p)
                           : Verdict::kForward;
  uint16_t out = c.peer[in];
  switch (v) {
    case Verdict::kForward:
      if (p.inspect || p.datagram) normalize(c, frame, p.m);
      rte_eth_tx_buffer(out, c.queue, c.tx[out], mbuf);
      c.counters.add(Counter::forwarded);
      return 1;
    case Verdict::kReset: send_resets(c, in, out, frame, p.m); [[fallthrough]];
    case Verdict::kDrop:
      rte_pktmbuf_free(mbuf);
      c.counters.add(Counter::dropped);
      return 0;
  }
  return 0;
}

// Runs one RX burst through the three passes. Splitting the work lets each pass's memory
// accesses (hash buckets, then flow entries and state) be prefetched a whole burst ahead of use.
unsigned process_burst(LcoreCtx& c, uint16_t in, rte_mbuf** pkts, uint16_t n, uint64_t now) {
  PacketPlan plan[kBurst];
  for (uint16_t i = 0; i < n && i < 4; ++i) rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void*));
  for (uint16_t i = 0; i < n; ++i) {
    if (i + 4 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 4], void*));
    plan_packet(c, pkts[i], plan[i], now);
  }
  for (uint16_t i = 0; i < n; ++i) {
    if (plan[i].inspect) prefetch_flow(c, plan[i]);
  }
  unsigned sent = 0;
  for (uint16_t i = 0; i < n; ++i) sent += judge_packet(c, in, pkts[i], plan[i]);
  return sent;
}

void flush_tx(LcoreCtx& c) {
  for (uint16_t p = 0; p < c.n_ports; ++p) rte_eth_tx_buffer_flush(p, c.queue, c.tx[p]);
}

// Switches to a pending rule set, if any; between bursts, so a packet sees one version only.
void take_pending_engine(LcoreCtx& c) {
  Engine* next = c.pending.load(std::memory_order_acquire);
  if (!next || c.retired.load(std::memory_order_acquire)) return;  // the installer collects first
  c.inspector->use(*next->matcher, *next->streams);
  Engine* old = c.engine.exchange(next, std::memory_order_acq_rel);
  c.pending.store(nullptr, std::memory_order_relaxed);
  c.retired.store(old, std::memory_order_release);
  c.version.store(next->gen->version, std::memory_order_release);
}

}  // namespace

Result<std::unique_ptr<Engine>> make_engine(const match::RuleGeneration& gen, uint32_t flows) {
  auto e = std::make_unique<Engine>();
  e->gen = &gen;
  auto streams = match::StreamPool::create(gen, flows * 2 + 1);  // both directions of each flow, and datagrams
  if (!streams) return make_error(streams.error());
  e->streams = std::move(streams.value());
  auto matcher = match::Matcher::create(gen);
  if (!matcher) return make_error(matcher.error());
  e->matcher = std::move(matcher.value());
  e->rule_hits.reset(new uint64_t[gen.rules.size()]());
  e->bytes = engine_bytes(gen, flows);
  return e;
}

size_t engine_bytes(const match::RuleGeneration& gen, uint32_t flows) {
  size_t scratch = 0;
  hs_scratch_size(gen.scratch_prototype.get(), &scratch);
  return (size_t{flows} * 2 + 1) * gen.stream_size + scratch + gen.rules.size() * sizeof(uint64_t);
}

int worker_main(void* arg) {
  LcoreCtx& c = *static_cast<LcoreCtx*>(arg);
  rte_mbuf* pkts[kBurst];
  uint64_t rx_total = 0;
  if (c.qsv) {
    rte_rcu_qsbr_thread_register(c.qsv, c.qsv_id);
    rte_rcu_qsbr_thread_online(c.qsv, c.qsv_id);
  }
  c.loop_start_tsc = rte_rdtsc();
  if (c.capture_time) c.capture_now = c.clock.base_tsc;
  c.last_aging = c.capture_time ? c.capture_now : c.loop_start_tsc;
  const double ns_per_tsc = c.clock.tsc_hz ? 1e9 / static_cast<double>(c.clock.tsc_hz) : 0;

  while (!c.stop->load(std::memory_order_relaxed)) {
    uint64_t now = rte_rdtsc();
    /* Nothing read under RCU is held across iterations: report quiescence, pick up rule sets. */
    if (c.qsv) rte_rcu_qsbr_quiescent(c.qsv, c.qsv_id);
    take_pending_engine(c);
    c.inspector->set_now(c.clock.base_realtime_ns + static_cast<int64_t>((now - c.clock.base_tsc) * ns_per_tsc));

    /* Flow and fragment aging, every aging_ticks (~100 us); offline per packet, by capture time. */
    if (!c.capture_time) age(c, now);

    /* RX a burst from each port and judge it. */
    unsigned sent = 0;
    uint16_t received = 0;
    for (uint16_t in = 0; in < c.n_ports; ++in) {
      uint16_t n = rte_eth_rx_burst(in, c.queue, pkts, kBurst);
      if (n == 0) continue;
      received += n;
      sent += process_burst(c, in, pkts, n, now);
    }
    if (received == 0) continue;
    c.counters.add(Counter::rx_packets, received);
    rx_total += received;

    /* TX what this iteration judged; its latency runs from before the RX bursts to here. */
    flush_tx(c);
    if (sent) c.latency.add(rte_rdtsc() - now, sent);
    if (c.stop_after_rx && rx_total >= c.stop_after_rx) break;
  }
  flush_tx(c);
  if (c.qsv) {  // an lcore that stopped must not hold up grace periods
    rte_rcu_qsbr_thread_offline(c.qsv, c.qsv_id);
    rte_rcu_qsbr_thread_unregister(c.qsv, c.qsv_id);
  }
  c.loop_end_tsc = rte_rdtsc();
  c.finished.store(true, std::memory_order_release);  // orders the final counters before the flag
  return 0;
}

}  // namespace imf::dp
