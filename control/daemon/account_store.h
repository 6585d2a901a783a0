// Accounts: account name -> markers and measure (state, until, rate), for 10 million accounts and
// more, kept in memory and persisted in one directory (<state_dir>/accounts):
//
//   accounts.csv      snapshot: one policy::format_account_row line per account, in no order
//   accounts.journal  changes since the snapshot, append-only: "set <row>" or "del <account>"
//
// A change is appended to the journal and fdatasync'd before the call returns, so an acknowledged
// change survives a crash; the snapshot is not rewritten per change (10M rows are ~400 MB). The
// snapshot is rewritten (temporary file, fsync, rename, directory fsync: the protocol of
// common/atomic_file.h, streamed instead of built in memory) and the journal truncated when the
// journal grows past max(100000 lines, rows/4), at every bulk load, and when the dataplane needs
// the whole table (snapshot_for_dataplane). A crash between the rename and the truncation replays
// a journal the snapshot already holds: harmless, as every line sets or deletes a whole row.
//
// init() replays snapshot then journal. A journal whose last line is torn (no newline, or not
// parsable: a crash mid-append) loses that line with a warning and is cut back to the last whole
// line; a bad line anywhere else is an error naming file and line.
//
// Memory: an AccountIndex (account_index.h), about 70 bytes per row with 25-byte names (10M rows:
// ~0.7 GB); marker lists are interned (rows share one copy of each distinct sorted marker list),
// which suits operator-defined markers.
//
// Thread-safety: every method may be called from any thread; one lock guards the store (a
// compaction of 10M rows holds it for seconds). prepare_load/commit_load must be serialized with
// other changes by the caller (Control holds its accounts lock across both).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/result.h"
#include "daemon/account_index.h"
#include "policy/policy_config.h"

namespace imf::control {

// The measure part of a row: what state_change records describe.
struct Measure {
  policy::AccountState state = policy::AccountState::kNone;
  int64_t until_s = 0;
  policy::Rate rate;
  friend bool operator==(const Measure&, const Measure&) = default;
};

Measure measure_of(const policy::AccountRow& row);

// One change of a bulk load whose measure differs from the account's before (a new account with a
// state other than none counts; so does an account a `replace` removes while it had one).
struct MeasureChange {
  std::string account;
  Measure before;
  Measure after;
  bool removed = false;  // by a replace load
};

struct AccountCounts {
  size_t rows = 0;
  size_t by_state[policy::kStateCount] = {};
  size_t marker_lists = 0;  // distinct marker lists interned
  uint64_t journal_lines = 0;
  size_t memory_bytes = 0;  // the index (rows, keys, slots)
};

class AccountStore {
  struct Entry {
    int64_t until_s = 0;
    policy::Rate rate;
    uint32_t markers = 0;  // index into marker_lists_; 0 = none
    policy::AccountState state = policy::AccountState::kNone;
  };

 public:
  // A single change: a whole row to set, or an account to delete.
  struct Change {
    std::string account;
    std::optional<policy::AccountRow> row;  // nullopt: delete
  };

  explicit AccountStore(std::string dir);
  ~AccountStore();
  AccountStore(const AccountStore&) = delete;
  AccountStore& operator=(const AccountStore&) = delete;

  // Creates the directory if needed, removes temporaries of interrupted writes, replays snapshot
  // and journal (see above), compacts when the journal is over its limit. Call once, first.
  Status init();

  std::optional<policy::AccountRow> get(std::string_view account) const;

  // Applies `changes` in order with one journal append and one fdatasync. Rows must be valid
  // (check_account_name, check_marker_name: Control checks them first). On a write error nothing
  // changes in memory and the journal is cut back to its previous end.
  Status apply(const std::vector<Change>& changes);

  struct LoadResult {
    size_t rows = 0;      // data rows in the input
    size_t inserted = 0;  // rows whose account was not in the store
    size_t updated = 0;   // rows whose account was (a repeated account counts again, except with replace)
    size_t removed = 0;   // accounts a replace dropped
    size_t size = 0;      // rows in the store afterwards
  };
  // Called by load() with the lock held, after the rows are checked and before anything is made
  // durable: the measures the load changes, in input order (removals last). An error fails the
  // load and nothing changes.
  using BeforeCommit = std::function<Status(const std::vector<MeasureChange>&, const LoadResult&)>;

  // Parses every row of `csv` (policy::format_account_row lines; blank lines skipped): errors read
  // "SOURCE:LINE: what is wrong", at most 10 then a count of the rest; nothing changes on error.
  // Without `replace` rows are upserted in order (a repeated account: its last row wins, and each
  // row's measure change is reported); with it the rows become the whole content. Then calls
  // `before_commit`, writes the new snapshot and truncates the journal. On any error nothing
  // changes.
  Result<LoadResult> load(std::string_view csv, const std::string& source, bool replace,
                          const BeforeCommit& before_commit);

  // Compacts (snapshot rewritten, journal truncated) and returns the snapshot's path: the whole
  // table for imfd's accounts.load. The file is replaced by rename, so a reader that opened it
  // keeps a whole version.
  Result<std::string> snapshot_for_dataplane();
  Status compact();

  size_t rows() const;
  AccountCounts counts() const;
  const std::string& snapshot_path() const { return snapshot_path_; }
  const std::string& journal_path() const { return journal_path_; }

  // Journal lines that trigger a compaction with `rows` rows.
  static uint64_t journal_limit(size_t rows) { return std::max<uint64_t>(100000, rows / 4); }

 private:
  using Map = AccountIndex<Entry>;

  // With mu_ held.
  Entry to_entry(const policy::AccountRow& row);
  policy::AccountRow to_row(std::string_view account, const Entry& e) const;
  uint32_t intern(const std::vector<std::string>& markers);
  void put(std::string_view account, const Entry& e);
  bool erase(std::string_view account);
  Status write_snapshot(const Map& rows) const;
  Status compact_locked();
  Status open_journal();
  Status replay_snapshot();
  Status replay_journal();
  Status truncate_journal();

  std::string dir_;
  std::string snapshot_path_;
  std::string journal_path_;

  mutable std::mutex mu_;  // guards everything below
  Map rows_;
  size_t by_state_[policy::kStateCount] = {};
  std::vector<std::vector<std::string>> marker_lists_;    // [0] is the empty list
  std::unordered_map<std::string, uint32_t> marker_ids_;  // "a;b;c" -> index
  int journal_fd_ = -1;
  uint64_t journal_bytes_ = 0;
  uint64_t journal_lines_ = 0;
};

}  // namespace imf::control
