// TCP as the end hosts see it, for one connection through the appliance.
//
// The filter is only as good as its agreement with the receiver about which bytes make up the
// stream. The tracker keeps that agreement by construction rather than by guessing the receiver:
//  - bytes are inspected strictly in sequence; a segment ahead of the next expected byte is
//    dropped (the sender retransmits it once the gap is filled), so nothing uninspected reaches
//    the receiver;
//  - every inspected byte is retained until the receiver acknowledges it, and any segment that
//    repeats retained sequence space must repeat its bytes: equal, it is forwarded; different, it
//    is dropped. Whatever made the receiver discard the first copy (a bad checksum, a TTL that
//    expires on the way, an old timestamp, no ACK flag, a window it was outside of), the receiver
//    can only ever accept the bytes that were inspected. (Snort's normalizer and Suricata's
//    stream.inline rewrite such bytes to the inspected ones instead; dropping needs no packet
//    rewriting, and only a sender that changes its own bytes is ever stalled by it.)
//  - segments the receiver itself would discard are dropped before inspection: data without
//    ACK, an ACK of data never sent or older than the window (RFC 5961 5.2), data starting
//    beyond the advertised window, data beyond the sender's FIN;
//  - RST counts only at the receiver's next sequence number (then the connection is closing,
//    but inspection goes on if data still comes); in the window but not exact it is forwarded
//    for the receiver to answer with a challenge ACK and changes nothing (RFC 5961 3.2);
//    outside the window it is dropped. A FIN counts only at the end of the inspected data;
//  - a SYN with a new initial sequence number on a live connection changes nothing until the
//    server accepts it with a SYN/ACK: only then does a new connection replace the old one;
//  - with two ports (inline), each side's packets must arrive on that side's port.
//
// Pure logic over decoded packets: no mbufs, no EAL. One tracker per worker lcore.
#pragma once

#include <cstdint>

#include "decode/packet.h"
#include "stats/counters.h"
#include "stream/byte_store.h"

namespace imf::dp::stream {

inline constexpr uint8_t kAnyPort = 0xff;  // one-port setups: sides cannot be told by port

// Serial-number arithmetic (RFC 1982) on sequence numbers.
inline bool seq_before(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }
inline bool seq_after(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }

// One side of a connection as a sender.
struct TcpEnd {
  uint32_t isn = 0;
  uint32_t next_seq = 0;  // the next data byte to inspect: all data before it was inspected
  uint32_t wnd_end = 0;   // right edge of the receive window the peer advertised for these bytes
  uint32_t max_wnd = 0;   // the largest window this side advertised (scaled)
  uint8_t wscale = 0;     // the shift of the windows this side advertises
  bool fin = false;       // this side's FIN was accepted; it sits at next_seq
  bool wnd_known = false;
  RetainedBytes retained;  // [base(), next_seq): inspected, not yet acknowledged by the peer

  uint32_t base() const { return next_seq - retained.len; }
  uint32_t seq_end() const { return next_seq + (fin ? 1 : 0); }  // next sequence number incl. FIN
};

enum class ConnState : uint8_t {
  kSynSent,      // the client's SYN seen, the server has not accepted it yet
  kSynReceived,  // the server's SYN/ACK accepted it; the client has not acknowledged that yet
  kEstablished,  // the client acknowledged the server's SYN: the handshake is complete
  kClosing,      // an RST at the next sequence number, or FINs both ways
};

struct TcpConn {
  TcpEnd end[2];  // [0] client, [1] server
  ConnState state = ConnState::kSynSent;
  uint8_t client_port = kAnyPort;  // the port the client's packets arrive on
  bool pending = false;            // a client SYN with a new ISN waits for the server's answer
  uint8_t syn_wscale = 0xff;       // the current client SYN's window-scale option, until the SYN/ACK
  uint8_t pending_wscale = 0xff;
  uint16_t syn_window = 0;  // the current client SYN's (unscaled) window
  uint16_t pending_window = 0;
  uint32_t pending_isn = 0;
};

enum class SegmentAction : uint8_t {
  kForward,  // send on; payload bytes [new_offset, new_offset + new_len) are new: inspect them
  kDrop,     // drop; a counter says why
  kRestart,  // the server accepted a new connection on the flow: reset the protocol state, then
             // as kForward
};

struct SegmentPlan {
  SegmentAction action = SegmentAction::kDrop;
  uint32_t new_offset = 0;
  uint32_t new_len = 0;
};

struct TrackerConfig {
  // false only to measure what validation costs (imfd --measure-without tcp-validation): in-order
  // inspection stays, retention, retransmission checks, ACK, window and RST checks go.
  bool validate = true;
  uint32_t retain_cap = 256 * 1024;  // unacknowledged bytes one direction may hold
};

class TcpTracker {
 public:
  TcpTracker(const TrackerConfig& cfg, ByteStore& store, Counters& counters)
      : cfg_(cfg), store_(store), counters_(counters) {}

  // Starts `c` from a client SYN (SYN without ACK) that arrived on `in_port` (kAnyPort: one
  // port). Call track() with the same SYN next, for any data it carries.
  void open(TcpConn& c, const decode::PacketMeta& syn, uint8_t in_port);

  // Judges one segment of side `side` (0 client) against the connection and updates it: what
  // the receiver would accept, which bytes are new. Owning lcore only.
  SegmentPlan track(TcpConn& c, uint8_t side, const decode::PacketMeta& m, const uint8_t* payload, uint8_t in_port);

  // Frees the connection's retained bytes (the flow is going away or starting afresh).
  void release(TcpConn& c) {
    store_.release(c.end[0].retained);
    store_.release(c.end[1].retained);
  }

  const ByteStore& store() const { return store_; }

 private:
  SegmentPlan drop(Counter why) {
    counters_.add(why);
    return {};
  }
  SegmentPlan on_rst(TcpConn& c, uint8_t side, const decode::PacketMeta& m);
  SegmentPlan on_syn(TcpConn& c, uint8_t side, const decode::PacketMeta& m, const uint8_t* payload);
  SegmentPlan on_syn_ack(TcpConn& c, uint8_t side, const decode::PacketMeta& m, const uint8_t* payload);
  // Data (and FIN) of side `side` starting at `seq`; with_ack: also take the segment's ACK and
  // window for the other side.
  SegmentPlan on_data(TcpConn& c, uint8_t side, const decode::PacketMeta& m, const uint8_t* payload, uint32_t seq,
                      bool with_ack);
  bool ack_acceptable(const TcpConn& c, uint8_t side, uint32_t ack) const;
  void take_ack(TcpConn& c, uint8_t side, const decode::PacketMeta& m);
  void establish(TcpConn& c, const decode::PacketMeta& syn_ack);

  TrackerConfig cfg_;
  ByteStore& store_;
  Counters& counters_;
};

}  // namespace imf::dp::stream
