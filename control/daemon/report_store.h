// Reports (complaints about an account from the public, entered by operators), persisted as an
// append-only <state_dir>/reports.jsonl of events, one JSON object per line:
//
//   {"event":"opened","id":7,"account":"A","reason":"...","digest":"<64 hex>"|null,"time_ns":T}
//   {"event":"resolved","id":7,"note":"...","time_ns":T}
//
// Each event is fdatasync'd before the call returns; init() replays the file. A torn last line (a
// crash mid-append) is dropped with a warning and cut off; a bad line elsewhere is an error naming
// file and line. Reports are few next to accounts: all are kept in memory.
//
// Thread-safety: every method may be called from any thread; one lock guards the store.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"

namespace imf::control {

struct Report {
  uint64_t id = 0;
  std::string account;
  std::string reason;
  std::string digest;  // "" when none was given
  int64_t opened_ns = 0;
  bool resolved = false;
  std::string note;  // resolution note, "" when none
  int64_t resolved_ns = 0;
};

// 1-500 bytes without control characters; errors name `what` ("--reason", "--note").
Status check_report_text(std::string_view text, const char* what, bool allow_empty);
// 64 hex digits; returns them in lower case.
Result<std::string> check_digest(std::string_view hex);

class ReportStore {
 public:
  explicit ReportStore(std::string path) : path_(std::move(path)) {}
  ~ReportStore();
  ReportStore(const ReportStore&) = delete;
  ReportStore& operator=(const ReportStore&) = delete;

  // Replays the file (creating it when missing). Call once, first.
  Status init();

  // Opens a report with the next id (one above every id seen). Fields must be checked already
  // (check_report_text, check_digest, policy::check_account_name).
  Result<Report> open(const std::string& account, const std::string& reason, const std::string& digest, int64_t now_ns);
  // Resolves an open report. Errors: no such report, already resolved.
  Result<Report> resolve(uint64_t id, const std::string& note, int64_t now_ns);

  // Reports by id, ascending; only open ones with `open_only`, only `account`'s with `account`.
  std::vector<Report> list(bool open_only, const std::optional<std::string>& account) const;
  std::optional<Report> get(uint64_t id) const;
  // The id the next open() assigns (callers serialize open() to rely on it).
  uint64_t next_id() const;
  size_t open_count(std::string_view account) const;
  size_t open_total() const;
  size_t total() const;
  // When the longest-waiting open report was opened (unix ns); nullopt when none is open.
  std::optional<int64_t> oldest_open_ns() const;

 private:
  Status append(const std::string& line);
  Status replay();

  std::string path_;
  mutable std::mutex mu_;  // guards everything below
  int fd_ = -1;
  uint64_t bytes_ = 0;
  std::map<uint64_t, Report> reports_;
  std::unordered_map<std::string, size_t> open_by_account_;
  size_t open_total_ = 0;
  uint64_t next_id_ = 1;
};

}  // namespace imf::control
