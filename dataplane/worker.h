// The per-lcore burst loop and everything it owns.
#pragma once

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>

#include <array>
#include <atomic>
#include <memory>

#include "common/result.h"
#include "defrag/reassembler.h"
#include "flow/flow_table.h"
#include "inspect/inspector.h"
#include "match/matcher.h"
#include "record/event_writer.h"
#include "stats/counters.h"
#include "stats/latency.h"

namespace imf::dp {

inline constexpr uint16_t kMaxPorts = 8;
inline constexpr uint16_t kBurst = 32;

// Which protocol each server port speaks: 0 none, else proto::Protocol + 1. A protocol may have
// several ports; a port one protocol.
struct ServiceMap {
  std::array<uint8_t, 65536> tcp{};
  std::array<uint8_t, 65536> udp{};
  bool detect = false;  // TCP connections to other ports: decoded as their first client bytes say

  void add_tcp(uint16_t port, proto::Protocol p) { tcp[port] = static_cast<uint8_t>(p) + 1; }
  void add_udp(uint16_t port, proto::Protocol p) { udp[port] = static_cast<uint8_t>(p) + 1; }
};

// One rule-set version as one worker uses it: the shared generation plus this lcore's scratch,
// streams (two per flow slot) and hit counters. Built off the fast path (setup or agent thread),
// handed to the worker through LcoreCtx::pending and back through LcoreCtx::retired.
struct Engine {
  const match::RuleGeneration* gen = nullptr;
  std::unique_ptr<match::Matcher> matcher;
  std::unique_ptr<match::StreamPool> streams;
  std::unique_ptr<uint64_t[]> rule_hits;  // indexed by rule; written by the worker only
  size_t bytes = 0;                       // streams and scratch, for the memory report
};

// Opens `flows * 2` streams and clones scratch for `gen`. Setup or agent thread.
Result<std::unique_ptr<Engine>> make_engine(const match::RuleGeneration& gen, uint32_t flows);

// What make_engine() allocates for `gen` and `flows`, known before allocating it. Any thread.
size_t engine_bytes(const match::RuleGeneration& gen, uint32_t flows);

// Everything one worker lcore touches, built by the setup thread before launch and then used
// by that lcore alone (counters and rule_hits are also read, relaxed, by the stats reader).
struct alignas(64) LcoreCtx {
  unsigned lcore_id = 0;
  uint16_t queue = 0;
  uint16_t n_ports = 0;
  uint16_t peer[kMaxPorts] = {};  // port a packet received on port i leaves by
  rte_eth_dev_tx_buffer* tx[kMaxPorts] = {};
  rte_mempool* pool = nullptr;  // for generated RST segments
  const ServiceMap* services = nullptr;
  std::unique_ptr<uint32_t[]> undetected_by_port;  // with services->detect: connections not recognised
  bool sides_on_one_port = false;  // both sides arrive on one port: connections' sides not checked by port
  uint8_t min_ttl = 0;             // forwarded inspected packets leave with at least this TTL (0: off)
  bool verify_checksums = true;    // false only to measure the stage (--measure-without checksums)
  // Offline: time is the capture's (net_pcap's RX timestamps), so idle times and timeouts follow
  // the recorded traffic, not how fast it is replayed.
  bool capture_time = false;
  int timestamp_offset = -1;  // the mbuf timestamp dynfield
  uint64_t timestamp_flag = 0;
  int64_t capture_base_ns = -1;  // the first packet's capture time
  uint64_t capture_now = 0;      // ticks of the latest packet's capture time
  uint64_t aging_ticks = 0;      // flow aging period
  uint64_t last_aging = 0;
  uint64_t stop_after_rx = 0;  // offline mode: stop once this many packets were received
  const std::atomic<bool>* stop = nullptr;
  // Grace periods for tables (and anything else freed under RCU): the lcore reports a quiescent
  // state once per loop iteration, as thread `qsv_id` of `qsv`.
  rte_rcu_qsbr* qsv = nullptr;
  unsigned qsv_id = 0;
  record::Clock clock{};  // wall time of account measures: expiry, rates

  std::unique_ptr<flow::FlowTable> flows;
  std::unique_ptr<inspect::FlowState[]> flow_state;  // indexed by flow slot
  std::unique_ptr<inspect::Inspector> inspector;
  std::unique_ptr<defrag::Reassembler> defrag;  // null: fragments pass uninspected (measurement only)
  std::unique_ptr<record::EventRing> events;

  // Rule-set swap without locks: the installer stores a complete Engine in `pending` (release);
  // the worker, between bursts, loads it (acquire), switches to it, publishes the old one in
  // `retired` (release: the worker never touches it again) and its version in `version`. The
  // installer frees retired engines. A message in flight at the switch is scanned by the new
  // version from the switch on; every packet is judged by exactly one version.
  std::atomic<Engine*> engine{nullptr};  // the worker's own; the installer reads it when idle
  std::atomic<Engine*> pending{nullptr};
  std::atomic<Engine*> retired{nullptr};
  std::atomic<uint64_t> version{0};

  Counters counters;
  LatencyHistogram latency;     // RX burst -> TX burst, per packet sent on
  uint64_t loop_start_tsc = 0;  // set by the lcore; read after `finished`
  uint64_t loop_end_tsc = 0;
  std::atomic<bool> finished{false};
};

// rte_eal_remote_launch entry point; arg is the LcoreCtx. Returns when *stop is set or, offline,
// when stop_after_rx packets were received. Packets leave in the loop iteration that received
// them (TX is flushed once per iteration), so the latency it records is the whole time a packet
// spends in imfd.
int worker_main(void* arg);

}  // namespace imf::dp
