#include "daemon/report_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/atomic_file.h"
#include "proto/json.h"

namespace imf::control {

namespace {

constexpr size_t kMaxText = 500;

// The event line for `r` ("opened", or "resolved" when `resolved_event`).
std::string event_line(const Report& r, bool resolved_event) {
  json::Value v = json::Object{};
  if (resolved_event) {
    v.set("event", "resolved");
    v.set("id", r.id);
    v.set("note", r.note);
    v.set("time_ns", r.resolved_ns);
  } else {
    v.set("event", "opened");
    v.set("id", r.id);
    v.set("account", r.account);
    v.set("reason", r.reason);
    v.set("digest", r.digest.empty() ? json::Value() : json::Value(r.digest));
    v.set("time_ns", r.opened_ns);
  }
  return json::to_string(v) + "\n";
}

const std::string* str_member(const json::Value& v, const char* name) {
  const json::Value* m = v.find(name);
  return m && m->is_string() ? &m->as_string() : nullptr;
}

std::optional<int64_t> int_member(const json::Value& v, const char* name) {
  const json::Value* m = v.find(name);
  if (!m || !m->is_int()) return std::nullopt;
  return m->as_int();
}

}  // namespace

Status check_report_text(std::string_view text, const char* what, bool allow_empty) {
  if (text.empty()) {
    if (allow_empty) return Ok{};
    return make_error(std::string(what) + ": empty (1-500 bytes)");
  }
  if (text.size() > kMaxText)
    return make_error(std::string(what) + ": " + std::to_string(text.size()) + " bytes, over the limit of 500");
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return make_error(std::string(what) + ": holds a control character");
  }
  return Ok{};
}

Result<std::string> check_digest(std::string_view hex) {
  if (hex.size() != 64)
    return make_error("--digest: expected 64 hex digits, got " + std::to_string(hex.size()) + " characters");
  std::string out(hex);
  for (char& c : out) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return make_error("--digest: not a hex digit in it");
  }
  return out;
}

ReportStore::~ReportStore() {
  if (fd_ >= 0) ::close(fd_);
}

Status ReportStore::init() {
  std::lock_guard lock(mu_);
  if (Status s = replay(); !s) return s;
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) return sys_error(path_, "cannot open");
  return Ok{};
}

Status ReportStore::replay() {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return Ok{};  // no reports yet
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  size_t pos = 0;
  size_t line_no = 0;
  uint64_t good_end = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    bool last = nl == std::string::npos || nl + 1 == text.size();
    std::string_view line(text.data() + pos, (nl == std::string::npos ? text.size() : nl) - pos);
    ++line_no;
    std::string problem;
    auto v = json::parse(line);
    const std::string* event = v ? str_member(v.value(), "event") : nullptr;
    auto id = v ? int_member(v.value(), "id") : std::nullopt;
    auto time_ns = v ? int_member(v.value(), "time_ns") : std::nullopt;
    if (nl == std::string::npos) {
      problem = "no newline at the end";
    } else if (!v) {
      problem = v.error();
    } else if (!event || !id || *id < 1 || !time_ns) {
      problem = "expected an object with event, id and time_ns";
    } else if (*event == "opened") {
      const std::string* account = str_member(v.value(), "account");
      const std::string* reason = str_member(v.value(), "reason");
      const std::string* digest = str_member(v.value(), "digest");
      if (!account || !reason) {
        problem = "an opened event without account or reason";
      } else if (reports_.count(static_cast<uint64_t>(*id))) {
        problem = "report " + std::to_string(*id) + " opened twice";
      } else {
        Report r;
        r.id = static_cast<uint64_t>(*id);
        r.account = *account;
        r.reason = *reason;
        r.digest = digest ? *digest : "";
        r.opened_ns = *time_ns;
        ++open_by_account_[r.account];
        ++open_total_;
        next_id_ = std::max(next_id_, r.id + 1);
        reports_.emplace(r.id, std::move(r));
      }
    } else if (*event == "resolved") {
      auto it = reports_.find(static_cast<uint64_t>(*id));
      const std::string* note = str_member(v.value(), "note");
      if (it == reports_.end() || it->second.resolved) {
        problem = "report " + std::to_string(*id) + " resolved but not open";
      } else {
        it->second.resolved = true;
        it->second.note = note ? *note : "";
        it->second.resolved_ns = *time_ns;
        if (--open_by_account_[it->second.account] == 0) open_by_account_.erase(it->second.account);
        --open_total_;
      }
    } else {
      problem = "unknown event '" + *event + "'";
    }
    if (!problem.empty()) {
      std::string where = path_ + ":" + std::to_string(line_no) + ": ";
      if (!last) return make_error(where + problem);
      spdlog::warn("{}{}: a torn last line (crash during an append); it is dropped", where, problem);
      break;
    }
    good_end = nl + 1;
    pos = nl + 1;
  }
  bytes_ = good_end;
  if (good_end < text.size() && ::truncate(path_.c_str(), static_cast<off_t>(good_end)) != 0)
    return sys_error(path_, "cannot cut a torn last line");
  return Ok{};
}

Status ReportStore::append(const std::string& line) {
  if (fd_ < 0) return make_error(path_ + ": not open");
  Status s = write_all(fd_, line, path_);
  if (s && ::fdatasync(fd_) != 0) s = sys_error(path_, "fdatasync failed");
  if (!s) {
    if (::ftruncate(fd_, static_cast<off_t>(bytes_)) != 0)
      spdlog::error("{}", sys_error(path_, "cannot cut back a failed append").message);
    return s;
  }
  bytes_ += line.size();
  return Ok{};
}

Result<Report> ReportStore::open(const std::string& account, const std::string& reason, const std::string& digest,
                                 int64_t now_ns) {
  std::lock_guard lock(mu_);
  Report r;
  r.id = next_id_;
  r.account = account;
  r.reason = reason;
  r.digest = digest;
  r.opened_ns = now_ns;
  if (Status s = append(event_line(r, false)); !s) return make_error(s.error());
  ++next_id_;
  ++open_by_account_[account];
  ++open_total_;
  reports_.emplace(r.id, r);
  return r;
}

Result<Report> ReportStore::resolve(uint64_t id, const std::string& note, int64_t now_ns) {
  std::lock_guard lock(mu_);
  auto it = reports_.find(id);
  if (it == reports_.end()) return make_error("no report " + std::to_string(id));
  if (it->second.resolved) return make_error("report " + std::to_string(id) + " is already resolved");
  Report r = it->second;
  r.resolved = true;
  r.note = note;
  r.resolved_ns = now_ns;
  if (Status s = append(event_line(r, true)); !s) return make_error(s.error());
  it->second = r;
  if (--open_by_account_[r.account] == 0) open_by_account_.erase(r.account);
  --open_total_;
  return r;
}

std::vector<Report> ReportStore::list(bool open_only, const std::optional<std::string>& account) const {
  std::lock_guard lock(mu_);
  std::vector<Report> out;
  for (const auto& [id, r] : reports_) {
    if (open_only && r.resolved) continue;
    if (account && r.account != *account) continue;
    out.push_back(r);
  }
  return out;
}

std::optional<Report> ReportStore::get(uint64_t id) const {
  std::lock_guard lock(mu_);
  auto it = reports_.find(id);
  if (it == reports_.end()) return std::nullopt;
  return it->second;
}

uint64_t ReportStore::next_id() const {
  std::lock_guard lock(mu_);
  return next_id_;
}

size_t ReportStore::open_count(std::string_view account) const {
  std::lock_guard lock(mu_);
  auto it = open_by_account_.find(std::string(account));
  return it == open_by_account_.end() ? 0 : it->second;
}

std::optional<int64_t> ReportStore::oldest_open_ns() const {
  std::lock_guard lock(mu_);
  for (const auto& [id, r] : reports_) {  // ids rise with time: the first open one waited longest
    if (!r.resolved) return r.opened_ns;
  }
  return std::nullopt;
}

size_t ReportStore::open_total() const {
  std::lock_guard lock(mu_);
  return open_total_;
}

size_t ReportStore::total() const {
  std::lock_guard lock(mu_);
  return reports_.size();
}

}  // namespace imf::control
