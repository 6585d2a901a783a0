// Named tables of string key -> string value (for account-marker tables: millions of rows),
// kept in memory and persisted as <dir>/<name>.csv snapshots.
//
// Persistence: every change command (set, del, bulk) rewrites the table's whole snapshot with
// write_file_atomic (temporary file, fsync, rename, directory fsync) before it returns, so an
// acknowledged change is durable and a crash leaves the old or the new snapshot, never a mix.
// The cost is one full rewrite per command: load many rows with one bulk, not many sets.
//
// CSV: one `key,value` row per line; the key runs to the first ',', the value is the rest of the
// line (it may hold commas). No quoting. A trailing '\r' is dropped; blank lines are skipped.
// Keys are 1-96 bytes without ',', CR, LF or NUL; values 0-256 bytes without CR, LF or NUL: what
// the dataplane's tables hold, checked here so the dataplane rarely refuses a change. Snapshots
// written before these limits (keys up to 1024, values up to 65536 bytes) still load at start;
// the dataplane refuses their long rows, which the resync reports.
//
// Thread-safety: every method may be called from any thread. Each table has its own lock, held
// across a change and its snapshot write, so snapshots are written in the order changes happen.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/table_limits.h"

namespace imf::control {

// Row limits: new rows are held to the dataplane's (control/common/table_limits.h).
struct RowLimits {
  size_t key_bytes;
  size_t value_bytes;
};
inline constexpr RowLimits kDataplaneLimits{kTableMaxKey, kTableMaxValue};  // new rows (set, bulk)
inline constexpr RowLimits kSnapshotLimits{1024, 65536};                    // snapshots read at start

// Table names: 1-64 characters of A-Z a-z 0-9 _ . - , not starting with '.'.
Status check_table_name(std::string_view name);
// Errors name the key ("key 'k' is 120 bytes, over the limit of 96 bytes").
Status check_key(std::string_view key, const RowLimits& limits = kDataplaneLimits);
// Errors say what is wrong with the value; callers name the key.
Status check_value(std::string_view value, const RowLimits& limits = kDataplaneLimits);

using Rows = std::vector<std::pair<std::string, std::string>>;

// Parses CSV text; errors read "SOURCE:LINE: problem", at most 10 of them, then a count of the
// rest. Pure.
Result<Rows> parse_csv(std::string_view text, const std::string& source, const RowLimits& limits = kDataplaneLimits);

struct BulkResult {
  size_t rows = 0;      // data rows in the input
  size_t inserted = 0;  // keys new to the table
  size_t updated = 0;   // keys already present (value replaced)
  size_t size = 0;      // rows in the table afterwards
};

struct TableInfo {
  std::string name;
  size_t rows = 0;
};

class TableStore {
 public:
  explicit TableStore(std::string dir) : dir_(std::move(dir)) {}

  // Creates the directory if needed, removes temporaries of interrupted writes and loads every
  // <name>.csv. A snapshot that does not parse is an error naming file and line.
  Status init();

  // Sets one key, creating the table if needed.
  Status set(const std::string& table, const std::string& key, const std::string& value);
  // Deletes one key; false when it was not there. Error when the table does not exist.
  Result<bool> del(const std::string& table, const std::string& key);
  // nullopt when the key is absent. Error when the table does not exist.
  Result<std::optional<std::string>> get(const std::string& table, const std::string& key) const;
  // Parses `csv` whole first: on any error nothing changes. Then upserts every row (the last row
  // of a key wins), or with `replace` makes the rows the table's whole content.
  Result<BulkResult> bulk(const std::string& table, std::string_view csv, const std::string& source, bool replace);
  // Tables and their row counts, by name.
  std::vector<TableInfo> list() const;
  // Rows in `name`; nullopt when there is no such table.
  std::optional<size_t> rows(const std::string& name) const;
  // The snapshot file of `name` (absolute when the directory given is): what the dataplane loads.
  std::string snapshot_path(const std::string& name) const { return path(name); }

 private:
  struct Table {
    mutable std::mutex mu;
    std::unordered_map<std::string, std::string> rows;
  };
  Table* find(const std::string& name) const;
  Table* find_or_create(const std::string& name);
  std::string path(const std::string& name) const { return dir_ + "/" + name + ".csv"; }
  Status write_snapshot(const std::string& name, const std::unordered_map<std::string, std::string>& rows) const;

  std::string dir_;
  mutable std::mutex mu_;  // guards tables_ (the map, not the tables' rows)
  std::unordered_map<std::string, std::unique_ptr<Table>> tables_;
};

}  // namespace imf::control
