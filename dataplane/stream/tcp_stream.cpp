#include "stream/tcp_stream.h"

#include <algorithm>

namespace imf::dp::stream {

namespace {

using decode::kTcpAck;
using decode::kTcpFin;
using decode::kTcpRst;
using decode::kTcpSyn;
using decode::PacketMeta;

constexpr uint8_t kMaxWindowScale = 14;  // RFC 7323 2.3; larger shifts count as 14

SegmentPlan forward() { return {SegmentAction::kForward, 0, 0}; }

}  // namespace

void TcpTracker::open(TcpConn& c, const PacketMeta& syn, uint8_t in_port) {
  release(c);
  c = TcpConn{};
  c.end[0].isn = syn.seq;
  c.end[0].next_seq = syn.seq + 1;
  c.syn_wscale = syn.tcp_wscale;
  c.syn_window = syn.tcp_window;
  c.client_port = in_port;
}

SegmentPlan TcpTracker::track(TcpConn& c, uint8_t side, const PacketMeta& m, const uint8_t* payload, uint8_t in_port) {
  if (c.client_port != kAnyPort && (in_port == c.client_port) != (side == 0)) return drop(Counter::tcp_wrong_side);
  uint8_t f = m.tcp_flags;
  if (f & kTcpRst) return on_rst(c, side, m);
  if (f & kTcpSyn) return (f & kTcpAck) ? on_syn_ack(c, side, m, payload) : on_syn(c, side, m, payload);
  // Before the server accepted the SYN nothing but SYNs and RSTs is valid.
  if (c.state == ConnState::kSynSent) return drop(Counter::tcp_invalid);
  if (!(f & kTcpAck)) return drop(Counter::tcp_no_ack);  // RFC 793 p.72: discarded in a synchronized state
  if (cfg_.validate && !ack_acceptable(c, side, m.ack)) return drop(Counter::tcp_bad_ack);
  SegmentPlan plan = on_data(c, side, m, payload, m.seq, true);
  // The client's ACK of the server's SYN completes the handshake. Until then the flow is as
  // cheap to give up as any half-open one: a flood answered by SYN/ACKs stays in that class.
  if (c.state == ConnState::kSynReceived && side == 0 && plan.action == SegmentAction::kForward &&
      seq_after(m.ack, c.end[1].isn))
    c.state = ConnState::kEstablished;
  return plan;
}

SegmentPlan TcpTracker::on_rst(TcpConn& c, uint8_t side, const PacketMeta& m) {
  const TcpEnd& s = c.end[side];
  if (c.state == ConnState::kSynSent) {
    // The server refusing the SYN: acceptable when it acknowledges it (RFC 793 p.66-67).
    bool acks_syn = (m.tcp_flags & kTcpAck) && seq_after(m.ack, c.end[0].isn) && !seq_after(m.ack, c.end[0].seq_end());
    if (side == 1 && !acks_syn) return drop(Counter::tcp_rst_out_of_window);
    counters_.add(Counter::tcp_rst_accepted);
    c.state = ConnState::kClosing;
    return forward();
  }
  if (!cfg_.validate) {
    c.state = ConnState::kClosing;
    return forward();
  }
  // The receiver's next expected sequence number lies between what it acknowledged and what
  // passed here; an RST there may be the exact one it accepts.
  if (!seq_before(m.seq, s.base()) && !seq_after(m.seq, s.seq_end())) {
    counters_.add(Counter::tcp_rst_accepted);
    c.state = ConnState::kClosing;
    return forward();
  }
  if (s.wnd_known && seq_after(m.seq, s.seq_end()) && seq_before(m.seq, s.wnd_end)) {
    counters_.add(Counter::tcp_rst_in_window);
    return forward();
  }
  return drop(Counter::tcp_rst_out_of_window);
}

SegmentPlan TcpTracker::on_syn(TcpConn& c, uint8_t side, const PacketMeta& m, const uint8_t* payload) {
  if (side != 0) return drop(Counter::tcp_invalid);  // a server does not open connections
  if (c.end[0].fin && c.end[1].fin) {
    // Closed both ways (TIME_WAIT reuse): the old connection can take no more client data, so
    // the new one starts at once.
    open(c, m, c.client_port);
    SegmentPlan plan = m.payload_len ? on_data(c, 0, m, payload, m.seq + 1, false) : forward();
    if (plan.action == SegmentAction::kForward) plan.action = SegmentAction::kRestart;
    return plan;
  }
  if (m.seq == c.end[0].isn) {
    // The SYN of this connection (first or retransmitted): its data starts after it.
    if (m.payload_len == 0) return forward();
    return on_data(c, 0, m, payload, m.seq + 1, false);
  }
  // A new connection on the same addresses. The old one may still be alive at the server (a SYN
  // in its window only draws a challenge ACK), so nothing changes until the server accepts this
  // one; data on such a SYN cannot be judged against either and is dropped.
  counters_.add(Counter::tcp_syn_new_isn);
  if (m.payload_len > 0) return drop(Counter::tcp_invalid);
  c.pending = true;
  c.pending_isn = m.seq;
  c.pending_wscale = m.tcp_wscale;
  c.pending_window = m.tcp_window;
  return forward();
}

void TcpTracker::establish(TcpConn& c, const PacketMeta& sa) {
  TcpEnd& client = c.end[0];
  TcpEnd& server = c.end[1];
  server.isn = sa.seq;
  server.next_seq = sa.seq + 1;
  // Window scaling applies only when both SYNs offered it; windows in SYNs are never scaled.
  bool scaled = c.syn_wscale != 0xff && sa.tcp_wscale != 0xff;
  client.wscale = scaled ? std::min(c.syn_wscale, kMaxWindowScale) : 0;
  server.wscale = scaled ? std::min(sa.tcp_wscale, kMaxWindowScale) : 0;
  client.wnd_end = sa.ack + sa.tcp_window;
  client.wnd_known = true;
  client.max_wnd = c.syn_window;
  server.wnd_end = server.next_seq + c.syn_window;
  server.wnd_known = true;
  server.max_wnd = sa.tcp_window;
  c.state = ConnState::kSynReceived;
}

SegmentPlan TcpTracker::on_syn_ack(TcpConn& c, uint8_t side, const PacketMeta& m, const uint8_t* payload) {
  if (side != 1) return drop(Counter::tcp_invalid);
  TcpEnd& client = c.end[0];
  bool restart = false;
  if (c.state == ConnState::kSynSent && seq_after(m.ack, client.isn) && !seq_after(m.ack, client.seq_end())) {
    // The answer to the client's SYN (acknowledging any data on it the server took).
  } else if (c.pending && m.ack == c.pending_isn + 1) {
    // The server accepted the new connection: the old one is gone at the server.
    release(c);
    uint8_t port = c.client_port;
    uint32_t isn = c.pending_isn;
    uint8_t wscale = c.pending_wscale;
    uint16_t window = c.pending_window;
    c = TcpConn{};
    c.client_port = port;
    c.end[0].isn = isn;
    c.end[0].next_seq = isn + 1;
    c.syn_wscale = wscale;
    c.syn_window = window;
    restart = true;
  } else if (c.state != ConnState::kSynSent && m.seq == c.end[1].isn) {
    // A retransmitted SYN/ACK: any data on it is checked like any repeated bytes.
    if (m.payload_len == 0) return forward();
    return on_data(c, 1, m, payload, m.seq + 1, false);
  } else {
    return drop(Counter::tcp_invalid);  // the client would answer it with an RST
  }
  establish(c, m);
  if (cfg_.validate) {
    uint32_t acked = std::min(m.ack - client.base(), client.retained.len);
    store_.consume(client.retained, acked);
  }
  SegmentPlan plan = m.payload_len ? on_data(c, 1, m, payload, m.seq + 1, false) : forward();
  if (restart && plan.action == SegmentAction::kForward) plan.action = SegmentAction::kRestart;
  return plan;
}

bool TcpTracker::ack_acceptable(const TcpConn& c, uint8_t side, uint32_t ack) const {
  const TcpEnd& s = c.end[side];
  const TcpEnd& r = c.end[side ^ 1];
  if (seq_after(ack, r.seq_end())) return false;  // acknowledges what the peer never sent
  // Older than the window the acknowledging side advertised (and than the bytes acknowledged so
  // far): RFC 5961 5.2, as Linux applies it (max_window bounded by bytes_acked).
  uint32_t acked_so_far = r.base() - (r.isn + 1);
  return !seq_before(ack, r.base() - std::min(s.max_wnd, acked_so_far));
}

void TcpTracker::take_ack(TcpConn& c, uint8_t side, const PacketMeta& m) {
  TcpEnd& s = c.end[side];
  TcpEnd& r = c.end[side ^ 1];
  if (cfg_.validate && seq_after(m.ack, r.base())) {
    // The peer has these bytes: no later copy of them can reach its application.
    uint32_t n = std::min(m.ack - r.base(), r.retained.len);
    store_.consume(r.retained, n);
  }
  uint32_t window = uint32_t{m.tcp_window} << s.wscale;
  if (!r.wnd_known || seq_after(m.ack + window, r.wnd_end)) r.wnd_end = m.ack + window;
  r.wnd_known = true;
  s.max_wnd = std::max(s.max_wnd, window);
}

SegmentPlan TcpTracker::on_data(TcpConn& c, uint8_t side, const PacketMeta& m, const uint8_t* payload, uint32_t seq,
                                bool with_ack) {
  TcpEnd& s = c.end[side];
  uint32_t len = m.payload_len;
  bool fin = (m.tcp_flags & kTcpFin) != 0;
  uint32_t end = seq + len;
  SegmentPlan plan = forward();
  if (len > 0 || fin) {
    if (seq_after(seq, s.next_seq)) return drop(Counter::tcp_out_of_order);
    // A FIN anywhere but at the end of the inspected data would cut the stream short at a
    // receiver that has not yet got the bytes after it.
    if (cfg_.validate && fin && seq_before(end, s.next_seq)) return drop(Counter::tcp_overlap_mismatch);
    if (cfg_.validate && len > 0) {
      if (s.wnd_known && !seq_before(seq, s.wnd_end)) return drop(Counter::tcp_beyond_window);
      if (s.fin && seq_after(end, s.next_seq)) return drop(Counter::tcp_data_after_fin);
      // Bytes repeating retained sequence space must repeat the retained bytes.
      uint32_t from = seq_after(seq, s.base()) ? seq : s.base();
      uint32_t to = seq_before(end, s.next_seq) ? end : s.next_seq;
      if (seq_before(from, to) && !store_.equals(s.retained, from - s.base(), payload + (from - seq), to - from))
        return drop(Counter::tcp_overlap_mismatch);
    }
    if (seq_after(end, s.next_seq)) {
      plan.new_offset = s.next_seq - seq;
      plan.new_len = end - s.next_seq;
      if (cfg_.validate && !store_.append(s.retained, payload + plan.new_offset, plan.new_len, cfg_.retain_cap))
        return drop(Counter::tcp_retain_full);
      s.next_seq = end;
    } else if (len > 0) {
      counters_.add(Counter::tcp_retransmits);
    }
    if (fin && !s.fin && end == s.next_seq) {
      s.fin = true;
      if (c.end[side ^ 1].fin) c.state = ConnState::kClosing;
    }
  }
  if (with_ack) take_ack(c, side, m);
  return plan;
}

}  // namespace imf::dp::stream
