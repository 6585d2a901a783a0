// The dataplane agent: a UNIX socket through which the control process installs rule-set
// versions and reads status and counters. One thread, off the fast path; the workers never wait
// for it. Protocol (JSON lines, one request -> one response): docs/interfaces.md, "Agent socket".
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "agent/installer.h"
#include "common/result.h"
#include "policy/account_table.h"
#include "proto/json.h"
#include "table/kv_table.h"

namespace imf::dp::agent {

class Agent {
 public:
  // stats_json() returns the counters object for "stats" (called on the agent thread);
  // protocols_json is the status's "protocols" member value (what is decoded on which ports).
  // Errors name the socket path. Setup thread.
  static Result<std::unique_ptr<Agent>> listen(const std::string& path, RuleInstaller& installer,
                                               table::TableSet& tables, policy::AccountTable& accounts,
                                               std::function<std::string()> stats_json, std::string protocols_json);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  void start();
  void stop();  // joins the thread and removes the socket file

  // Handles one request line; returns the response line (with '\n'). Public for tests.
  std::string handle(const std::string& line);

 private:
  Agent(int fd, std::string path, RuleInstaller& installer, table::TableSet& tables, policy::AccountTable& accounts,
        std::function<std::string()> stats_json, std::string protocols_json)
      : listen_fd_(fd),
        path_(std::move(path)),
        installer_(installer),
        tables_(tables),
        accounts_(accounts),
        stats_json_(std::move(stats_json)),
        protocols_json_(std::move(protocols_json)) {}
  void run();
  std::string handle_table(const std::string& cmd, const json::Value& req);
  std::string handle_account(const std::string& cmd, const json::Value& req);

  int listen_fd_;
  std::string path_;
  RuleInstaller& installer_;
  table::TableSet& tables_;
  policy::AccountTable& accounts_;
  std::function<std::string()> stats_json_;
  std::string protocols_json_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace imf::dp::agent
