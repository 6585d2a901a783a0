// Per-lcore counters. Each lcore writes only its own block; readers sum across lcores.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace imf::dp {

// X(name, help). Names are the keys of the summary JSON; keep them stable.
#define IMF_COUNTERS(X)                                                                                       \
  X(rx_packets, "packets received")                                                                           \
  X(forwarded, "packets sent on to the other side")                                                           \
  X(dropped, "packets dropped by a verdict")                                                                  \
  X(resets_sent, "TCP RST segments generated")                                                                \
  X(reset_alloc_failed, "RST segments not sent: mbuf pool empty")                                             \
  X(tx_dropped, "packets the TX queue refused")                                                               \
  X(decode_non_ip, "frames that are not IPv4/IPv6 (forwarded)")                                               \
  X(decode_truncated, "IP packets shorter than their headers claim (dropped)")                                \
  X(decode_bad_header, "IP packets with impossible header fields or too many headers (dropped)")              \
  X(checksum_bad_ip, "inspected IPv4 packets with a wrong header checksum (dropped)")                         \
  X(checksum_bad_l4, "inspected TCP/UDP packets with a wrong checksum (dropped, never decoded)")              \
  X(ttl_raised, "forwarded inspected packets whose TTL or hop limit was raised to --min-ttl")                 \
  X(ip_fragments, "IP fragments received (held for reassembly)")                                              \
  X(frag_reassembled, "fragmented datagrams reassembled and judged")                                          \
  X(frag_duplicates, "fragments repeating bytes already held (dropped alone)")                                \
  X(frag_overlaps, "datagrams dropped whole: fragments overlapping with different bytes")                     \
  X(frag_too_many, "datagrams dropped whole: more fragments than the reassembler holds")                      \
  X(frag_timeouts, "datagrams dropped whole: incomplete when their time ran out")                             \
  X(frag_table_full, "fragments dropped: no room for another pending datagram")                               \
  X(frag_invalid, "fragments or datagrams dropped: malformed, or a first fragment without its L4 header")     \
  X(frag_dropped, "original fragments dropped by any of the above")                                           \
  X(tcp_uninspected, "TCP segments on ports not inspected")                                                   \
  X(flows_created, "flows added to the flow table")                                                           \
  X(flows_evicted, "flows evicted to make room (half-open, closing or idle first)")                           \
  X(flows_refused, "connections refused: the flow table is full of active flows (SYN dropped)")               \
  X(flows_aged, "flows removed after being idle")                                                             \
  X(flows_closed, "connections ended by RST or FIN both ways (kept briefly, then removed)")                   \
  X(flows_restarted, "flows started afresh: the server accepted a new connection on the same addresses")      \
  X(flows_midstream, "connections first seen without a handshake, passed uninspected (--midstream pass)")     \
  X(midstream_resets, "segments of connections first seen mid-stream, reset (--midstream reset)")             \
  X(midstream_drops, "segments of connections first seen mid-stream, dropped (--midstream drop)")             \
  X(tcp_out_of_order, "segments ahead of the expected sequence number (dropped)")                             \
  X(tcp_retransmits, "segments carrying only bytes already inspected, unchanged (forwarded)")                 \
  X(tcp_overlap_mismatch, "segments whose bytes differ from the bytes inspected at their sequence (dropped)") \
  X(tcp_retain_full, "segments dropped: their flow or lcore holds as many unacknowledged bytes as allowed")   \
  X(tcp_bad_ack, "segments whose ACK the receiver would refuse: unsent or too old (dropped)")                 \
  X(tcp_no_ack, "segments without ACK after the handshake, which the receiver discards (dropped)")            \
  X(tcp_beyond_window, "segments starting beyond the receiver's advertised window (dropped)")                 \
  X(tcp_data_after_fin, "segments with data beyond the sender's FIN (dropped)")                               \
  X(tcp_invalid, "segments the end host would not accept in the connection's state (dropped)")                \
  X(tcp_wrong_side, "segments arriving on the port of the other side of their connection (dropped)")          \
  X(tcp_syn_new_isn, "SYNs with a new initial sequence number on a live flow (forwarded; state kept)")        \
  X(tcp_rst_accepted, "RSTs at the receiver's next sequence number (connection closes)")                      \
  X(tcp_rst_in_window, "RSTs inside the window but not exact (forwarded, connection kept: RFC 5961)")         \
  X(tcp_rst_out_of_window, "RSTs outside the receiver's window (dropped)")                                    \
  X(tcp_urgent_cleared, "URG flags cleared, so urgent bytes stay in the stream that was scanned")             \
  X(blocked_flow_drops, "packets dropped because their flow is blocked")                                      \
  X(mqtt_connects, "MQTT CONNECTs decoded")                                                                   \
  X(mqtt_publishes, "MQTT messages decoded (PUBLISH, and wills at CONNECT)")                                  \
  X(mqtt_payload_bytes, "MQTT payload bytes scanned")                                                         \
  X(mqtt_malformed, "MQTT protocol violations (flow reset)")                                                  \
  X(xmpp_logins, "XMPP accounts learned (SASL, resource binding)")                                            \
  X(xmpp_messages, "XMPP message stanzas decoded")                                                            \
  X(xmpp_body_bytes, "XMPP body and subject bytes scanned (as displayed: entities decoded)")                  \
  X(xmpp_malformed, "XMPP protocol violations (flow reset)")                                                  \
  X(xmpp_encrypted, "XMPP streams switching to TLS or compression, which cannot be judged (flow reset)")      \
  X(sip_logins, "SIP senders learned (From or P-Asserted-Identity, per MESSAGE)")                             \
  X(sip_messages, "SIP MESSAGE requests decoded")                                                             \
  X(sip_other, "SIP requests of other methods and responses (passed)")                                        \
  X(sip_body_bytes, "SIP MESSAGE body bytes scanned (CPIM unwrapped)")                                        \
  X(sip_malformed, "SIP protocol violations (TCP flow reset, UDP datagram dropped)")                          \
  X(irc_logins, "IRC accounts learned (NICK, SASL, server confirmations)")                                    \
  X(irc_messages, "IRC messages decoded (PRIVMSG, NOTICE, ACTION, TOPIC, PART, QUIT)")                        \
  X(irc_body_bytes, "IRC message text bytes scanned")                                                         \
  X(irc_malformed, "IRC protocol violations (flow reset)")                                                    \
  X(protocols_detected, "connections on unregistered ports recognised by their first bytes")                  \
  X(protocols_undetected, "connections on unregistered ports not recognised (passed, counted per port)")      \
  X(decoders_full, "connections refused: no XMPP/SIP/IRC decoder state left (--decoder-states)")              \
  X(account_truncated, "accounts longer than the account table keeps (never in the table)")                   \
  X(channel_truncated, "channels longer than kept for conditions and events (scanned fully)")                 \
  X(rule_alerts, "alert verdicts")                                                                            \
  X(rule_drops, "drop verdicts")                                                                              \
  X(rule_would_drops, "dry-run drop rules matched (message passed)")                                          \
  X(account_connects_refused, "connections reset: account suspended or shut down")                            \
  X(account_rate_drops, "messages over a restricted account's rate (connection reset)")                       \
  X(account_measure_resets, "connections reset: suspended or shut-down account")                              \
  X(account_warned_messages, "messages of warned accounts recorded")                                          \
  X(account_measures_lapsed, "timed measures that ran out")                                                   \
  X(hits_overflow, "rule hits beyond the per-scan limit (not recorded)")                                      \
  X(scan_errors, "Hyperscan scan errors (flow reset)")                                                        \
  X(events_lost, "events not recorded because the event ring was full")

enum class Counter : uint16_t {
#define IMF_COUNTER_ENUM(name, help) name,
  IMF_COUNTERS(IMF_COUNTER_ENUM)
#undef IMF_COUNTER_ENUM
      kCount
};

inline constexpr size_t kCounterCount = static_cast<size_t>(Counter::kCount);

inline constexpr std::array<const char*, kCounterCount> kCounterNames = {
#define IMF_COUNTER_NAME(name, help) #name,
    IMF_COUNTERS(IMF_COUNTER_NAME)
#undef IMF_COUNTER_NAME
};

// One lcore's counters. Written by the owning lcore only; read by any thread with relaxed loads,
// so a reader sees each value whole (single-writer, 64-bit aligned), possibly slightly stale.
struct alignas(64) Counters {
  std::array<uint64_t, kCounterCount> v{};

  void add(Counter c, uint64_t n = 1) {
    uint64_t& slot = v[static_cast<size_t>(c)];
    __atomic_store_n(&slot, slot + n, __ATOMIC_RELAXED);
  }
  uint64_t get(Counter c) const { return __atomic_load_n(&v[static_cast<size_t>(c)], __ATOMIC_RELAXED); }
};

}  // namespace imf::dp
