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
// Accounts (markers and measures) live in an AccountStore under <state_dir>/accounts, reports in
// a ReportStore (<state_dir>/reports.jsonl). Every operator action on an account and every report
// event is written to the control record chain (records_dir) BEFORE the change is stored, so no
// measure in effect lacks its record; a change whose storing then fails gets a "change_failed"
// record naming the records it voids. Each account change is forwarded to imfd (account.set /
// account.del; accounts.load of the compacted snapshot after a bulk load); imfd's own changes
// (escalations, lapses) arrive through its record chain, which follow_dataplane_records() applies
// to the store without sending them back.
//
// Thread-safety: every method may be called from any thread at once. Compiles run in parallel;
// activations (load, rollback, resync installs) are serialized by one lock, so versions are
// numbered and activated in one order. Account changes, their forwarding, accounts.load and the
// following of imfd's records are serialized by another (accounts_mu_), so imfd sees account
// changes in the order they were stored.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "daemon/account_store.h"
#include "daemon/config.h"
#include "daemon/dataplane_link.h"
#include "daemon/report_store.h"
#include "daemon/table_store.h"
#include "daemon/version_store.h"
#include "policy/policy_config.h"
#include "proto/json.h"
#include "records/chain.h"
#include "records/digest.h"

namespace imf::control {

// Receives human-readable progress of a long command (a line each).
using Progress = std::function<void(const std::string&)>;

struct ControlTimeouts {
  std::chrono::milliseconds install{120000};        // the agent answers once every worker switched
  std::chrono::milliseconds query{3000};            // status, stats
  std::chrono::milliseconds scrape{1000};           // stats for a metrics scrape
  std::chrono::milliseconds table_load{60000};      // the agent reads a whole snapshot (1M rows: seconds)
  std::chrono::milliseconds accounts_load{300000};  // 10M account rows
};

// account.set's arguments as the operator gave them (imfctl's options); account_set checks them.
struct AccountSetArgs {
  std::string account;
  std::optional<std::vector<std::string>> markers;  // --markers: the whole list
  std::vector<std::string> add_markers;             // --add-marker
  std::vector<std::string> remove_markers;          // --remove-marker
  std::optional<std::string> state;                 // --state
  std::optional<std::string> until;                 // --until TIME (records::parse_time)
  std::optional<std::string> for_duration;          // --for DURATION (policy::parse_duration)
  std::optional<std::string> rate;                  // --rate N/INTERVAL
  std::optional<std::string> reason;                // --reason
};

struct RecordsQueryArgs {
  std::optional<std::string> account;
  std::optional<std::string> since;  // records::parse_time
  std::optional<int64_t> limit;      // default 1000: the newest matches
  bool pseudonymize = false;
};

class Control {
 public:
  Control(ControlConfig config, DataplaneLink& dataplane, ControlTimeouts timeouts = {});
  ~Control();
  Control(const Control&) = delete;
  Control& operator=(const Control&) = delete;

  // Prepares <state_dir>/rules and <state_dir>/tables (removing leftovers of interrupted writes)
  // and loads the tables; loads the policy, the digest key (created if missing), the accounts and
  // reports, opens the control record chain and the reader of imfd's chain at the persisted
  // cursor. Call once, before anything else.
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

  // account.set: changes markers and/or the measure of one account (created when new). Checks every
  // argument first (errors name the option: "--until: ..."), writes the records (a "markers" and/or
  // a "state_change" record), stores the row (journal), forwards it to the dataplane.
  // Result {"account","row","markers","state","until","until_s","rate","changed":{"markers","measure"},
  // "records":[SEQ...],"dataplane":{...}}.
  Result<json::Value> account_set(const AccountSetArgs& args, uid_t peer_uid);
  // account.show: the stored row, its open reports and (when imfd answers) imfd's live row.
  // Result {"account","found","markers","state","until","until_s","rate","open_reports","dataplane":{...}}.
  Result<json::Value> account_show(const std::string& account);
  // account.del: removes an account (records its measure and markers going), forwards account.del.
  // Result {"account","deleted","records":[...],"dataplane":{...}}.
  Result<json::Value> account_del(const std::string& account, uid_t peer_uid);
  // account.load: a CSV of account rows (policy::format_account_row), all or nothing; records an
  // "accounts_loaded" record and a state_change per row whose measure changed; sends accounts.load.
  // Result {"rows","inserted","updated","removed","size","replace","state_changes","ms","dataplane":{...}}.
  Result<json::Value> account_load(const std::string& csv, const std::string& source, bool replace, uid_t peer_uid,
                                   const Progress& progress);
  // account.count: {"rows","by_state":{state:N},"marker_lists","journal_lines"}.
  Result<json::Value> account_count();

  // report.add: opens a report; when the account's open reports reach a multiple of the policy's
  // report_threshold (0: never), escalates it one step (a state_change record with cause
  // "reports"; until = now + the policy's expiry of the new state; a restricted account gets the
  // policy's restricted_rate).
  // Result {"report","account","open_reports","escalation":null|{"state_before","state_after","until","rate"}}.
  Result<json::Value> report_add(const std::string& account, const std::string& reason,
                                 const std::optional<std::string>& digest, uid_t peer_uid);
  // report.list: {"reports":[{"report","account","reason","digest","opened","status","note","resolved"}]}.
  Result<json::Value> report_list(bool open_only, const std::optional<std::string>& account);
  // report.resolve: {"report","account","open_reports"}.
  Result<json::Value> report_resolve(uint64_t id, const std::string& note, uid_t peer_uid);

  // records.verify: both chains. {"ok",chains:[{"source","dir","ok","records","files","first_seq",
  // "last_seq","problems":[...]}]}.
  Result<json::Value> records_verify();
  // records.query: {"records":[{...}],"count","limit","pseudonymized"} merged from both chains.
  Result<json::Value> records_query(const RecordsQueryArgs& args);
  // records.digest: HMAC (digest key) of `content`, or of its first `bytes` bytes.
  // {"digest","bytes","of_bytes"}. Errors never quote the content.
  Result<json::Value> records_digest(const std::string& content, std::optional<int64_t> bytes);

  // Applies the state_change records imfd wrote since the cursor to the account store (without
  // sending them back to imfd), then persists the cursor. Returns how many records were read.
  // Also fsyncs the control chain when records_fsync_every > 1 left records unsynced. Follower
  // thread (every 200 ms).
  Result<size_t> follow_dataplane_records();

  // Tests: the clock for record times, report times and `until` (unix ns).
  void set_clock(std::function<int64_t()> now_ns) { clock_ = std::move(now_ns); }

  // stats: the dataplane's counters as its agent reports them. Error when it is unreachable.
  Result<json::Value> stats();
  // status: the control side (uptime, active version, last load) and the dataplane's status.
  Result<json::Value> status();
  // health: ok while the control process runs; says whether the dataplane answers.
  Result<json::Value> health();

  // One resync round: asks the dataplane's status, installs the active version if it runs another,
  // then, when the status lists "tables", loads the snapshot of every table whose dataplane copy
  // may differ, and when it has "accounts", loads the accounts when imfd's copy may differ (its
  // row count differs, a forward failed, imfd restarted, or this process just started) — after
  // applying imfd's pending records, so its own escalations are not undone. Connection failures
  // are expected (dataplane down) and only recorded. Resync thread.
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
  // Sends the argument-less request `cmd` (status, stats) and notes the reply (note_dataplane,
  // and observe_dataplane_status for a status).
  DataplaneReply ask_dataplane(const char* cmd, std::chrono::milliseconds timeout);
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

  // ---------------------------------------------------------------- accounts, reports, records
  Status init_accounts_and_records();
  int64_t now_ns() const { return clock_(); }
  std::string cursor_path() const { return config_.state_dir + "/dataplane-records.cursor"; }
  // Appends records (JSON objects) to the control chain and makes them durable per
  // records_fsync_every; returns their seqs. With records_mu_ taken inside.
  Result<std::vector<uint64_t>> write_records(const std::vector<json::Value>& records);
  // Best effort: records that the changes described by seqs [first, last] were not applied.
  void record_failure(const std::vector<uint64_t>& seqs, const std::string& error);
  // The "dataplane" member of an account change's result; sends `request` unless imfd keeps no
  // accounts. With accounts_mu_ held.
  json::Value forward_account_change(const json::Value& request);
  // With accounts_mu_ held: compacts and sends accounts.load. Error: the snapshot could not be
  // written (nothing sent).
  Result<DataplaneReply> load_accounts();
  // With accounts_mu_ held: applies every pending imfd record; `forward_back`: also sends each
  // resulting row to imfd (after an accounts.load, for changes imfd made while loading).
  Result<size_t> apply_dataplane_records(bool forward_back);
  // With accounts_mu_ held: one account change, recorded then stored then forwarded.
  Result<json::Value> change_account(const std::optional<policy::AccountRow>& before,
                                     const std::optional<policy::AccountRow>& after, std::vector<json::Value> records);
  // Loads the accounts into imfd when its copy may differ (resync).
  void sync_accounts(const json::Value& status_body, uint64_t changes_before, std::string* errors);
  json::Value records_figures();
  json::Value report_figures();
  // Sets "accounts", "reports" and "records" of the control side's figures in `c`.
  void add_policy_figures(json::Value& c);
  json::Value account_figures();

  ControlConfig config_;
  DataplaneLink& dataplane_;
  ControlTimeouts timeouts_;
  VersionStore versions_;
  TableStore tables_;
  AccountStore accounts_;
  ReportStore reports_;
  policy::EscalationPolicy policy_;
  records::Key key_{};
  std::function<int64_t()> clock_;

  std::mutex records_mu_;  // guards the writer (single-threaded) and unsynced_records_
  std::unique_ptr<records::ChainWriter> records_;
  uint64_t unsynced_records_ = 0;

  std::mutex reports_mu_;  // serializes report changes (the id is recorded before the report is stored)

  std::mutex accounts_mu_;  // serializes account changes, forwards, loads and record following
  std::unique_ptr<records::ChainReader> dataplane_reader_;  // guarded by accounts_mu_
  uint64_t cursor_written_ = 0;                             // guarded by accounts_mu_
  // imfd's copy may differ: resync loads it. As TableSync::dirty.
  std::atomic<bool> accounts_dirty_{true};
  std::atomic<uint64_t> account_changes_{0};
  std::atomic<uint64_t> dp_records_applied_{0};  // imfd state changes applied to the store
  std::atomic<uint64_t> dp_records_stale_{0};    // passed over: the store's state was not state_before
  std::atomic<uint64_t> dp_records_bad_{0};      // unreadable state_change records
  std::atomic<uint64_t> dp_records_seen_{0};     // records read (any kind)
  // The reader's last_seq() and skipped(), for status without waiting for accounts_mu_ (held
  // through a 10M-row load).
  std::atomic<uint64_t> dp_read_seq_{0};
  std::atomic<uint64_t> dp_skipped_{0};
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
  DataplaneTables dataplane_tables_ = DataplaneTables::kUnknown;    // from the newest status
  DataplaneTables dataplane_accounts_ = DataplaneTables::kUnknown;  // its status has "accounts"
  // When the dataplane started, estimated from the newest status's uptime_s.
  std::optional<std::chrono::steady_clock::time_point> dataplane_started_;
};

int64_t now_unix_ms();

}  // namespace imf::control
