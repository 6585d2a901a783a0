#include "report.h"

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
    for (size_t i = 0; i < kCounterCount; ++i) r.counters[i] += c->counters.get(static_cast<Counter>(i));
    for (size_t i = 0; i < n_rules; ++i) r.rule_hits[i] += __atomic_load_n(&c->rule_hits[i], __ATOMIC_RELAXED);
  }
  for (uint16_t p = 0; p < n_ports; ++p) {
    rte_eth_stats s{};
    rte_eth_stats_get(p, &s);
    r.ports.push_back({p, s.ipackets, s.opackets, s.imissed, s.oerrors});
  }
  return r;
}

std::string format_summary(const Report& r, const std::vector<rules::RuleMeta>& rules) {
  std::string out;
  char line[256];
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

std::string format_summary_json(const Report& r, const std::vector<rules::RuleMeta>& rules) {
  std::string out = "{\"ports\":[";
  for (size_t i = 0; i < r.ports.size(); ++i) {
    const PortTotals& p = r.ports[i];
    if (i) out += ',';
    out += "{\"port\":" + std::to_string(p.port) + ",\"rx\":" + std::to_string(p.rx) +
           ",\"tx\":" + std::to_string(p.tx) + ",\"rx_missed\":" + std::to_string(p.rx_missed) +
           ",\"tx_errors\":" + std::to_string(p.tx_errors) + "}";
  }
  out += "],\"counters\":{";
  for (size_t i = 0; i < kCounterCount; ++i) {
    if (i) out += ',';
    out += std::string("\"") + kCounterNames[i] + "\":" + std::to_string(r.counters[i]);
  }
  out += "},\"rules\":[";
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
