#include "daemon/account_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>

#include "common/atomic_file.h"
#include "daemon/version_store.h"

namespace imf::control {

namespace {

constexpr size_t kMaxReportedErrors = 10;
constexpr size_t kChunk = 4u << 20;  // file reads and snapshot writes

// Calls fn(line, line_no, terminated, end_offset) for every line of `path` ('\n' dropped, a
// trailing '\r' kept for the parser), reading in chunks so a 400 MB snapshot is never held whole.
// A missing file has no lines.
Status for_each_line(const std::string& path,
                     const std::function<Status(std::string_view, size_t, bool, uint64_t)>& fn) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Ok{};
    return sys_error(path, "cannot open");
  }
  std::string buf;
  std::string carry;
  size_t line_no = 0;
  uint64_t offset = 0;  // of the first byte of `carry`
  buf.resize(kChunk);
  Status status = Ok{};
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = sys_error(path, "read failed");
      break;
    }
    if (n == 0) {
      if (!carry.empty()) status = fn(carry, ++line_no, false, offset + carry.size());
      break;
    }
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    while (!chunk.empty()) {
      size_t nl = chunk.find('\n');
      if (nl == std::string_view::npos) {
        carry.append(chunk);
        break;
      }
      std::string_view line;
      if (carry.empty()) {
        line = chunk.substr(0, nl);
      } else {
        carry.append(chunk.substr(0, nl));
        line = carry;
      }
      uint64_t end = offset + line.size() + 1;
      status = fn(line, ++line_no, true, end);
      offset = end;
      carry.clear();
      chunk.remove_prefix(nl + 1);
      if (!status) break;
    }
    if (!status) break;
  }
  ::close(fd);
  return status;
}

std::string_view without_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

std::string join_markers(const std::vector<std::string>& markers) {
  std::string out;
  for (const std::string& m : markers) {
    if (!out.empty()) out += ';';
    out += m;
  }
  return out;
}

}  // namespace

Measure measure_of(const policy::AccountRow& row) { return Measure{row.state, row.until_s, row.rate}; }

AccountStore::AccountStore(std::string dir)
    : dir_(std::move(dir)), snapshot_path_(dir_ + "/accounts.csv"), journal_path_(dir_ + "/accounts.journal") {
  marker_lists_.emplace_back();
  marker_ids_.emplace("", 0);
}

AccountStore::~AccountStore() {
  if (journal_fd_ >= 0) ::close(journal_fd_);
}

uint32_t AccountStore::intern(const std::vector<std::string>& markers) {
  if (markers.empty()) return 0;
  auto [it, inserted] = marker_ids_.emplace(join_markers(markers), static_cast<uint32_t>(marker_lists_.size()));
  if (inserted) marker_lists_.push_back(markers);
  return it->second;
}

AccountStore::Entry AccountStore::to_entry(const policy::AccountRow& row) {
  Entry e;
  e.until_s = row.until_s;
  e.rate = row.rate;
  e.markers = intern(row.markers);
  e.state = row.state;
  return e;
}

policy::AccountRow AccountStore::to_row(std::string_view account, const Entry& e) const {
  policy::AccountRow r;
  r.account = std::string(account);
  r.markers = marker_lists_[e.markers];
  r.state = e.state;
  r.until_s = e.until_s;
  r.rate = e.rate;
  return r;
}

void AccountStore::put(std::string_view account, const Entry& e) {
  auto [v, inserted] = rows_.try_emplace(account, e);
  if (!inserted) {
    --by_state_[static_cast<int>(v->state)];
    *v = e;
  }
  ++by_state_[static_cast<int>(e.state)];
}

bool AccountStore::erase(std::string_view account) {
  const Entry* e = rows_.find(account);
  if (!e) return false;
  --by_state_[static_cast<int>(e->state)];
  rows_.erase(account);
  return true;
}

Status AccountStore::init() {
  std::lock_guard lock(mu_);
  if (Status s = make_dirs(dir_, 0750); !s) return s;
  auto removed = remove_temporaries(dir_);
  if (!removed) return make_error(removed.error());
  if (Status s = replay_snapshot(); !s) return s;
  if (Status s = replay_journal(); !s) return s;
  if (Status s = open_journal(); !s) return s;
  if (journal_lines_ > journal_limit(rows_.size())) return compact_locked();
  return Ok{};
}

Status AccountStore::replay_snapshot() {
  struct stat st {};
  // Rows are ~30-60 bytes: room for most of them up front saves rehashing 10M rows as it grows.
  if (::stat(snapshot_path_.c_str(), &st) == 0) rows_.reserve(static_cast<size_t>(st.st_size) / 48);
  return for_each_line(snapshot_path_, [&](std::string_view line, size_t no, bool, uint64_t) -> Status {
    line = without_cr(line);
    if (line.empty()) return Ok{};
    auto row = policy::parse_account_row(line);
    if (!row) return make_error(snapshot_path_ + ":" + std::to_string(no) + ": " + row.error());
    put(row->account, to_entry(row.value()));
    return Ok{};
  });
}

Status AccountStore::replay_journal() {
  // A line is applied only once the next one is seen (or it ends the file whole): the last line
  // may be torn and is then dropped instead of failing the start.
  struct Pending {
    std::string line;
    size_t no = 0;
    bool terminated = false;
    uint64_t start = 0;  // offset of its first byte
  };
  std::optional<Pending> pending;
  uint64_t good_end = 0;  // offset after the last line applied
  auto apply_line = [&](const Pending& p, bool last) -> Status {
    std::string_view line = without_cr(p.line);
    std::string problem;
    if (!p.terminated) {
      problem = "no newline at the end";
    } else if (line.rfind("set ", 0) == 0) {
      auto row = policy::parse_account_row(line.substr(4));
      if (row) {
        put(row->account, to_entry(row.value()));
      } else {
        problem = row.error();
      }
    } else if (line.rfind("del ", 0) == 0) {
      if (Status s = policy::check_account_name(line.substr(4)); s) {
        erase(line.substr(4));
      } else {
        problem = s.error();
      }
    } else if (line.empty()) {
      problem = "empty line";
    } else {
      problem = "expected 'set ROW' or 'del ACCOUNT'";
    }
    if (problem.empty()) {
      ++journal_lines_;
      good_end = p.start + p.line.size() + 1;
      return Ok{};
    }
    std::string where = journal_path_ + ":" + std::to_string(p.no) + ": ";
    if (!last) return make_error(where + problem);
    spdlog::warn("{}{}: a torn last line (crash during an append); it is dropped", where, problem);
    return Ok{};
  };
  Status s = for_each_line(journal_path_, [&](std::string_view line, size_t no, bool terminated, uint64_t end) {
    if (pending) {
      if (Status a = apply_line(*pending, false); !a) return a;
    }
    uint64_t start = end - line.size() - (terminated ? 1 : 0);
    pending = Pending{std::string(line), no, terminated, start};
    return Status(Ok{});
  });
  if (!s) return s;
  if (pending) {
    if (Status a = apply_line(*pending, true); !a) return a;
  }
  journal_bytes_ = good_end;
  struct stat st {};
  if (::stat(journal_path_.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) > good_end) {
    // Cut the torn tail, so the next append starts on a line of its own.
    if (::truncate(journal_path_.c_str(), static_cast<off_t>(good_end)) != 0)
      return sys_error(journal_path_, "cannot cut a torn last line");
  }
  return Ok{};
}

Status AccountStore::open_journal() {
  journal_fd_ = ::open(journal_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (journal_fd_ < 0) return sys_error(journal_path_, "cannot open");
  return Ok{};
}

std::optional<policy::AccountRow> AccountStore::get(std::string_view account) const {
  std::lock_guard lock(mu_);
  const Entry* e = rows_.find(account);
  if (!e) return std::nullopt;
  return to_row(account, *e);
}

Status AccountStore::apply(const std::vector<Change>& changes) {
  if (changes.empty()) return Ok{};
  std::string text;
  for (const Change& c : changes) {
    if (c.row) {
      text += "set ";
      text += policy::format_account_row(*c.row);
    } else {
      text += "del ";
      text += c.account;
    }
    text += '\n';
  }
  std::lock_guard lock(mu_);
  if (journal_fd_ < 0) return make_error(journal_path_ + ": not open");
  Status w = write_all(journal_fd_, text, journal_path_);
  if (w && ::fdatasync(journal_fd_) != 0) w = sys_error(journal_path_, "fdatasync failed");
  if (!w) {
    // Nothing was applied: take back whatever part of the lines reached the file.
    if (::ftruncate(journal_fd_, static_cast<off_t>(journal_bytes_)) != 0)
      spdlog::error("{}", sys_error(journal_path_, "cannot cut back a failed append").message);
    return w;
  }
  journal_bytes_ += text.size();
  journal_lines_ += changes.size();
  for (const Change& c : changes) {
    if (c.row) {
      put(c.account, to_entry(*c.row));
    } else {
      erase(c.account);
    }
  }
  if (journal_lines_ > journal_limit(rows_.size())) {
    // The changes are durable in the journal already: a failed compaction only delays it.
    if (Status s = compact_locked(); !s) spdlog::error("compacting accounts: {}", s.error());
  }
  return Ok{};
}

Result<AccountStore::LoadResult> AccountStore::load(std::string_view csv, const std::string& source, bool replace,
                                                    const BeforeCommit& before_commit) {
  std::vector<std::pair<std::string_view, Entry>> parsed;  // views into `csv`
  std::string errors;
  size_t n_errors = 0;
  size_t line_no = 0;
  // Parsed without the lock (readers are not held up by 10M rows of parsing), in batches whose
  // marker lists are interned under it. Lists interned for a load that then fails stay: harmless.
  std::vector<std::pair<std::string_view, policy::AccountRow>> batch;
  auto intern_batch = [&] {
    std::lock_guard lock(mu_);
    for (auto& [account, row] : batch) parsed.emplace_back(account, to_entry(row));
    batch.clear();
  };
  while (!csv.empty()) {
    size_t nl = csv.find('\n');
    std::string_view line = without_cr(csv.substr(0, nl));
    csv = nl == std::string_view::npos ? std::string_view{} : csv.substr(nl + 1);
    ++line_no;
    if (line.empty()) continue;
    auto row = policy::parse_account_row(line);
    if (!row) {
      if (++n_errors <= kMaxReportedErrors) {
        errors += source;
        errors += ":" + std::to_string(line_no) + ": ";
        errors += row.error();
        errors += '\n';
      }
      continue;
    }
    if (n_errors > 0) continue;
    batch.emplace_back(line.substr(0, line.find(',')), std::move(row.value()));
    if (batch.size() >= 4096) intern_batch();
  }
  intern_batch();
  if (n_errors > 0) {
    if (n_errors > kMaxReportedErrors)
      errors += "... and " + std::to_string(n_errors - kMaxReportedErrors) + " more bad lines\n";
    errors.pop_back();
    return make_error(std::move(errors));
  }

  std::lock_guard lock(mu_);
  LoadResult r;
  r.rows = parsed.size();
  std::vector<MeasureChange> measures;
  auto measure = [](const Entry& e) { return Measure{e.state, e.until_s, e.rate}; };

  if (replace) {
    Map fresh;
    fresh.reserve(parsed.size());
    for (const auto& [account, entry] : parsed) {
      auto [v, inserted] = fresh.try_emplace(account, entry);
      if (!inserted) *v = entry;
    }
    parsed = {};
    fresh.for_each([&](std::string_view account, const Entry& entry) {
      const Entry* old = rows_.find(account);
      ++(old ? r.updated : r.inserted);
      Measure before = old ? measure(*old) : Measure{};
      if (measure(entry) != before) measures.push_back({std::string(account), before, measure(entry), false});
    });
    rows_.for_each([&](std::string_view account, const Entry& entry) {
      if (fresh.find(account)) return;
      ++r.removed;
      if (measure(entry) != Measure{}) measures.push_back({std::string(account), measure(entry), Measure{}, true});
    });
    r.size = fresh.size();
    if (Status s = before_commit(measures, r); !s) return make_error(s.error());
    if (Status s = write_snapshot(fresh); !s) return make_error(s.error());
    rows_.swap(fresh);
    std::fill(std::begin(by_state_), std::end(by_state_), 0);
    rows_.for_each([&](std::string_view, const Entry& entry) { ++by_state_[static_cast<int>(entry.state)]; });
  } else {
    // Upsert in place, remembering what each row replaced so a failure can be undone.
    std::vector<std::optional<Entry>> undo;
    undo.reserve(parsed.size());
    rows_.reserve(rows_.size() + parsed.size());
    for (const auto& [account, entry] : parsed) {
      auto [v, inserted] = rows_.try_emplace(account, entry);
      if (inserted) {
        undo.emplace_back();
        ++r.inserted;
        if (measure(entry) != Measure{}) measures.push_back({std::string(account), Measure{}, measure(entry), false});
      } else {
        undo.emplace_back(*v);
        ++r.updated;
        if (measure(entry) != measure(*v))
          measures.push_back({std::string(account), measure(*v), measure(entry), false});
        --by_state_[static_cast<int>(v->state)];
        *v = entry;
      }
      ++by_state_[static_cast<int>(entry.state)];
    }
    r.size = rows_.size();
    Status s = before_commit(measures, r);
    if (s) s = write_snapshot(rows_);
    if (!s) {
      for (size_t i = parsed.size(); i-- > 0;) {
        if (undo[i]) {
          put(parsed[i].first, *undo[i]);
        } else {
          erase(parsed[i].first);
        }
      }
      return make_error(s.error());
    }
  }
  if (Status s = truncate_journal(); !s) spdlog::error("{}", s.error());  // replaying it again is harmless
  return r;
}

Status AccountStore::write_snapshot(const Map& rows) const {
  // Streamed in chunks: a 10M-row snapshot built in memory first would double the cost.
  return write_file_atomic_streamed(snapshot_path_, [&](int fd, const std::string& tmp) {
    std::string buf;
    buf.reserve(kChunk + 4096);
    Status written = Ok{};
    rows.for_each([&](std::string_view account, const Entry& entry) {
      if (!written) return;
      buf += policy::format_account_row(to_row(account, entry));
      buf += '\n';
      if (buf.size() >= kChunk) {
        written = write_all(fd, buf, tmp);
        buf.clear();
      }
    });
    return written ? write_all(fd, buf, tmp) : written;
  });
}

Status AccountStore::truncate_journal() {
  if (journal_fd_ < 0) return make_error(journal_path_ + ": not open");
  if (::ftruncate(journal_fd_, 0) != 0 || ::fdatasync(journal_fd_) != 0)
    return sys_error(journal_path_, "cannot truncate");
  journal_bytes_ = 0;
  journal_lines_ = 0;
  return Ok{};
}

Status AccountStore::compact_locked() {
  // Deleted accounts leave their names' bytes in the index's arena: reclaim them when they are a
  // quarter of it.
  if (rows_.garbage_bytes() > (16u << 20) && rows_.garbage_bytes() * 4 > rows_.memory_bytes()) rows_.compact_keys();
  if (Status s = write_snapshot(rows_); !s) return s;
  return truncate_journal();
}

Status AccountStore::compact() {
  std::lock_guard lock(mu_);
  return compact_locked();
}

Result<std::string> AccountStore::snapshot_for_dataplane() {
  std::lock_guard lock(mu_);
  if (journal_lines_ > 0) {
    if (Status s = compact_locked(); !s) return make_error(s.error());
  } else {
    struct stat st {};
    if (::stat(snapshot_path_.c_str(), &st) != 0) {  // never written yet: an empty store
      if (Status s = write_snapshot(rows_); !s) return make_error(s.error());
    }
  }
  return snapshot_path_;
}

size_t AccountStore::rows() const {
  std::lock_guard lock(mu_);
  return rows_.size();
}

AccountCounts AccountStore::counts() const {
  std::lock_guard lock(mu_);
  AccountCounts c;
  c.rows = rows_.size();
  std::copy(std::begin(by_state_), std::end(by_state_), std::begin(c.by_state));
  c.marker_lists = marker_lists_.size() - 1;
  c.journal_lines = journal_lines_;
  c.memory_bytes = rows_.memory_bytes();
  return c;
}

}  // namespace imf::control
