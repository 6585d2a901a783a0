// Sums per-lcore counters and per-port statistics into the final (and periodic) report.
// Any non-worker thread; reads are relaxed, so a report taken while workers run is approximate.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "rules/compiler.h"
#include "stats/counters.h"
#include "worker.h"

namespace imf::dp {

struct PortTotals {
  uint16_t port;
  uint64_t rx, tx, rx_bytes, tx_bytes, rx_missed, tx_errors;
};

struct LcoreTotals {
  unsigned lcore;
  uint64_t version;  // rule-set version the lcore judges with
  double seconds;    // time in the burst loop; 0 while it runs
  std::array<uint64_t, kCounterCount> counters;
};

// What the run was set up with: for reading the figures (memory per flow, rates).
struct RunInfo {
  uint32_t flows_per_lcore = 0;
  uint64_t flow_bytes = 0;        // per flow: inspection state + both directions' Hyperscan streams
  uint64_t flow_table_bytes = 0;  // per lcore: the flow table's index and keys
  uint64_t db_bytes = 0;
  uint64_t stream_bytes = 0;
  uint32_t mbufs = 0;
  uint64_t tsc_hz = 0;
};

struct Report {
  std::vector<PortTotals> ports;
  std::vector<LcoreTotals> lcores;
  std::array<uint64_t, kCounterCount> counters{};
  std::vector<uint64_t> rule_hits;                              // indexed like rules
  LatencySummary latency;                                       // cycles, all lcores
  std::vector<std::pair<uint16_t, uint64_t>> undetected_ports;  // port, connections not recognised
};

// Sums what the lcores count. Rule hits (n_rules > 0) are read from the lcores' engines, so only
// a thread that no install can race may ask for them: the agent thread, or any thread once the
// workers stopped.
Report collect_report(const std::vector<LcoreCtx*>& lcores, uint16_t n_ports, size_t n_rules);

// The human summary printed at exit: traffic, messages per protocol passed/blocked, hits by rule.
std::string format_summary(const Report& r, const std::vector<rules::RuleMeta>& rules);

// One line for --stats-interval.
std::string format_stats_line(const Report& r);

// The --summary-json object (docs/interfaces.md).
std::string format_summary_json(const Report& r, const RunInfo& run, const std::vector<rules::RuleMeta>& rules);

}  // namespace imf::dp
