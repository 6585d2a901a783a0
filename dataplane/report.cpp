#include "report.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <cstdio>

namespace imf::dp {

namespace {

uint64_t counter(const Report& r, Counter c) { return r.counters[static_cast<size_t>(c)]; }

}  // namespace

Report collect_report(const std::vector<LcoreCtx*>& lcores, uint16_t n_ports, size_t n_rules) {
  Report r;
  r.rule_hits.assign(n_rules, 0);
  for (const LcoreCtx* c : lcores) {
    double seconds = 0;
    if (c->finished.load(std::memory_order_acquire)) {
      seconds = static_cast<double>(c->loop_end_tsc - c->loop_start_tsc) / static_cast<double>(rte_get_tsc_hz());
    }
    r.lcores.push_back(
        {c->lcore_id, c->counters.get(Counter::rx_packets), c->counters.get(Counter::forwarded), seconds});
    r.latency.merge(c->latency);
    for (size_t i = 0; i < kCounterCount; ++i) r.counters[i] += c->counters.get(static_cast<Counter>(i));
    for (size_t i = 0; i < n_rules; ++i) r.rule_hits[i] += __atomic_load_n(&c->rule_hits[i], __ATOMIC_RELAXED);
  }
  for (uint16_t p = 0; p < n_ports; ++p) {
    rte_eth_stats s{};
    rte_eth_stats_get(p, &s);
    r.ports.push_back({p, s.ipackets, s.opackets, s.ibytes, s.obytes, s.imissed, s.oerrors});
  }
  return r;
}

std::string format_summary(const Report& r, const std::vector<rules::RuleMeta>& rules) {
  std::string out;
  char line[512];
  uint64_t publishes = counter(r, Counter::mqtt_publishes);
  uint64_t blocked = counter(r, Counter::rule_drops);
  std::snprintf(line, sizeof(line),
                "imfd summary\n"
                "  packets: %lu received, %lu forwarded, %lu dropped, %lu resets sent\n"
                "  flows:   %lu created, %lu closed, %lu aged, %lu evicted, %lu mid-stream\n"
                "  MQTT:    %lu connects, %lu messages: %lu passed, %lu blocked; %lu alerts, %lu malformed\n",
                counter(r, Counter::rx_packets), counter(r, Counter::forwarded), counter(r, Counter::dropped),
                counter(r, Counter::resets_sent), counter(r, Counter::flows_created), counter(r, Counter::flows_closed),
                counter(r, Counter::flows_aged), counter(r, Counter::flows_evicted),
                counter(r, Counter::flows_midstream), counter(r, Counter::mqtt_connects), publishes,
                publishes - blocked, blocked, counter(r, Counter::rule_alerts), counter(r, Counter::mqtt_malformed));
  out += line;
  out += "  hits by rule:\n";
  std::snprintf(line, sizeof(line), "    %-32s %-6s %8s\n", "rule", "action", "hits");
  out += line;
  for (size_t i = 0; i < rules.size(); ++i) {
    std::snprintf(line, sizeof(line), "    %-32s %-6s %8lu\n", rules[i].id.c_str(), rules::action_name(rules[i].action),
                  r.rule_hits[i]);
    out += line;
  }
  for (size_t i = 0; i < kCounterCount; ++i) {
    auto c = static_cast<Counter>(i);
    bool trouble = c == Counter::tx_dropped || c == Counter::events_lost || c == Counter::scan_errors ||
                   c == Counter::reset_alloc_failed || c == Counter::hits_overflow;
    if (trouble && r.counters[i]) {
      std::snprintf(line, sizeof(line), "  WARNING: %s = %lu\n", kCounterNames[i], r.counters[i]);
      out += line;
    }
  }
  return out;
}

std::string format_stats_line(const Report& r) {
  char line[256];
  std::snprintf(line, sizeof(line), "rx %lu fwd %lu drop %lu rst %lu flows %lu msgs %lu blocked %lu alerts %lu",
                counter(r, Counter::rx_packets), counter(r, Counter::forwarded), counter(r, Counter::dropped),
                counter(r, Counter::resets_sent), counter(r, Counter::flows_created),
                counter(r, Counter::mqtt_publishes), counter(r, Counter::rule_drops), counter(r, Counter::rule_alerts));
  return line;
}

std::string format_summary_json(const Report& r, const RunInfo& run, const std::vector<rules::RuleMeta>& rules) {
  auto num = [](const char* key, auto v) { return std::string("\"") + key + "\":" + std::to_string(v); };
  std::string out = "{\"ports\":[";
  for (size_t i = 0; i < r.ports.size(); ++i) {
    const PortTotals& p = r.ports[i];
    if (i) out += ',';
    out += "{" + num("port", p.port) + "," + num("rx", p.rx) + "," + num("tx", p.tx) + "," +
           num("rx_bytes", p.rx_bytes) + "," + num("tx_bytes", p.tx_bytes) + "," + num("rx_missed", p.rx_missed) + "," +
           num("tx_errors", p.tx_errors) + "}";
  }
  out += "],\"lcores\":[";
  for (size_t i = 0; i < r.lcores.size(); ++i) {
    const LcoreTotals& l = r.lcores[i];
    if (i) out += ',';
    out += "{" + num("lcore", l.lcore) + "," + num("rx", l.rx) + "," + num("forwarded", l.forwarded) + "," +
           num("seconds", l.seconds) + "}";
  }
  out += "],\"counters\":{";
  for (size_t i = 0; i < kCounterCount; ++i) {
    if (i) out += ',';
    out += num(kCounterNames[i], r.counters[i]);
  }
  auto ns = [&](double q) {
    return static_cast<uint64_t>(static_cast<double>(r.latency.quantile(q)) * 1e9 / static_cast<double>(run.tsc_hz));
  };
  out += "},\"latency_ns\":{" + num("samples", r.latency.samples) + "," + num("p50", ns(0.5)) + "," +
         num("p90", ns(0.9)) + "," + num("p99", ns(0.99)) + "," + num("p999", ns(0.999)) + "," + num("max", ns(1.0)) +
         "}";
  out += ",\"run\":{" + num("flows_per_lcore", run.flows_per_lcore) + "," + num("flow_bytes", run.flow_bytes) + "," +
         num("flow_table_bytes", run.flow_table_bytes) + "," + num("db_bytes", run.db_bytes) + "," +
         num("stream_bytes", run.stream_bytes) + "," + num("mbufs", run.mbufs) + "," + num("tsc_hz", run.tsc_hz) + "}";
  out += ",\"rules\":[";
  for (size_t i = 0; i < rules.size(); ++i) {
    if (i) out += ',';
    // Rule ids are restricted to [A-Za-z0-9._:-] by the parser: no escaping needed.
    out += "{\"id\":\"" + rules[i].id + "\",\"action\":\"" + rules::action_name(rules[i].action) +
           "\",\"hits\":" + std::to_string(r.rule_hits[i]) + "}";
  }
  out += "]}\n";
  return out;
}

}  // namespace imf::dp
