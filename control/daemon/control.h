// The control process's actions: one function per command. The socket handler (dispatch.h) and,
// through the socket, imfctl only translate to and from these.
//
// Rule sets are parsed and compiled here, off the fast path; each accepted set becomes a numbered
// artifact in <state_dir>/rules, is installed in the dataplane through its agent socket, and only
// then is marked active on disk. The resync thread calls resync() so the dataplane ends up running
// what the disk says is active, whatever was down when.
//
// Tables live in <state_dir>/tables; each change is forwarded to the dataplane's copy right after
// its snapshot is written (a whole snapshot, table.load, after a bulk), and resync() loads the
// snapshot of any table whose copy may differ (row counts differ, a forward failed, the dataplane
// restarted, or this process just started).
//
// Thread-safety: every method may be called from any thread at once. Compiles run in parallel;
// activations (load, rollback, resync installs) are serialized by one lock, so versions are
// numbered and activated in one order.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/result.h"
#include "daemon/config.h"
#include "daemon/dataplane_link.h"
#include "daemon/table_store.h"
#include "daemon/version_store.h"
#include "proto/json.h"

namespace imf::control {

// Receives human-readable progress of a long command (a line each).
using Progress = std::function<void(const std::string&)>;

struct ControlTimeouts {
  std::chrono::milliseconds install{120000};    // the agent answers once every worker switched
  std::chrono::milliseconds query{3000};        // status, stats
  std::chrono::milliseconds scrape{1000};       // stats for a metrics scrape
  std::chrono::milliseconds table_load{60000};  // the agent reads a whole snapshot (1M rows: seconds)
};

class Control {
 public:
  Control(ControlConfig config, DataplaneLink& dataplane, ControlTimeouts timeouts = {});

  // Prepares <state_dir>/rules and <state_dir>/tables (removing leftovers of interrupted writes)
  // and loads the tables. Call once, before anything else.
  Status init();

  // rules.validate: parses and compiles without keeping anything.
  // Result {"rules":N,"source":S}. Errors are the parser's or compiler's, "SOURCE:LINE: rule 'ID': ...".
  Result<json::Value> rules_validate(const std::string& text, const std::string& source);
  // rules.load: parse, compile, write artifact N, install in the dataplane, mark N active, prune.
  // Result {"version","previous","rules","compile_ms","dataplane":{...},"pruned":[...]}.
  // On any error the previous active version stays active on disk and in the dataplane; when the
  // dataplane is unreachable N still becomes active and "dataplane" says it will be synced.
  Result<json::Value> rules_load(const std::string& text, const std::string& source, const Progress& progress);
  // rules.show: one kept version (default: the active one) with its rule text.
  Result<json::Value> rules_show(std::optional<uint64_t> version);
  // rules.diff: rules added, removed and changed by id from version `from` to version `to`.
  Result<json::Value> rules_diff(uint64_t from, uint64_t to);
  // rules.rollback: makes a kept version (default: the newest below the active one) active again,
  // by the same install path as a load, without compiling.
  Result<json::Value> rules_rollback(std::optional<uint64_t> version, const Progress& progress);
  // rules.list: the kept versions and which one is active.
  Result<json::Value> rules_list();

  // table.set, table.del, table.bulk: change the table, write its snapshot, then forward the
  // change to the dataplane (table.set / table.del, or table.load of the snapshot after a bulk).
  // The command succeeds once the snapshot is written; the result's "dataplane" member says
  // whether the dataplane applied it: {"applied":true} or {"applied":false,"error"|"note"}.
  // A change the dataplane did not apply is fixed by the next resync (the table is loaded whole).
  Result<json::Value> table_set(const std::string& table, const std::string& key, const std::string& value);
  Result<json::Value> table_del(const std::string& table, const std::string& key);
  // table.get: reads the control process's copy; no dataplane exchange.
  Result<json::Value> table_get(const std::string& table, const std::string& key);
  Result<json::Value> table_bulk(const std::string& table, const std::string& csv, const std::string& source,
                                 bool replace);
  Result<json::Value> table_list();

  // stats: the dataplane's counters as its agent reports them. Error when it is unreachable.
  Result<json::Value> stats();
  // status: the control side (uptime, active version, last load) and the dataplane's status.
  Result<json::Value> status();
  // health: ok while the control process runs; says whether the dataplane answers.
  Result<json::Value> health();

  // One resync round: asks the dataplane's status, installs the active version if it runs another,
  // then, when the status lists "tables", loads the snapshot of every table whose dataplane copy
  // may differ. Connection failures are expected (dataplane down) and only recorded. Resync thread.
  void resync();

  // The Prometheus exposition text for GET /metrics; queries the dataplane (scrape timeout).
  std::string metrics_text();

  // For status: where the metrics endpoint listens ("" when off).
  void set_metrics_address(std::string address);

  const ControlConfig& config() const { return config_; }

 private:
  struct ArtifactInfo {
    uint64_t created_unix_ms = 0;
    std::string source;
    size_t rules = 0;
    uint64_t bytes = 0;
  };
  Result<ArtifactInfo> artifact_info(uint64_t version);
  // With rules_mu_ held: installs `version` in the dataplane, marks it active, prunes.
  // `fresh`: the version was just written (deleted again if the dataplane refuses it).
  Result<json::Value> activate(uint64_t version, bool fresh, const Progress& progress);
  DataplaneReply install(uint64_t version);
  void note_dataplane(const DataplaneReply& reply);

  // Per table: serializes a change with its forwarding, and loads, so the dataplane sees changes
  // in the order the snapshots were written.
  struct TableSync {
    std::mutex mu;
    // The dataplane's copy may differ from the snapshot: resync loads it. Set when a forward or a
    // load fails and when the dataplane restarts; cleared only by a load that succeeded. True at
    // creation: nothing is known of the dataplane's copy when this process starts. Atomic so a
    // detected restart can mark every table without waiting for a change in progress.
    std::atomic<bool> dirty{true};
    // Changes made (each after its forward). A table whose count moved since resync asked the
    // status is not compared by row count that round: the status predates the change.
    // Both atomics are sequentially consistent (the default): a change counted after its forward
    // answered is seen by a resync that reads the counts before asking the status.
    std::atomic<uint64_t> changes{0};
  };
  TableSync& table_sync(const std::string& table);
  // With sync.mu held: sends a table.set/table.del; the result's "dataplane" member.
  json::Value forward_table_change(const json::Value& request, TableSync& sync);
  // With sync.mu held: sends table.load of the table's snapshot.
  DataplaneReply load_table(const std::string& table, TableSync& sync);
  // Learns from a status response whether the dataplane keeps tables and whether it restarted
  // since the previous status (then every table is marked dirty).
  void observe_dataplane_status(const json::Value& body);
  // Every known table's change count.
  std::map<std::string, uint64_t> table_changes();
  // Loads the tables that may differ, given the dataplane's status and the change counts from
  // before it was asked; appends errors to `errors`.
  void sync_tables(const json::Value& status_body, const std::map<std::string, uint64_t>& changes_before,
                   std::string* errors);

  ControlConfig config_;
  DataplaneLink& dataplane_;
  ControlTimeouts timeouts_;
  VersionStore versions_;
  TableStore tables_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::mutex rules_mu_;  // serializes activations and version numbering

  mutable std::mutex state_mu_;  // guards everything below
  uint64_t highest_assigned_ = 0;
  struct LastLoad {
    uint64_t version = 0;
    int64_t unix_ms = 0;
    double compile_ms = 0;
    size_t rules = 0;
  };
  std::optional<LastLoad> last_load_;
  std::optional<bool> dataplane_reachable_;  // unknown until the first exchange
  std::string dataplane_error_;
  std::string resync_error_;
  int64_t last_resync_unix_ms_ = 0;
  std::string metrics_address_;
  std::map<uint64_t, ArtifactInfo> artifact_cache_;
  std::map<std::string, std::unique_ptr<TableSync>> table_sync_;
  enum class DataplaneTables : uint8_t { kUnknown, kYes, kNo };
  DataplaneTables dataplane_tables_ = DataplaneTables::kUnknown;  // from the newest status
  // When the dataplane started, estimated from the newest status's uptime_s.
  std::optional<std::chrono::steady_clock::time_point> dataplane_started_;
};

int64_t now_unix_ms();

}  // namespace imf::control
