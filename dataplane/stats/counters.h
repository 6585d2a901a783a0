// Per-lcore counters. Each lcore writes only its own block; readers sum across lcores.
#pragma once

#include <array>
#include <cstdint>

namespace imf::dp {

// X(name, help). Names are the keys of the summary JSON; keep them stable.
#define IMF_COUNTERS(X)                                                                     \
  X(rx_packets, "packets received")                                                         \
  X(forwarded, "packets sent on to the other side")                                         \
  X(dropped, "packets dropped by a verdict")                                                \
  X(resets_sent, "TCP RST segments generated")                                              \
  X(reset_alloc_failed, "RST segments not sent: mbuf pool empty")                           \
  X(tx_dropped, "packets the TX queue refused")                                             \
  X(decode_non_ip, "frames that are not IPv4/IPv6 (forwarded)")                             \
  X(decode_truncated, "frames shorter than their headers claim (forwarded)")                \
  X(decode_bad_header, "frames with impossible header fields (forwarded)")                  \
  X(ip_fragments, "IP fragments (forwarded, not inspected)")                                \
  X(tcp_uninspected, "TCP segments on ports not inspected")                                 \
  X(flows_created, "flows added to the flow table")                                         \
  X(flows_evicted, "flows evicted because the table was full")                              \
  X(flows_aged, "flows removed after being idle")                                           \
  X(flows_closed, "flows removed after RST or FIN")                                         \
  X(flows_restarted, "flows reset by a client SYN starting a new connection on them")       \
  X(flows_midstream, "flows first seen without a handshake (passed uninspected)")           \
  X(tcp_out_of_order, "segments ahead of the expected sequence number")                     \
  X(tcp_retransmits, "segments wholly before the expected sequence number")                 \
  X(flows_bypassed, "flows no longer inspected by policy (out-of-order with --ooo bypass)") \
  X(blocked_flow_drops, "packets dropped because their flow is blocked")                    \
  X(mqtt_connects, "MQTT CONNECTs decoded")                                                 \
  X(mqtt_publishes, "MQTT PUBLISH messages decoded")                                        \
  X(mqtt_payload_bytes, "PUBLISH payload bytes scanned")                                    \
  X(mqtt_malformed, "MQTT protocol violations (flow reset)")                                \
  X(mqtt_field_truncated, "accounts or topics longer than kept for events (scanned fully)") \
  X(rule_alerts, "alert verdicts")                                                          \
  X(rule_drops, "drop verdicts")                                                            \
  X(rule_would_drops, "dry-run drop rules matched (message passed)")                        \
  X(account_connects_refused, "connections reset: account suspended or shut down")          \
  X(account_rate_drops, "messages over a restricted account's rate (connection reset)")     \
  X(account_measure_resets, "connections reset: suspended or shut-down account")            \
  X(account_warned_messages, "messages of warned accounts recorded")                        \
  X(account_measures_lapsed, "timed measures that ran out")                                 \
  X(hits_overflow, "rule hits beyond the per-scan limit (not recorded)")                    \
  X(scan_errors, "Hyperscan scan errors (flow reset)")                                      \
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
