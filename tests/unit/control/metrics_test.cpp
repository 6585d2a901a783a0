#include "daemon/metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>

namespace imf::control {
namespace {

// Every sample line "name{labels} value" -> value; also checks each sample's family was declared
// with HELP and TYPE before it.
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::set<std::string> typed;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      typed.insert(line.substr(7, line.find(' ', 7) - 7));
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) continue;
    size_t sp = line.rfind(' ');
    std::string key = line.substr(0, sp);
    EXPECT_TRUE(typed.count(key.substr(0, key.find('{')))) << "no TYPE before " << line;
    EXPECT_TRUE(out.emplace(key, line.substr(sp + 1)).second) << "duplicate sample " << key;
  }
  return out;
}

TEST(Metrics, UnreachableDataplaneServesOnlyUpZeroAndControlGauges) {
  auto s = samples(render_metrics(nullptr, ControlMetrics{7, 3.9}));
  EXPECT_EQ(s.at("imf_dataplane_up"), "0");
  EXPECT_EQ(s.at("imf_control_active_rules_version"), "7");
  EXPECT_EQ(s.at("imf_control_uptime_seconds"), "3");
  EXPECT_EQ(s.size(), 3u);
}

TEST(Metrics, AccountsReportsAndRecordsAreServedWithoutTheDataplane) {
  ControlMetrics c{7, 3.9};
  c.accounts = true;
  c.accounts_by_state[0] = 900;
  c.accounts_by_state[1] = 100;
  c.reports_open = 3;
  c.records_control_seq = 42;
  c.records_dataplane_seq = 7;
  c.dataplane_state_changes_applied = 5;
  auto s = samples(render_metrics(nullptr, c));
  EXPECT_EQ(s.at("imf_control_accounts{state=\"none\"}"), "900");
  EXPECT_EQ(s.at("imf_control_accounts{state=\"warned\"}"), "100");
  EXPECT_EQ(s.at("imf_control_accounts{state=\"shutdown\"}"), "0");
  EXPECT_EQ(s.at("imf_control_reports_open"), "3");
  EXPECT_EQ(s.at("imf_control_records_seq{chain=\"control\"}"), "42");
  EXPECT_EQ(s.at("imf_control_records_seq{chain=\"dataplane\"}"), "7");
  EXPECT_EQ(s.at("imf_control_dataplane_state_changes_applied_total"), "5");
  EXPECT_EQ(s.at("imf_dataplane_up"), "0");
}

TEST(Metrics, RendersPortsLcoreCountersRulesAndLatency) {
  auto stats = json::parse(R"({"ok":true,"version":4,
    "ports":[{"port":0,"rx":10,"tx":9,"rx_bytes":1000,"tx_bytes":900,"rx_missed":1,"tx_errors":0},
             {"port":1,"rx":9,"tx":10,"rx_bytes":900,"tx_bytes":1000,"rx_missed":0,"tx_errors":2}],
    "lcores":[{"lcore":1,"rx":12,"forwarded":11,"counters":{"rx_packets":12,"dropped":1}},
              {"lcore":2,"rx":7,"forwarded":7,"counters":{"rx_packets":7,"dropped":0}}],
    "counters":{"rx_packets":19,"dropped":1},
    "latency_ns":{"samples":18,"p50":900,"p99":4000},
    "rules":[{"id":"spam.\"q\"","action":"drop","hits":3},{"id":"b","action":"alert","hits":0}]})");
  ASSERT_TRUE(stats.ok()) << stats.error();
  std::string text = render_metrics(&stats.value(), ControlMetrics{4, 1});
  auto s = samples(text);
  EXPECT_EQ(s.at("imf_dataplane_up"), "1");
  EXPECT_EQ(s.at("imf_rules_version"), "4");
  EXPECT_EQ(s.at("imf_packets_total{port=\"0\",direction=\"rx\"}"), "10");
  EXPECT_EQ(s.at("imf_packets_total{port=\"1\",direction=\"tx\"}"), "10");
  EXPECT_EQ(s.at("imf_bytes_total{port=\"0\",direction=\"tx\"}"), "900");
  EXPECT_EQ(s.at("imf_port_rx_missed_total{port=\"0\"}"), "1");
  EXPECT_EQ(s.at("imf_port_tx_errors_total{port=\"1\"}"), "2");
  EXPECT_EQ(s.at("imf_rx_packets_total{lcore=\"1\"}"), "12");
  EXPECT_EQ(s.at("imf_rx_packets_total{lcore=\"2\"}"), "7");
  EXPECT_EQ(s.at("imf_dropped_total{lcore=\"1\"}"), "1");
  EXPECT_EQ(s.count("imf_rx_packets_total"), 0u);  // per-lcore families carry no unlabelled total
  EXPECT_EQ(s.at("imf_rule_hits_total{rule=\"spam.\\\"q\\\"\",action=\"drop\"}"), "3");
  EXPECT_EQ(s.at("imf_rule_hits_total{rule=\"b\",action=\"alert\"}"), "0");
  EXPECT_EQ(s.at("imf_latency_nanoseconds{quantile=\"0.99\"}"), "4000");
  EXPECT_EQ(s.at("imf_latency_samples_total"), "18");
  EXPECT_NE(text.find("# TYPE imf_rx_packets_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# HELP imf_rule_hits_total "), std::string::npos);
}

TEST(Metrics, TotalsWithoutLcoreCountersAreUnlabelledAndNamesSanitized) {
  auto stats = json::parse(
      R"({"ok":true,"version":1,"counters":{"weird-name.x":5,"already_total":2,"packets":3,"rule_hits":4}})");
  ASSERT_TRUE(stats.ok());
  auto s = samples(render_metrics(&stats.value(), ControlMetrics{}));
  EXPECT_EQ(s.at("imf_weird_name_x_total"), "5");
  EXPECT_EQ(s.at("imf_already_total"), "2");
  EXPECT_EQ(s.at("imf_dp_packets_total"), "3");  // would clash with the per-port family
  EXPECT_EQ(s.at("imf_dp_rule_hits_total"), "4");
}

}  // namespace
}  // namespace imf::control
