// Prometheus text exposition (format 0.0.4) of the dataplane's counters, served over HTTP on a
// loopback address: GET /metrics. The dataplane is queried at scrape time; when it does not
// answer, only the control-side families are served, with imf_dataplane_up 0.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/result.h"
#include "daemon/config.h"
#include "proto/json.h"

namespace imf::control {

struct ControlMetrics {
  uint64_t active_version = 0;  // on disk; 0 when none
  double uptime_s = 0;
  // Accounts, reports and records (rendered when `accounts` is set).
  bool accounts = false;
  uint64_t accounts_by_state[5] = {};  // indexed by policy::AccountState
  uint64_t reports_open = 0;
  int64_t reports_oldest_open_s = 0;   // age of the longest-waiting open report; 0 when none
  uint64_t records_control_seq = 0;    // last record of the control chain
  uint64_t records_dataplane_seq = 0;  // last record of imfd's chain read
  uint64_t dataplane_state_changes_applied = 0;
};

// Renders the exposition text from a dataplane `stats` response (nullptr: unreachable). Families:
// imf_dataplane_up, imf_control_active_rules_version, imf_control_uptime_seconds,
// imf_rules_version, imf_packets_total / imf_bytes_total {port, direction},
// imf_port_rx_missed_total / imf_port_tx_errors_total {port}, imf_<counter>_total {lcore} (one
// family per dataplane counter; without the label when the dataplane reports only totals; a
// counter whose family name would clash with a fixed family becomes imf_dp_<name>_total),
// imf_rule_hits_total {rule, action}, imf_latency_nanoseconds {quantile} and
// imf_latency_samples_total; with control.accounts also imf_control_accounts {state},
// imf_control_reports_open, imf_control_reports_oldest_open_seconds, imf_control_records_seq {chain} and
// imf_control_dataplane_state_changes_applied_total (served whether or not the dataplane answers). Names are sanitized
// to [a-zA-Z0-9_], label values escaped. Pure.
std::string render_metrics(const json::Value* stats, const ControlMetrics& control);

// A minimal HTTP/1.0 server for GET /metrics on one loopback address; one request at a time, each
// with a 2 s read and write timeout, `Connection: close`. Its own thread.
class MetricsServer {
 public:
  // Binds and listens. Errors name the address.
  static Result<std::unique_ptr<MetricsServer>> listen(const ListenAddress& address, std::function<std::string()> body);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  void start();
  void stop();                                      // joins the thread
  std::string address() const { return address_; }  // "127.0.0.1:PORT" with the bound port

 private:
  MetricsServer(int fd, int stop_fd_read, int stop_fd_write, std::string address, std::function<std::string()> body)
      : fd_(fd), stop_r_(stop_fd_read), stop_w_(stop_fd_write), address_(std::move(address)), body_(std::move(body)) {}
  void run();
  void serve(int client);

  int fd_;
  int stop_r_;
  int stop_w_;
  std::string address_;
  std::function<std::string()> body_;
  std::thread thread_;
};

}  // namespace imf::control
