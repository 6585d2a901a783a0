// Control's account, report and record actions (control.h); rules, tables and status are in
// control.cpp.
#include <fcntl.h>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <unordered_map>

#include "common/atomic_file.h"
#include "daemon/control.h"
#include "daemon/control_util.h"

namespace imf::control {

namespace {

constexpr const char* kNoAccountsNote = "the dataplane does not keep accounts (its status has none); nothing to apply";
constexpr const char* kAccountsResyncNote =
    "the account is stored; the next resync loads the accounts into the dataplane";

}  // namespace

namespace {

constexpr size_t kReaderBatch = 10000;  // imfd records read per batch
constexpr size_t kRecordChunk = 10000;  // records appended per write_records call in a bulk load
constexpr int64_t kDefaultQueryLimit = 1000;
constexpr int64_t kMaxQueryLimit = 1000000;

// JSON object members without the braces: what ChainWriter::append takes.
std::string members(const json::Value& object) {
  std::string s = json::to_string(object);
  return s.size() >= 2 ? s.substr(1, s.size() - 2) : std::string();
}

json::Value time_or_null(int64_t unix_s) {
  return unix_s == 0 ? json::Value() : json::Value(records::format_time(unix_s * 1000000000));
}

json::Value strings(const std::vector<std::string>& v) {
  json::Array a;
  for (const std::string& s : v) a.emplace_back(s);
  return a;
}

// The rate a record or a show reports: a restricted account's own rate or the policy's.
json::Value rate_json(const Measure& m, const policy::EscalationPolicy& p) {
  if (m.state != policy::AccountState::kRestricted) return {};
  return policy::format_rate(m.rate.unset() ? p.restricted_rate : m.rate);
}

json::Value row_json(const policy::AccountRow& row, const policy::EscalationPolicy& p) {
  json::Value v = json::Object{};
  v.set("account", row.account);
  v.set("row", policy::format_account_row(row));
  v.set("markers", strings(row.markers));
  v.set("state", policy::state_name(row.state));
  v.set("until", time_or_null(row.until_s));
  v.set("until_s", row.until_s);
  v.set("rate", rate_json(measure_of(row), p));
  return v;
}

json::Value state_change_record(const std::string& account, const Measure& before, const Measure& after,
                                const char* cause, const policy::EscalationPolicy& p) {
  json::Value r = json::Object{};
  r.set("kind", "state_change");
  r.set("account", account);
  r.set("state_before", policy::state_name(before.state));
  r.set("state_after", policy::state_name(after.state));
  r.set("until", time_or_null(after.until_s));
  r.set("rate", rate_json(after, p));
  r.set("cause", cause);
  return r;
}

json::Value markers_record(const std::string& account, const std::vector<std::string>& before,
                           const std::vector<std::string>& after) {
  json::Value r = json::Object{};
  r.set("kind", "markers");
  r.set("account", account);
  r.set("markers_before", strings(before));
  r.set("markers_after", strings(after));
  r.set("cause", "operator");
  return r;
}

json::Value seqs_json(const std::vector<uint64_t>& seqs) {
  json::Array a;
  for (uint64_t s : seqs) a.emplace_back(s);
  return a;
}

std::string named(const char* option, std::string_view value) {
  return std::string(option) + " '" + std::string(value) + "'";
}

// A small file's content; "" when it is missing or unreadable.
std::string read_small_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

std::optional<int64_t> parse_i64(std::string_view s) {
  int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

Status Control::init_accounts_and_records() {
  if (!config_.policy_file.empty()) {
    auto p = policy::load_policy_file(config_.policy_file);
    if (!p) return make_error("policy_file: " + p.error());
    policy_ = p.value();
  }
  auto key = records::load_or_create_key(config_.digest_key_file);
  if (!key) return make_error("digest_key_file: " + key.error());
  key_ = key.value();
  if (Status s = accounts_.init(); !s) return s;
  if (Status s = reports_.init(); !s) return s;

  records::ChainConfig cc;
  cc.dir = config_.records_dir;
  cc.source = "control";
  cc.appliance = config_.appliance_id;
  cc.rotate_bytes = config_.records_rotate_bytes;
  cc.rotate_seconds = config_.records_rotate_seconds;
  cc.retention_seconds = static_cast<uint64_t>(config_.records_retention_days) * 86400;
  // Control decides when to fsync (write_records): a command's records together, a bulk load's
  // in chunks, never one disk flush per record of a 10M-row load.
  cc.fsync_every = 0;
  cc.fsync_interval_ms = 0;
  auto w = records::ChainWriter::open(cc);
  if (!w) return make_error("records_dir: " + w.error());
  records_ = std::move(w.value());

  uint64_t cursor = 0;
  std::string text = read_small_file(cursor_path());
  if (!text.empty()) {
    auto v =
        parse_i64(text.back() == '\n' ? std::string_view(text).substr(0, text.size() - 1) : std::string_view(text));
    if (!v || *v < 0) return make_error(cursor_path() + ": not a record number");
    cursor = static_cast<uint64_t>(*v);
  }
  cursor_written_ = cursor;
  dp_read_seq_ = cursor;
  dataplane_reader_ = std::make_unique<records::ChainReader>(config_.dataplane_records_dir, "dataplane", cursor);
  spdlog::info("accounts: {} rows; reports: {} open; records: control chain at seq {}, following imfd's after seq {}",
               accounts_.rows(), reports_.open_total(), records_->last_seq(), cursor);
  return Ok{};
}

Result<std::vector<uint64_t>> Control::write_records(const std::vector<json::Value>& records) {
  std::vector<uint64_t> seqs;
  std::lock_guard lock(records_mu_);
  int64_t t = now_ns();
  for (const json::Value& r : records) {
    auto seq = records_->append(t, members(r));
    if (!seq) {
      std::string err = seq.error();
      if (!seqs.empty()) {
        json::Value f = json::Object{{"kind", "change_failed"},
                                     {"first_seq", seqs.front()},
                                     {"last_seq", seqs.back()},
                                     {"error", "the rest of the records could not be written: " + err}};
        (void)records_->append(t, members(f));
        (void)records_->flush();
      }
      return make_error(err);
    }
    seqs.push_back(seq.value());
  }
  unsynced_records_ += records.size();
  if (config_.records_fsync_every <= 1 || unsynced_records_ >= config_.records_fsync_every) {
    if (Status s = records_->flush(); !s) return make_error(s.error());
    unsynced_records_ = 0;
  }
  return seqs;
}

void Control::record_failure(const std::vector<uint64_t>& seqs, const std::string& error) {
  if (seqs.empty()) return;
  json::Value f =
      json::Object{{"kind", "change_failed"}, {"first_seq", seqs.front()}, {"last_seq", seqs.back()}, {"error", error}};
  auto r = write_records({f});
  if (!r)
    spdlog::error("records {}-{} describe a change that failed ({}), and saying so failed too: {}", seqs.front(),
                  seqs.back(), error, r.error());
}

json::Value Control::forward_account_change(const json::Value& request) {
  bool keeps;
  {
    std::lock_guard lock(state_mu_);
    keeps = dataplane_accounts_ != DataplaneTables::kNo;
  }
  if (!keeps) {
    accounts_dirty_ = true;  // an imfd with accounts that replaces this one gets them loaded
    return change_dataplane_json(nullptr, kNoAccountsNote, kAccountsResyncNote);
  }
  DataplaneReply reply = dataplane_.call(request, timeouts_.query);
  note_dataplane(reply);
  if (reply.kind != DataplaneReply::Kind::kOk) {
    accounts_dirty_ = true;
    spdlog::warn("accounts: {} not applied by the dataplane ({}); the next resync loads the accounts",
                 request.find("cmd")->as_string(), reply.error);
  }
  return change_dataplane_json(&reply, kNoAccountsNote, kAccountsResyncNote);
}

Result<DataplaneReply> Control::load_accounts() {
  auto path = accounts_.snapshot_for_dataplane();
  if (!path) return make_error("cannot write the accounts snapshot: " + path.error());
  json::Value req = json::Object{{"cmd", "accounts.load"}, {"path", path.value()}};
  DataplaneReply reply = dataplane_.call(req, timeouts_.accounts_load);
  note_dataplane(reply);
  accounts_dirty_ = reply.kind != DataplaneReply::Kind::kOk;
  return reply;
}

Result<size_t> Control::apply_dataplane_records(bool forward_back) {
  // imfd's chain begun again (its records directory emptied): its head is behind our cursor, and
  // following from the cursor would wait forever. Start over from its first record.
  std::ifstream head(config_.dataplane_records_dir + "/dataplane.head");
  if (uint64_t head_seq = 0; head >> head_seq && head_seq < cursor_written_) {
    spdlog::warn("imfd's records chain ends at {} but was read up to {}: it began again; reading it from the start",
                 head_seq, cursor_written_);
    if (Status s = write_file_atomic(cursor_path(), "0\n"); !s) return make_error(s.error());
    cursor_written_ = 0;
    dp_read_seq_ = 0;
    dataplane_reader_ = std::make_unique<records::ChainReader>(config_.dataplane_records_dir, "dataplane", 0);
  }
  size_t read = 0;
  for (;;) {
    auto lines = dataplane_reader_->next(kReaderBatch);
    if (!lines) return make_error("reading imfd's records: " + lines.error());
    if (lines->empty()) break;
    read += lines->size();
    dp_records_seen_ += lines->size();
    dp_read_seq_ = dataplane_reader_->last_seq();
    dp_skipped_ = dataplane_reader_->skipped();
    // The rows this batch changes, as they stand after it (an account may change twice).
    std::unordered_map<std::string, policy::AccountRow> changed;
    std::vector<std::string> order;
    for (const std::string& line : lines.value()) {
      if (records::record_field(line, "kind") != "state_change") continue;
      auto seq = records::record_field(line, "seq");
      auto account = records::record_field(line, "account");
      auto before = records::record_field(line, "state_before");
      auto after = records::record_field(line, "state_after");
      auto until = records::record_field(line, "until");
      std::optional<policy::AccountState> sb = before ? policy::parse_state(*before) : std::nullopt;
      std::optional<policy::AccountState> sa = after ? policy::parse_state(*after) : std::nullopt;
      std::optional<int64_t> until_s = until ? parse_i64(*until) : std::optional<int64_t>(0);
      if (!account || !policy::check_account_name(*account) || !sb || !sa || !until_s || *until_s < 0) {
        ++dp_records_bad_;
        spdlog::warn(
            "imfd's record {}: a state_change without a valid account, state_before, state_after or until; "
            "passed over",
            seq.value_or("?"));
        continue;
      }
      policy::AccountRow row;
      if (auto it = changed.find(*account); it != changed.end()) {
        row = it->second;
      } else if (auto stored = accounts_.get(*account)) {
        row = std::move(*stored);
      } else {
        row.account = *account;
      }
      if (row.state != *sb) {
        // Changed here since imfd's change (an operator's measure, sent to imfd after it): that
        // one stands, in the store and in imfd.
        ++dp_records_stale_;
        spdlog::info("imfd's record {}: {} {} -> {} passed over: the account is {} here", seq.value_or("?"), *account,
                     *before, *after, policy::state_name(row.state));
        continue;
      }
      row.state = *sa;
      row.until_s = *until_s;
      if (auto rate = records::record_field(line, "rate")) {
        if (auto r = policy::parse_rate(*rate)) row.rate = r.value();
      }
      if (!changed.count(*account)) order.push_back(*account);
      changed[*account] = std::move(row);
    }
    std::vector<AccountStore::Change> changes;
    changes.reserve(order.size());
    for (const std::string& a : order) changes.push_back({a, changed[a]});
    if (Status s = accounts_.apply(changes); !s) {
      // Read again from the cursor next time: nothing of this batch is lost.
      dataplane_reader_ =
          std::make_unique<records::ChainReader>(config_.dataplane_records_dir, "dataplane", cursor_written_);
      dp_read_seq_ = cursor_written_;
      return make_error("storing imfd's state changes: " + s.error());
    }
    dp_records_applied_ += changes.size();
    account_changes_ += changes.size();
    uint64_t seq = dataplane_reader_->last_seq();
    if (seq != cursor_written_) {
      // After the changes are durable: a crash before this line re-reads them, and re-applying
      // is passed over as stale (the store already holds state_after).
      if (Status s = write_file_atomic(cursor_path(), std::to_string(seq) + "\n"); !s) {
        spdlog::error("{}", s.error());
      } else {
        cursor_written_ = seq;
      }
    }
    if (forward_back) {
      for (const AccountStore::Change& c : changes)
        forward_account_change(json::Object{{"cmd", "account.set"}, {"row", policy::format_account_row(*c.row)}});
    }
  }
  return read;
}

Result<size_t> Control::follow_dataplane_records() {
  {
    std::lock_guard lock(records_mu_);
    if (unsynced_records_ > 0) {
      if (Status s = records_->flush(); s) {
        unsynced_records_ = 0;
      } else {
        spdlog::error("records: {}", s.error());
      }
    }
  }
  std::lock_guard lock(accounts_mu_);
  return apply_dataplane_records(false);
}

Result<json::Value> Control::change_account(const std::optional<policy::AccountRow>& before,
                                            const std::optional<policy::AccountRow>& after,
                                            std::vector<json::Value> records) {
  const std::string& account = after ? after->account : before->account;
  auto seqs = write_records(records);
  if (!seqs) return make_error("account " + account + " not changed: its record could not be written: " + seqs.error());
  if (Status s = accounts_.apply({{account, after}}); !s) {
    record_failure(seqs.value(), s.error());
    return make_error("account " + account + " not changed: " + s.error());
  }
  ++account_changes_;
  json::Value req = after
                        ? json::Value(json::Object{{"cmd", "account.set"}, {"row", policy::format_account_row(*after)}})
                        : json::Value(json::Object{{"cmd", "account.del"}, {"account", account}});
  json::Value r = json::Object{};
  r.set("records", seqs_json(seqs.value()));
  r.set("dataplane", forward_account_change(req));
  return r;
}

Result<json::Value> Control::account_set(const AccountSetArgs& a, uid_t peer_uid) {
  using policy::AccountState;
  if (Status s = policy::check_account_name(a.account); !s) return make_error("account: " + s.error());
  if (a.reason) {
    if (Status s = check_report_text(*a.reason, "--reason", false); !s) return make_error(s.error());
  }
  std::lock_guard lock(accounts_mu_);
  if (auto r = apply_dataplane_records(false); !r) spdlog::warn("{}", r.error());
  std::optional<policy::AccountRow> old = accounts_.get(a.account);
  policy::AccountRow row = old ? *old : policy::AccountRow{};
  row.account = a.account;

  // Markers.
  auto check_markers = [](const char* option, const std::vector<std::string>& names) -> Status {
    for (const std::string& m : names) {
      if (Status s = policy::check_marker_name(m); !s) return make_error(std::string(option) + ": " + s.error());
    }
    return Ok{};
  };
  if (a.markers) {
    if (Status s = check_markers("--markers", *a.markers); !s) return make_error(s.error());
    row.markers = *a.markers;
  }
  if (Status s = check_markers("--add-marker", a.add_markers); !s) return make_error(s.error());
  if (Status s = check_markers("--remove-marker", a.remove_markers); !s) return make_error(s.error());
  row.markers.insert(row.markers.end(), a.add_markers.begin(), a.add_markers.end());
  std::sort(row.markers.begin(), row.markers.end());
  row.markers.erase(std::unique(row.markers.begin(), row.markers.end()), row.markers.end());
  for (const std::string& m : a.remove_markers)
    row.markers.erase(std::remove(row.markers.begin(), row.markers.end(), m), row.markers.end());
  if (row.markers.size() > policy::kMaxMarkers)
    return make_error("--markers: " + std::to_string(row.markers.size()) + " markers, at most " +
                      std::to_string(policy::kMaxMarkers));

  // The measure.
  int64_t now_s = now_ns() / 1000000000;
  std::optional<AccountState> state;
  if (a.state) {
    state = policy::parse_state(*a.state);
    if (!state)
      return make_error(named("--state", *a.state) + ": not one of none, warned, restricted, suspended, shutdown");
  }
  AccountState target = state.value_or(row.state);
  bool lapses =
      target == AccountState::kWarned || target == AccountState::kRestricted || target == AccountState::kSuspended;
  if (a.until && a.for_duration) return make_error("--until and --for: give one of them");
  std::optional<int64_t> until_s;
  if (a.until || a.for_duration) {
    const char* option = a.until ? "--until" : "--for";
    if (!lapses)
      return make_error(std::string(option) + ": a state of " + policy::state_name(target) +
                        " does not lapse (only warned, restricted and suspended do)");
    if (a.until) {
      auto t = records::parse_time(*a.until, now_ns());
      if (!t) return make_error("--until: " + t.error());
      until_s = t.value() / 1000000000;
    } else {
      auto d = policy::parse_duration(*a.for_duration);
      if (!d) return make_error("--for: " + d.error());
      if (d.value() > static_cast<uint64_t>(INT64_MAX / 2))
        return make_error(named("--for", *a.for_duration) + ": too long");
      until_s = now_s + static_cast<int64_t>(d.value());
    }
    if (*until_s <= now_s)
      return make_error(named(option, a.until ? *a.until : *a.for_duration) + ": that is not in the future");
  }
  std::optional<policy::Rate> rate;
  if (a.rate) {
    if (target != AccountState::kRestricted)
      return make_error("--rate: only for a restricted account (give --state restricted)");
    auto r = policy::parse_rate(*a.rate);
    if (!r) return make_error("--rate: " + r.error());
    rate = r.value();
  }
  if (state || until_s || rate) {
    Measure m;
    m.state = target;
    if (until_s) {
      m.until_s = *until_s;
    } else if (state) {
      uint64_t expire = policy_.expire_s[static_cast<int>(target)];
      if (target == AccountState::kSuspended && expire == 0)
        return make_error("--state suspended needs --until or --for (the policy gives suspended no expiry)");
      m.until_s = lapses && expire > 0 ? now_s + static_cast<int64_t>(expire) : 0;
    } else {
      m.until_s = row.until_s;
    }
    if (target == AccountState::kRestricted) {
      m.rate = rate
                   ? *rate
                   : (row.state == AccountState::kRestricted && !row.rate.unset() ? row.rate : policy_.restricted_rate);
    }
    row.state = m.state;
    row.until_s = m.until_s;
    row.rate = m.rate;
  }

  Measure before = old ? measure_of(*old) : Measure{};
  std::vector<std::string> markers_before = old ? old->markers : std::vector<std::string>{};
  bool markers_changed = row.markers != markers_before;
  bool measure_changed = measure_of(row) != before;
  std::vector<json::Value> records;
  if (markers_changed) {
    json::Value r = markers_record(row.account, markers_before, row.markers);
    r.set("peer_uid", static_cast<int64_t>(peer_uid));
    if (a.reason) r.set("reason", *a.reason);
    records.push_back(std::move(r));
  }
  if (measure_changed) {
    json::Value r = state_change_record(row.account, before, measure_of(row), "operator", policy_);
    r.set("peer_uid", static_cast<int64_t>(peer_uid));
    if (a.reason) r.set("reason", *a.reason);
    records.push_back(std::move(r));
  }
  json::Value result = row_json(row, policy_);
  result.set("changed", json::Object{{"markers", markers_changed}, {"measure", measure_changed}});
  if (old && !markers_changed && !measure_changed) {
    // Nothing to store or record; the row is still sent, which repairs a copy that differs.
    result.set("records", json::Array{});
    result.set("dataplane",
               forward_account_change(json::Object{{"cmd", "account.set"}, {"row", policy::format_account_row(row)}}));
    return result;
  }
  auto c = change_account(old, row, std::move(records));
  if (!c) return c;
  result.set("records", *c->find("records"));
  result.set("dataplane", *c->find("dataplane"));
  return result;
}

Result<json::Value> Control::account_show(const std::string& account) {
  if (Status s = policy::check_account_name(account); !s) return make_error("account: " + s.error());
  std::optional<policy::AccountRow> row = accounts_.get(account);
  json::Value r = row ? row_json(*row, policy_) : json::Value(json::Object{{"account", account}});
  r.set("found", row.has_value());
  r.set("open_reports", reports_.open_count(account));
  bool keeps;
  {
    std::lock_guard lock(state_mu_);
    keeps = dataplane_accounts_ != DataplaneTables::kNo;
  }
  json::Value dp = json::Object{};
  if (!keeps) {
    dp.set("note", kNoAccountsNote);
  } else {
    DataplaneReply reply = dataplane_.call(json::Object{{"cmd", "account.get"}, {"account", account}}, timeouts_.query);
    note_dataplane(reply);
    dp.set("reachable", reply.kind != DataplaneReply::Kind::kUnreachable);
    if (reply.kind != DataplaneReply::Kind::kOk) {
      dp.set("error",
             reply.kind == DataplaneReply::Kind::kRejected ? "dataplane refused: " + reply.error : reply.error);
    } else {
      const json::Value* live = reply.body.find("row");
      if (live && live->is_string()) {
        dp.set("row", *live);
        if (auto parsed = policy::parse_account_row(live->as_string())) {
          dp.set("state", policy::state_name(parsed->state));
          dp.set("until", time_or_null(parsed->until_s));
          dp.set("in_sync", row && policy::format_account_row(*row) == live->as_string());
        }
      } else {
        dp.set("row", nullptr);
        dp.set("in_sync", !row);
      }
    }
  }
  r.set("dataplane", std::move(dp));
  return r;
}

Result<json::Value> Control::account_del(const std::string& account, uid_t peer_uid) {
  if (Status s = policy::check_account_name(account); !s) return make_error("account: " + s.error());
  std::lock_guard lock(accounts_mu_);
  if (auto r = apply_dataplane_records(false); !r) spdlog::warn("{}", r.error());
  std::optional<policy::AccountRow> old = accounts_.get(account);
  json::Value result = json::Object{{"account", account}, {"deleted", old.has_value()}};
  if (!old) {
    // Forwarded anyway: deleting is idempotent, and it repairs a copy that still holds the account.
    result.set("records", json::Array{});
    result.set("dataplane", forward_account_change(json::Object{{"cmd", "account.del"}, {"account", account}}));
    return result;
  }
  std::vector<json::Value> records;
  if (measure_of(*old) != Measure{}) {
    json::Value r = state_change_record(account, measure_of(*old), Measure{}, "operator", policy_);
    r.set("peer_uid", static_cast<int64_t>(peer_uid));
    r.set("deleted", true);
    records.push_back(std::move(r));
  }
  if (!old->markers.empty()) {
    json::Value r = markers_record(account, old->markers, {});
    r.set("peer_uid", static_cast<int64_t>(peer_uid));
    r.set("deleted", true);
    records.push_back(std::move(r));
  }
  auto c = change_account(old, std::nullopt, std::move(records));
  if (!c) return c;
  result.set("records", *c->find("records"));
  result.set("dataplane", *c->find("dataplane"));
  return result;
}

Result<json::Value> Control::account_load(const std::string& csv, const std::string& source, bool replace,
                                          uid_t peer_uid, const Progress& progress) {
  auto t0 = std::chrono::steady_clock::now();
  std::lock_guard lock(accounts_mu_);
  if (auto r = apply_dataplane_records(false); !r) spdlog::warn("{}", r.error());
  progress("parsing " + source);
  std::vector<uint64_t> seqs;  // every record this load wrote
  size_t state_changes = 0;
  auto record = [&](const std::vector<MeasureChange>& measures, const AccountStore::LoadResult& lr) -> Status {
    progress("recording the load and " + std::to_string(measures.size()) + " state changes");
    state_changes = measures.size();
    std::vector<json::Value> chunk;
    // "file", not "source": every record's "source" names its chain.
    json::Value loaded = json::Object{{"kind", "accounts_loaded"},
                                      {"file", source},
                                      {"rows", lr.rows},
                                      {"inserted", lr.inserted},
                                      {"updated", lr.updated},
                                      {"removed", lr.removed},
                                      {"replace", replace},
                                      {"state_changes", measures.size()},
                                      {"peer_uid", static_cast<int64_t>(peer_uid)}};
    chunk.push_back(std::move(loaded));
    for (size_t i = 0; i <= measures.size(); ++i) {
      if (chunk.size() >= kRecordChunk || i == measures.size()) {
        auto w = write_records(chunk);
        if (!w) return make_error("its records could not be written: " + w.error());
        seqs.insert(seqs.end(), w->begin(), w->end());
        chunk.clear();
      }
      if (i == measures.size()) break;
      const MeasureChange& m = measures[i];
      json::Value r = state_change_record(m.account, m.before, m.after, "operator", policy_);
      r.set("peer_uid", static_cast<int64_t>(peer_uid));
      r.set("bulk", true);
      if (m.removed) r.set("deleted", true);
      chunk.push_back(std::move(r));
    }
    progress("writing the accounts snapshot");
    return Ok{};
  };
  auto lr = accounts_.load(csv, source, replace, record);
  // A 10M-row load leaves ~1 GB of parsing buffers freed but kept by malloc: give it back.
  ::malloc_trim(0);
  if (!lr) {
    if (!seqs.empty()) record_failure({seqs.front(), seqs.back()}, lr.error());
    return make_error(lr.error());
  }
  account_changes_ += lr->rows + lr->removed + 1;
  json::Value r = json::Object{};
  r.set("source", source);
  r.set("rows", lr->rows);
  r.set("inserted", lr->inserted);
  r.set("updated", lr->updated);
  r.set("removed", lr->removed);
  r.set("size", lr->size);
  r.set("replace", replace);
  r.set("state_changes", state_changes);
  r.set("records", seqs.empty() ? json::Value() : json::Value(json::Array{seqs.front(), seqs.back()}));
  r.set("ms", ms_since(t0));

  bool keeps;
  {
    std::lock_guard s(state_mu_);
    keeps = dataplane_accounts_ != DataplaneTables::kNo;
  }
  json::Value dp;
  if (!keeps) {
    accounts_dirty_ = true;
    dp = change_dataplane_json(nullptr, kNoAccountsNote, kAccountsResyncNote);
  } else {
    progress("loading " + std::to_string(lr->size) + " accounts into the dataplane");
    auto reply = load_accounts();
    if (!reply) {
      dp = json::Object{{"applied", false}, {"error", reply.error()}, {"note", kAccountsResyncNote}};
    } else {
      dp = change_dataplane_json(&reply.value(), kNoAccountsNote, kAccountsResyncNote);
      if (reply->kind == DataplaneReply::Kind::kOk) {
        for (const char* k : {"rows", "ms"}) {
          if (const json::Value* v = reply->body.find(k)) dp.set(k, *v);
        }
        // What imfd changed while it loaded is sent back: the load replaced it.
        if (auto a = apply_dataplane_records(true); !a) spdlog::warn("{}", a.error());
      } else {
        spdlog::warn("accounts: snapshot not loaded by the dataplane ({}); the next resync loads it", reply->error);
      }
    }
  }
  r.set("dataplane", std::move(dp));
  return r;
}

Result<json::Value> Control::account_count() { return account_figures(); }

json::Value Control::account_figures() {
  AccountCounts c = accounts_.counts();
  json::Value by_state = json::Object{};
  for (int i = 0; i < policy::kStateCount; ++i)
    by_state.set(policy::state_name(static_cast<policy::AccountState>(i)), c.by_state[i]);
  return json::Object{{"rows", c.rows},
                      {"by_state", std::move(by_state)},
                      {"marker_lists", c.marker_lists},
                      {"journal_lines", c.journal_lines},
                      {"memory_bytes", c.memory_bytes}};
}

void Control::add_policy_figures(json::Value& c) {
  c.set("accounts", account_figures());
  c.set("reports", report_figures());
  c.set("records", records_figures());
}

// Reports must be handled in time: how many wait, and how long the oldest has.
json::Value Control::report_figures() {
  auto oldest = reports_.oldest_open_ns();
  return json::Object{{"open", reports_.open_total()},
                      {"total", reports_.total()},
                      {"oldest_open_age_s", oldest ? json::Value((now_ns() - *oldest) / 1000000000) : json::Value()}};
}

json::Value Control::records_figures() {
  uint64_t control_seq;
  {
    std::lock_guard lock(records_mu_);
    control_seq = records_->last_seq();
  }
  // imfd's head file ("SEQ HASH"): how far its chain is, next to how far this process has read.
  json::Value head;
  std::string text = read_small_file(config_.dataplane_records_dir + "/dataplane.head");
  if (auto sp = text.find(' '); sp != std::string::npos) {
    if (auto v = parse_i64(std::string_view(text).substr(0, sp))) head = *v;
  }
  uint64_t cursor = dp_read_seq_, skipped = dp_skipped_;
  return json::Object{{"control", json::Object{{"dir", config_.records_dir}, {"last_seq", control_seq}}},
                      {"dataplane", json::Object{{"dir", config_.dataplane_records_dir},
                                                 {"head_seq", std::move(head)},
                                                 {"read_seq", cursor},
                                                 {"read", dp_records_seen_.load()},
                                                 {"applied", dp_records_applied_.load()},
                                                 {"stale", dp_records_stale_.load()},
                                                 {"bad", dp_records_bad_.load()},
                                                 {"skipped", skipped}}}};
}

void Control::sync_accounts(const json::Value& status_body, uint64_t changes_before, std::string* errors) {
  const json::Value* acc = status_body.find("accounts");
  if (!acc || !acc->is_object()) return;  // an imfd without accounts
  const json::Value* rows = acc->find("rows");
  std::lock_guard lock(accounts_mu_);
  if (auto r = apply_dataplane_records(false); !r) spdlog::warn("{}", r.error());
  size_t ours = accounts_.rows();
  std::string why;
  if (accounts_dirty_) {
    why = "its copy may differ";
  } else if (account_changes_ != changes_before) {
    return;  // the status predates a change: compared next round
  } else if (!rows || !rows->is_int() || rows->as_int() != static_cast<int64_t>(ours)) {
    why = "it has " + (rows ? json::to_string(*rows) : std::string("?")) + " rows";
  }
  if (why.empty()) return;
  auto reply = load_accounts();
  if (reply && reply->kind == DataplaneReply::Kind::kOk) {
    const json::Value* ms = reply->body.find("ms");
    spdlog::info("accounts: loaded into the dataplane ({}): {} rows{}", why, ours,
                 ms && ms->is_number() ? " in " + json::to_string(*ms) + " ms" : std::string());
    if (auto a = apply_dataplane_records(true); !a) spdlog::warn("{}", a.error());
    return;
  }
  if (!errors->empty()) *errors += "; ";
  if (!reply) {
    *errors += "loading accounts: " + reply.error();
  } else {
    *errors += "loading accounts: " +
               std::string(reply->kind == DataplaneReply::Kind::kRejected ? "dataplane refused: " : "") + reply->error;
  }
}

Result<json::Value> Control::report_add(const std::string& account, const std::string& reason,
                                        const std::optional<std::string>& digest, uid_t peer_uid) {
  if (Status s = policy::check_account_name(account); !s) return make_error("account: " + s.error());
  if (Status s = check_report_text(reason, "--reason", false); !s) return make_error(s.error());
  std::string hex;
  if (digest) {
    auto d = check_digest(*digest);
    if (!d) return make_error(d.error());
    hex = d.value();
  }
  std::lock_guard lock(reports_mu_);
  uint64_t id = reports_.next_id();
  json::Value rec = json::Object{{"kind", "report_opened"},
                                 {"report", id},
                                 {"account", account},
                                 {"reason", reason},
                                 {"digest", hex.empty() ? json::Value() : json::Value(hex)},
                                 {"peer_uid", static_cast<int64_t>(peer_uid)}};
  auto seqs = write_records({rec});
  if (!seqs) return make_error("report not opened: its record could not be written: " + seqs.error());
  auto report = reports_.open(account, reason, hex, now_ns());
  if (!report) {
    record_failure(seqs.value(), report.error());
    return make_error("report not opened: " + report.error());
  }
  size_t open = reports_.open_count(account);
  json::Value r = json::Object{
      {"report", report->id}, {"account", account}, {"open_reports", open}, {"records", seqs_json(seqs.value())}};
  json::Value escalation;
  uint32_t threshold = policy_.report_threshold;
  if (threshold > 0 && open % threshold == 0) {
    std::lock_guard alock(accounts_mu_);
    if (auto a = apply_dataplane_records(false); !a) spdlog::warn("{}", a.error());
    std::optional<policy::AccountRow> old = accounts_.get(account);
    policy::AccountRow row = old ? *old : policy::AccountRow{};
    row.account = account;
    if (row.state == policy::AccountState::kShutdown) {
      escalation = json::Object{{"note", "the account is shut down already"}};
    } else {
      Measure before = measure_of(row);
      row.state = policy::next_state(row.state);
      uint64_t expire = policy_.expire_s[static_cast<int>(row.state)];
      row.until_s = expire > 0 && row.state != policy::AccountState::kShutdown
                        ? now_ns() / 1000000000 + static_cast<int64_t>(expire)
                        : 0;
      row.rate = row.state == policy::AccountState::kRestricted ? policy_.restricted_rate : policy::Rate{};
      json::Value sc = state_change_record(account, before, measure_of(row), "reports", policy_);
      sc.set("open_reports", open);
      sc.set("report", report->id);
      auto c = change_account(old, row, {sc});
      if (!c) {
        // The report stands; the escalation failed and says why.
        escalation = json::Object{{"error", c.error()}};
      } else {
        escalation = row_json(row, policy_);
        escalation.set("state_before", policy::state_name(before.state));
        escalation.set("records", *c->find("records"));
        escalation.set("dataplane", *c->find("dataplane"));
      }
    }
  }
  r.set("escalation", std::move(escalation));
  return r;
}

Result<json::Value> Control::report_list(bool open_only, const std::optional<std::string>& account) {
  json::Array list;
  for (const Report& rep : reports_.list(open_only, account)) {
    json::Value v = json::Object{};
    v.set("report", rep.id);
    v.set("account", rep.account);
    v.set("reason", rep.reason);
    v.set("digest", rep.digest.empty() ? json::Value() : json::Value(rep.digest));
    v.set("opened", records::format_time(rep.opened_ns));
    v.set("age_s", rep.resolved ? json::Value() : json::Value((now_ns() - rep.opened_ns) / 1000000000));
    v.set("status", rep.resolved ? "resolved" : "open");
    v.set("note", rep.resolved ? json::Value(rep.note) : json::Value());
    v.set("resolved", rep.resolved ? json::Value(records::format_time(rep.resolved_ns)) : json::Value());
    list.push_back(std::move(v));
  }
  return json::Value(json::Object{{"reports", std::move(list)}});
}

Result<json::Value> Control::report_resolve(uint64_t id, const std::string& note, uid_t peer_uid) {
  if (Status s = check_report_text(note, "--note", true); !s) return make_error(s.error());
  std::lock_guard lock(reports_mu_);
  std::optional<Report> rep = reports_.get(id);
  if (!rep) return make_error("no report " + std::to_string(id));
  if (rep->resolved) return make_error("report " + std::to_string(id) + " is already resolved");
  json::Value rec = json::Object{{"kind", "report_resolved"},
                                 {"report", id},
                                 {"account", rep->account},
                                 {"reason", rep->reason},
                                 {"digest", rep->digest.empty() ? json::Value() : json::Value(rep->digest)},
                                 {"note", note},
                                 {"peer_uid", static_cast<int64_t>(peer_uid)}};
  auto seqs = write_records({rec});
  if (!seqs) return make_error("report not resolved: its record could not be written: " + seqs.error());
  auto done = reports_.resolve(id, note, now_ns());
  if (!done) {
    record_failure(seqs.value(), done.error());
    return make_error("report not resolved: " + done.error());
  }
  return json::Value(json::Object{{"report", id},
                                  {"account", rep->account},
                                  {"open_reports", reports_.open_count(rep->account)},
                                  {"records", seqs_json(seqs.value())}});
}

Result<json::Value> Control::records_verify() {
  {
    std::lock_guard lock(records_mu_);
    if (Status s = records_->flush(); !s) return make_error("records: " + s.error());
    unsynced_records_ = 0;
  }
  bool all_ok = true;
  json::Array chains;
  for (const auto& [dir, source] :
       {std::pair{config_.records_dir, "control"}, std::pair{config_.dataplane_records_dir, "dataplane"}}) {
    json::Value chain = json::Object{{"source", source}, {"dir", dir}};
    struct stat st {};
    if (std::string(source) == "dataplane" && ::stat(dir.c_str(), &st) != 0 && errno == ENOENT) {
      // imfd has written nothing here (not started yet, or without records): nothing to verify,
      // unless records were read from it before — then the whole chain went missing.
      uint64_t read = dp_read_seq_;
      bool ok = read == 0;
      all_ok = all_ok && ok;
      chain.set("ok", ok);
      chain.set("records", 0);
      chain.set("files", 0);
      chain.set("first_seq", 0);
      chain.set("last_seq", 0);
      chain.set("problems", ok ? json::Array{}
                               : json::Array{dir + ": missing, yet records up to seq " + std::to_string(read) +
                                             " were read from it"});
      if (ok) chain.set("note", "no such directory: imfd has written no records yet");
      chains.push_back(std::move(chain));
      continue;
    }
    records::VerifyReport v = records::verify_chain(dir, source);
    all_ok = all_ok && v.ok;
    chain.set("ok", v.ok);
    chain.set("records", v.records);
    chain.set("files", v.files);
    chain.set("first_seq", v.first_seq);
    chain.set("last_seq", v.last_seq);
    chain.set("problems", strings(v.problems));
    chains.push_back(std::move(chain));
  }
  return json::Value(json::Object{{"ok", all_ok}, {"chains", std::move(chains)}});
}

Result<json::Value> Control::records_query(const RecordsQueryArgs& a) {
  records::QueryFilter f;
  if (a.account) {
    if (Status s = policy::check_account_name(*a.account); !s) return make_error("--account: " + s.error());
    f.account = *a.account;
  }
  if (a.since) {
    auto t = records::parse_time(*a.since, now_ns());
    if (!t) return make_error("--since: " + t.error());
    f.since_ns = t.value();
  }
  int64_t limit = a.limit.value_or(kDefaultQueryLimit);
  if (limit < 1 || limit > kMaxQueryLimit)
    return make_error("--limit " + std::to_string(limit) + ": must be from 1 to " + std::to_string(kMaxQueryLimit));
  f.limit = static_cast<size_t>(limit);
  if (a.pseudonymize) f.pseudonym_key = &key_;
  std::vector<records::ChainSource> sources = {{config_.records_dir, "control"}};
  struct stat st {};
  if (::stat(config_.dataplane_records_dir.c_str(), &st) == 0) {
    sources.push_back({config_.dataplane_records_dir, "dataplane"});
  }  // else imfd has written no records yet
  auto lines = records::query(sources, f);
  if (!lines) return make_error(lines.error());
  json::Array out;
  out.reserve(lines->size());
  for (const std::string& l : lines.value()) {
    auto v = json::parse(l);
    out.push_back(v ? std::move(v.value()) : json::Value(l));
  }
  size_t n = out.size();
  return json::Value(
      json::Object{{"records", std::move(out)}, {"count", n}, {"limit", limit}, {"pseudonymized", a.pseudonymize}});
}

Result<json::Value> Control::records_digest(const std::string& content, std::optional<int64_t> bytes) {
  size_t n = content.size();
  if (bytes) {
    if (*bytes < 0) return make_error("--bytes: must be 0 or more");
    if (static_cast<uint64_t>(*bytes) > content.size())
      return make_error("--bytes " + std::to_string(*bytes) + ": the file has only " + std::to_string(content.size()) +
                        " bytes");
    n = static_cast<size_t>(*bytes);
  }
  return json::Value(json::Object{{"digest", records::hmac_hex(key_, std::string_view(content).substr(0, n))},
                                  {"bytes", n},
                                  {"of_bytes", content.size()}});
}

}  // namespace imf::control
