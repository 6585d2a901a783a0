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
    LcoreTotals l{c->lcore_id, c->version.load(std::memory_order_acquire), 0, {}};
    if (c->finished.load(std::memory_order_acquire)) {
      l.seconds = static_cast<double>(c->loop_end_tsc - c->loop_start_tsc) / static_cast<double>(rte_get_tsc_hz());
    }
    for (size_t i = 0; i < kCounterCount; ++i) {
      l.counters[i] = c->counters.get(static_cast<Counter>(i));
      r.counters[i] += l.counters[i];
    }
    r.lcores.push_back(l);
    r.latency.merge(c->latency);
    const Engine* e = n_rules ? c->engine.load(std::memory_order_acquire) : nullptr;
    if (e && e->gen->rules.size() == n_rules) {
      for (size_t i = 0; i < n_rules; ++i) r.rule_hits[i] += __atomic_load_n(&e->rule_hits[i], __ATOMIC_RELAXED);
    }
  }
  std::vector<uint64_t> undetected;
  for (const LcoreCtx* c : lcores) {
    if (!c->undetected_by_port) continue;
    undetected.resize(65536);
    for (uint32_t port = 0; port < 65536; ++port)
      undetected[port] += __atomic_load_n(&c->undetected_by_port[port], __ATOMIC_RELAXED);
  }
  for (uint32_t port = 0; port < undetected.size(); ++port) {
    if (undetected[port]) r.undetected_ports.emplace_back(static_cast<uint16_t>(port), undetected[port]);
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
  uint64_t blocked = counter(r, Counter::rule_drops);
  std::snprintf(line, sizeof(line),
                "imfd summary\n"
                "  packets: %lu received, %lu forwarded, %lu dropped, %lu resets sent\n"
                "  flows:   %lu created, %lu closed, %lu aged, %lu evicted, %lu mid-stream\n",
                counter(r, Counter::rx_packets), counter(r, Counter::forwarded), counter(r, Counter::dropped),
                counter(r, Counter::resets_sent), counter(r, Counter::flows_created), counter(r, Counter::flows_closed),
                counter(r, Counter::flows_aged), counter(r, Counter::flows_evicted),
                counter(r, Counter::flows_midstream));
  out += line;
  uint64_t messages = 0;
  for (uint8_t p = 0; p < proto::kProtocolCount; ++p) {
    const inspect::ProtocolCounters& pc = inspect::kProtocolCounters[p];
    uint64_t n = counter(r, pc.messages);
    messages += n;
    if (!n && !counter(r, pc.logins) && !counter(r, pc.malformed)) continue;
    std::snprintf(line, sizeof(line), "  %-8s %lu logins, %lu messages, %lu malformed\n",
                  proto::protocol_name(static_cast<proto::Protocol>(p)), counter(r, pc.logins), n,
                  counter(r, pc.malformed));
    out += line;
  }
  std::snprintf(line, sizeof(line), "  messages: %lu passed, %lu blocked; %lu alerts\n", messages - blocked, blocked,
                counter(r, Counter::rule_alerts));
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
                counter(r, Counter::mqtt_publishes) + counter(r, Counter::xmpp_messages) +
                    counter(r, Counter::sip_messages) + counter(r, Counter::irc_messages),
                counter(r, Counter::rule_drops), counter(r, Counter::rule_alerts));
  return line;
}

namespace {

// Appends JSON members, with a comma before every member or array item but the first.
struct JsonOut {
  std::string s;
  bool first = true;

  void open(const char* prefix) {
    s += prefix;
    first = true;
  }
  void key(const char* k) {
    if (!first) s += ',';
    first = false;
    s += '"';
    s += k;
    s += "\":";
  }
  template <typename T>
  void num(const char* k, T v) {
    key(k);
    s += std::to_string(v);
  }
  void str(const char* k, const std::string& v) {  // v needs no escaping (ids, action names)
    key(k);
    s += '"';
    s += v;
    s += '"';
  }
  void item() {  // the next object in an array
    if (!first) s += ',';
    s += '{';
    first = true;
  }
  void close(const char* suffix) {
    s += suffix;
    first = false;
  }
};

}  // namespace

std::string format_summary_json(const Report& r, const RunInfo& run, const std::vector<rules::RuleMeta>& rules) {
  JsonOut j;
  j.open("{\"ports\":[");
  for (const PortTotals& p : r.ports) {
    j.item();
    j.num("port", p.port);
    j.num("rx", p.rx);
    j.num("tx", p.tx);
    j.num("rx_bytes", p.rx_bytes);
    j.num("tx_bytes", p.tx_bytes);
    j.num("rx_missed", p.rx_missed);
    j.num("tx_errors", p.tx_errors);
    j.close("}");
  }
  j.open("],\"lcores\":[");
  for (const LcoreTotals& l : r.lcores) {
    j.item();
    j.num("lcore", l.lcore);
    j.num("version", l.version);
    j.num("rx", l.counters[static_cast<size_t>(Counter::rx_packets)]);
    j.num("forwarded", l.counters[static_cast<size_t>(Counter::forwarded)]);
    j.num("seconds", l.seconds);
    j.open(",\"counters\":{");
    for (size_t i = 0; i < kCounterCount; ++i) j.num(kCounterNames[i], l.counters[i]);
    j.close("}}");
  }
  j.open("],\"counters\":{");
  for (size_t i = 0; i < kCounterCount; ++i) j.num(kCounterNames[i], r.counters[i]);
  auto ns = [&](double q) {
    return static_cast<uint64_t>(static_cast<double>(r.latency.quantile(q)) * 1e9 / static_cast<double>(run.tsc_hz));
  };
  j.open("},\"latency_ns\":{");
  j.num("samples", r.latency.samples);
  j.num("p50", ns(0.5));
  j.num("p90", ns(0.9));
  j.num("p99", ns(0.99));
  j.num("p999", ns(0.999));
  j.num("max", ns(1.0));
  j.open("},\"run\":{");
  j.num("flows_per_lcore", run.flows_per_lcore);
  j.num("flow_bytes", run.flow_bytes);
  j.num("flow_table_bytes", run.flow_table_bytes);
  j.num("db_bytes", run.db_bytes);
  j.num("stream_bytes", run.stream_bytes);
  j.num("mbufs", run.mbufs);
  j.num("tsc_hz", run.tsc_hz);
  j.open("},\"undetected_ports\":[");
  for (const auto& [port, connections] : r.undetected_ports) {
    j.item();
    j.num("port", port);
    j.num("connections", connections);
    j.close("}");
  }
  j.open("],\"rules\":[");
  for (size_t i = 0; i < rules.size(); ++i) {
    j.item();
    // Rule ids are restricted to [A-Za-z0-9._:-] by the parser: no escaping needed.
    j.str("id", rules[i].id);
    j.str("action", rules::action_name(rules[i].action));
    j.num("hits", r.rule_hits[i]);
    j.close("}");
  }
  j.close("]}\n");
  return j.s;
}

}  // namespace imf::dp
