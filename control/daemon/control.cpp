#include "daemon/control.h"

#include <fcntl.h>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <unordered_map>

#include "common/atomic_file.h"
#include "daemon/metrics.h"
#include "daemon/rules_diff.h"
#include "rules/artifact.h"
#include "rules/compiler.h"
#include "rules/rule_parser.h"

namespace imf::control {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  auto d = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return std::round(d * 10) / 10;
}

json::Value version_or_null(const std::optional<uint64_t>& v) { return v ? json::Value(*v) : json::Value(); }

json::Value without_ok(json::Value body) {
  json::Value out = json::Object{};
  if (!body.is_object()) return out;
  for (auto& [k, v] : body.as_object()) {
    if (k != "ok") out.set(k, std::move(v));
  }
  return out;
}

json::Value change_json(const RuleChange& c, bool with_from, bool with_to) {
  json::Value o = json::Object{};
  o.set("id", c.id);
  if (with_from && with_to) {
    o.set("from_line", c.from_line);
    o.set("to_line", c.to_line);
    o.set("from", c.from_text);
    o.set("to", c.to_text);
  } else if (with_from) {
    o.set("line", c.from_line);
    o.set("text", c.from_text);
  } else {
    o.set("line", c.to_line);
    o.set("text", c.to_text);
  }
  return o;
}

// The dataplane's start, estimated from a status as now - uptime_s, moves by rounding and timing
// jitter (uptime_s has 0.1 s steps; answers to concurrent statuses are observed in any order); a
// move later than this means a new process.
constexpr auto kRestartSlack = std::chrono::milliseconds(1500);

constexpr const char* kNoTablesNote = "the dataplane does not keep tables (its status lists none); nothing to apply";
constexpr const char* kResyncNote = "the table is stored; the next resync loads it into the dataplane";
constexpr const char* kNoAccountsNote = "the dataplane does not keep accounts (its status has none); nothing to apply";
constexpr const char* kAccountsResyncNote =
    "the account is stored; the next resync loads the accounts into the dataplane";

// The "dataplane" member of a change's result; `reply` is null when the dataplane keeps no such
// thing (nothing was sent): `none_note` says so; `resync_note` follows an error.
json::Value change_dataplane_json(const DataplaneReply* reply, const char* none_note, const char* resync_note) {
  json::Value dp = json::Object{};
  dp.set("applied", reply && reply->kind == DataplaneReply::Kind::kOk);
  if (!reply) {
    dp.set("note", none_note);
  } else if (reply->kind == DataplaneReply::Kind::kRejected) {
    dp.set("error", "dataplane refused: " + reply->error);
    dp.set("note", resync_note);
  } else if (reply->kind == DataplaneReply::Kind::kUnreachable) {
    dp.set("error", reply->error);
    dp.set("note", resync_note);
  }
  return dp;
}

json::Value table_dataplane_json(const DataplaneReply* reply) {
  return change_dataplane_json(reply, kNoTablesNote, kResyncNote);
}

// Why resync loads a table into the dataplane; empty when it need not. `theirs`: the dataplane's
// row count (nullopt: it lacks the table).
std::string why_load(bool dirty, bool changed_since, std::optional<int64_t> theirs, size_t ours) {
  if (dirty) return "its copy may differ";
  // The status predates a change that was forwarded: the counts are compared next round.
  if (changed_since) return {};
  if (!theirs) return "it has no such table";
  if (*theirs != static_cast<int64_t>(ours)) return "it has " + std::to_string(*theirs) + " rows";
  return {};
}

}  // namespace

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

ControlConfig with_default_paths(ControlConfig c) {
  resolve_default_paths(&c);
  return c;
}

int64_t system_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Control::Control(ControlConfig config, DataplaneLink& dataplane, ControlTimeouts timeouts)
    : config_(with_default_paths(std::move(config))),
      dataplane_(dataplane),
      timeouts_(timeouts),
      versions_(config_.state_dir + "/rules"),
      tables_(config_.state_dir + "/tables"),
      accounts_(config_.state_dir + "/accounts"),
      reports_(config_.state_dir + "/reports.jsonl"),
      clock_(system_now_ns) {}

Control::~Control() = default;

Status Control::init() {
  if (Status s = make_dirs(config_.state_dir, 0750); !s) return s;
  if (Status s = versions_.init(); !s) return s;
  if (Status s = tables_.init(); !s) return s;
  if (Status s = init_accounts_and_records(); !s) return s;
  auto act = versions_.active();
  if (!act) return make_error(act.error());
  if (act.value()) {
    // The marker only ever names a whole artifact (written before it); say so loudly if not.
    auto info = artifact_info(*act.value());
    if (!info) spdlog::error("active version {}: {}", *act.value(), info.error());
  }
  return Ok{};
}

Result<Control::ArtifactInfo> Control::artifact_info(uint64_t version) {
  {
    std::lock_guard lock(state_mu_);
    if (auto it = artifact_cache_.find(version); it != artifact_cache_.end()) return it->second;
  }
  std::string path = versions_.artifact_path(version);
  auto a = rules::read_artifact(path);
  if (!a) return make_error(a.error());
  struct stat st {};
  ArtifactInfo info{a->created_unix_ms, a->source, a->compiled.rules.size(),
                    ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0};
  std::lock_guard lock(state_mu_);
  artifact_cache_[version] = info;
  return info;
}

Result<json::Value> Control::rules_validate(const std::string& text, const std::string& source) {
  auto set = rules::parse_rules(text, source);
  if (!set) return make_error(set.error());
  auto compiled = rules::compile_rules(set.value());
  if (!compiled) return make_error(compiled.error());
  json::Value r = json::Object{};
  r.set("rules", set->rules.size());
  r.set("source", source);
  return r;
}

DataplaneReply Control::install(uint64_t version) {
  json::Value req = json::Object{};
  req.set("cmd", "install");
  req.set("version", version);
  req.set("artifact", versions_.artifact_path(version));
  DataplaneReply reply = dataplane_.call(req, timeouts_.install);
  note_dataplane(reply);
  return reply;
}

void Control::note_dataplane(const DataplaneReply& reply) {
  std::lock_guard lock(state_mu_);
  bool reachable = reply.kind != DataplaneReply::Kind::kUnreachable;
  if (dataplane_reachable_ != reachable) {
    if (reachable) {
      spdlog::info("dataplane reachable at {}", dataplane_.where());
    } else {
      spdlog::warn("dataplane unreachable: {}", reply.error);
    }
  }
  dataplane_reachable_ = reachable;
  dataplane_error_ = reachable ? std::string() : reply.error;
}

Result<json::Value> Control::activate(uint64_t version, bool fresh, const Progress& progress) {
  auto previous = versions_.active();
  if (!previous) return make_error(previous.error());
  std::string prev_text = previous.value() ? "version " + std::to_string(*previous.value()) : "no version";

  progress("installing version " + std::to_string(version) + " in the dataplane");
  DataplaneReply reply = install(version);
  json::Value dp = json::Object{};
  if (reply.kind == DataplaneReply::Kind::kRejected) {
    if (fresh) {
      if (Status s = versions_.remove(version); !s) spdlog::error("{}", s.error());
      std::lock_guard lock(state_mu_);
      artifact_cache_.erase(version);
    }
    return make_error("dataplane refused version " + std::to_string(version) + ": " + reply.error + "; " + prev_text +
                      " stays active");
  }
  if (reply.kind == DataplaneReply::Kind::kUnreachable) {
    dp.set("installed", false);
    dp.set("reachable", false);
    dp.set("error", reply.error);
    dp.set("note", "version " + std::to_string(version) +
                       " is active on disk; the dataplane will be synced when it is reachable");
  } else {
    dp.set("installed", true);
    dp.set("reachable", true);
    for (const char* k : {"load_ms", "swap_ms"}) {
      if (const json::Value* v = reply.body.find(k)) dp.set(k, *v);
    }
  }

  if (Status s = versions_.set_active(version); !s) {
    std::string msg = "version " + std::to_string(version) + " could not be marked active: " + s.error() + "; " +
                      prev_text + " stays active";
    if (reply.kind == DataplaneReply::Kind::kOk) msg += " (the next resync returns the dataplane to it)";
    return make_error(msg);
  }
  spdlog::info("version {} active (was {}); dataplane {}", version, prev_text,
               reply.kind == DataplaneReply::Kind::kOk ? "installed it" : "unreachable, will be synced");

  json::Value pruned = json::Array{};
  if (auto gone = versions_.prune(config_.keep_versions); gone) {
    std::lock_guard lock(state_mu_);
    for (uint64_t v : gone.value()) {
      pruned.as_array().emplace_back(v);
      artifact_cache_.erase(v);
    }
  } else {
    spdlog::error("pruning old versions: {}", gone.error());
  }

  json::Value r = json::Object{};
  r.set("version", version);
  r.set("previous", version_or_null(previous.value()));
  r.set("dataplane", std::move(dp));
  r.set("pruned", std::move(pruned));
  return r;
}

Result<json::Value> Control::rules_load(const std::string& text, const std::string& source, const Progress& progress) {
  progress("parsing " + source);
  auto set = rules::parse_rules(text, source);
  if (!set) return make_error(set.error());
  size_t n = set->rules.size();
  progress("compiling " + std::to_string(n) + " rules");
  auto t0 = std::chrono::steady_clock::now();
  auto compiled = rules::compile_rules(set.value());
  if (!compiled) return make_error(compiled.error());
  double compile_ms = ms_since(t0);
  progress("compiled " + std::to_string(n) + " rules in " + std::to_string(static_cast<int64_t>(compile_ms)) + " ms");

  std::unique_lock lock(rules_mu_, std::try_to_lock);
  if (!lock.owns_lock()) {
    progress("waiting for another activation to finish");
    lock.lock();
  }
  uint64_t floor;
  {
    std::lock_guard s(state_mu_);
    floor = highest_assigned_;
  }
  auto version = versions_.next_version(floor);
  if (!version) return make_error(version.error());
  {
    std::lock_guard s(state_mu_);
    highest_assigned_ = version.value();
  }

  rules::RuleSetArtifact a;
  a.version = version.value();
  a.created_unix_ms = static_cast<uint64_t>(now_unix_ms());
  a.source = source;
  a.rules_text = text;
  a.compiled = std::move(compiled.value());
  progress("writing version " + std::to_string(a.version));
  if (Status s = rules::write_artifact(versions_.artifact_path(a.version), a); !s)
    return make_error("cannot store version " + std::to_string(a.version) + ": " + s.error());

  auto r = activate(a.version, true, progress);
  if (!r) return r;
  r->set("rules", n);
  r->set("compile_ms", compile_ms);
  std::lock_guard s(state_mu_);
  last_load_ = LastLoad{a.version, now_unix_ms(), compile_ms, n};
  return r;
}

Result<json::Value> Control::rules_rollback(std::optional<uint64_t> version, const Progress& progress) {
  std::unique_lock lock(rules_mu_);
  uint64_t target = 0;
  if (version) {
    target = *version;
  } else {
    auto prev = versions_.previous_version();
    if (!prev) return make_error("nothing to roll back to: " + prev.error());
    target = prev.value();
  }
  auto info = artifact_info(target);
  if (!info) {
    auto kept = versions_.versions();
    std::string list;
    if (kept) {
      for (uint64_t v : kept.value()) list += (list.empty() ? "" : ", ") + std::to_string(v);
    }
    return make_error("cannot roll back to version " + std::to_string(target) + ": " + info.error() +
                      " (kept versions: " + (list.empty() ? "none" : list) + ")");
  }
  auto r = activate(target, false, progress);
  if (r) r->set("rules", info->rules);
  return r;
}

Result<json::Value> Control::rules_show(std::optional<uint64_t> version) {
  auto act = versions_.active();
  if (!act) return make_error(act.error());
  if (!version) {
    if (!act.value()) return make_error("no version is active yet; name a version");
    version = act.value();
  }
  auto a = rules::read_artifact(versions_.artifact_path(*version));
  if (!a) return make_error("version " + std::to_string(*version) + " is not kept: " + a.error());
  json::Value r = json::Object{};
  r.set("version", *version);
  r.set("active", act.value() && *act.value() == *version);
  r.set("created_unix_ms", a->created_unix_ms);
  r.set("source", a->source);
  r.set("rules", a->compiled.rules.size());
  r.set("text", std::move(a->rules_text));
  return r;
}

Result<json::Value> Control::rules_diff(uint64_t from, uint64_t to) {
  auto a = rules::read_artifact(versions_.artifact_path(from));
  if (!a) return make_error("version " + std::to_string(from) + " is not kept: " + a.error());
  auto b = rules::read_artifact(versions_.artifact_path(to));
  if (!b) return make_error("version " + std::to_string(to) + " is not kept: " + b.error());
  auto sa = rules::parse_rules(a->rules_text, "version " + std::to_string(from));
  if (!sa) return make_error(sa.error());
  auto sb = rules::parse_rules(b->rules_text, "version " + std::to_string(to));
  if (!sb) return make_error(sb.error());
  RuleDiff d = diff_rules(sa.value(), a->rules_text, sb.value(), b->rules_text);
  json::Value r = json::Object{};
  r.set("from", from);
  r.set("to", to);
  json::Array added, removed, changed;
  for (const RuleChange& c : d.added) added.push_back(change_json(c, false, true));
  for (const RuleChange& c : d.removed) removed.push_back(change_json(c, true, false));
  for (const RuleChange& c : d.changed) changed.push_back(change_json(c, true, true));
  r.set("added", std::move(added));
  r.set("removed", std::move(removed));
  r.set("changed", std::move(changed));
  return r;
}

Result<json::Value> Control::rules_list() {
  auto vs = versions_.versions();
  if (!vs) return make_error(vs.error());
  auto act = versions_.active();
  if (!act) return make_error(act.error());
  json::Array list;
  for (uint64_t v : vs.value()) {
    json::Value e = json::Object{};
    e.set("version", v);
    e.set("active", act.value() && *act.value() == v);
    auto info = artifact_info(v);
    if (info) {
      e.set("created_unix_ms", info->created_unix_ms);
      e.set("source", info->source);
      e.set("rules", info->rules);
      e.set("bytes", info->bytes);
    } else {
      e.set("error", info.error());
    }
    list.push_back(std::move(e));
  }
  json::Value r = json::Object{};
  r.set("active", version_or_null(act.value()));
  r.set("keep_versions", config_.keep_versions);
  r.set("versions", std::move(list));
  return r;
}

Control::TableSync& Control::table_sync(const std::string& table) {
  std::lock_guard lock(state_mu_);
  auto& slot = table_sync_[table];
  if (!slot) slot = std::make_unique<TableSync>();
  return *slot;
}

std::map<std::string, uint64_t> Control::table_changes() {
  std::map<std::string, uint64_t> out;
  std::lock_guard lock(state_mu_);
  for (const auto& [name, sync] : table_sync_) out[name] = sync->changes.load();
  return out;
}

json::Value Control::forward_table_change(const json::Value& request, TableSync& sync) {
  bool keeps_tables;
  {
    std::lock_guard lock(state_mu_);
    keeps_tables = dataplane_tables_ != DataplaneTables::kNo;
  }
  if (!keeps_tables) {
    sync.dirty = true;  // an imfd with tables that replaces this one gets the table loaded
    return table_dataplane_json(nullptr);
  }
  DataplaneReply reply = dataplane_.call(request, timeouts_.query);
  note_dataplane(reply);
  if (reply.kind != DataplaneReply::Kind::kOk) {
    sync.dirty = true;
    spdlog::warn("table {}: {} not applied by the dataplane ({}); the next resync loads the table",
                 request.find("table")->as_string(), request.find("cmd")->as_string(), reply.error);
  }
  return table_dataplane_json(&reply);
}

DataplaneReply Control::load_table(const std::string& table, TableSync& sync) {
  json::Value req = json::Object{};
  req.set("cmd", "table.load");
  req.set("table", table);
  req.set("path", tables_.snapshot_path(table));
  DataplaneReply reply = dataplane_.call(req, timeouts_.table_load);
  note_dataplane(reply);
  sync.dirty = reply.kind != DataplaneReply::Kind::kOk;
  return reply;
}

Result<json::Value> Control::table_set(const std::string& table, const std::string& key, const std::string& value) {
  if (Status s = check_table_name(table); !s) return make_error("table " + table + ": " + s.error());
  TableSync& sync = table_sync(table);
  std::lock_guard lock(sync.mu);
  if (Status s = tables_.set(table, key, value); !s) return make_error("table " + table + ": " + s.error());
  json::Value req = json::Object{};
  req.set("cmd", "table.set");
  req.set("table", table);
  req.set("key", key);
  req.set("value", value);
  json::Value r = json::Object{};
  r.set("table", table);
  r.set("key", key);
  r.set("dataplane", forward_table_change(req, sync));
  ++sync.changes;
  return r;
}

Result<json::Value> Control::table_del(const std::string& table, const std::string& key) {
  if (Status s = check_table_name(table); !s) return make_error(s.error());
  if (!tables_.rows(table)) return make_error("no table '" + table + "'");  // tables are never removed
  TableSync& sync = table_sync(table);
  std::lock_guard lock(sync.mu);
  auto d = tables_.del(table, key);
  if (!d) return make_error(d.error());
  // Forwarded even when the key was absent here: deleting is idempotent, and it repairs a copy
  // that still holds the key.
  json::Value req = json::Object{};
  req.set("cmd", "table.del");
  req.set("table", table);
  req.set("key", key);
  json::Value r = json::Object{};
  r.set("table", table);
  r.set("key", key);
  r.set("deleted", d.value());
  r.set("dataplane", forward_table_change(req, sync));
  ++sync.changes;
  return r;
}

Result<json::Value> Control::table_get(const std::string& table, const std::string& key) {
  auto g = tables_.get(table, key);
  if (!g) return make_error(g.error());
  json::Value r = json::Object{};
  r.set("table", table);
  r.set("key", key);
  r.set("found", g->has_value());
  if (g.value()) r.set("value", std::move(*g.value()));
  return r;
}

Result<json::Value> Control::table_bulk(const std::string& table, const std::string& csv, const std::string& source,
                                        bool replace) {
  if (Status s = check_table_name(table); !s) return make_error(s.error());
  auto t0 = std::chrono::steady_clock::now();
  TableSync& sync = table_sync(table);
  std::lock_guard lock(sync.mu);
  auto b = tables_.bulk(table, csv, source, replace);
  if (!b) return make_error(b.error());
  json::Value r = json::Object{};
  r.set("table", table);
  r.set("rows", b->rows);
  r.set("inserted", b->inserted);
  r.set("updated", b->updated);
  r.set("size", b->size);
  r.set("replace", replace);
  r.set("ms", ms_since(t0));

  bool keeps_tables;
  {
    std::lock_guard s(state_mu_);
    keeps_tables = dataplane_tables_ != DataplaneTables::kNo;
  }
  json::Value dp;
  if (!keeps_tables) {
    sync.dirty = true;
    dp = table_dataplane_json(nullptr);
  } else {
    DataplaneReply reply = load_table(table, sync);
    dp = table_dataplane_json(&reply);
    if (reply.kind == DataplaneReply::Kind::kOk) {
      for (const char* k : {"rows", "ms"}) {
        if (const json::Value* v = reply.body.find(k)) dp.set(k, *v);
      }
    } else {
      spdlog::warn("table {}: snapshot not loaded by the dataplane ({}); the next resync loads it", table, reply.error);
    }
  }
  r.set("dataplane", std::move(dp));
  ++sync.changes;
  return r;
}

Result<json::Value> Control::table_list() {
  json::Array list;
  for (const TableInfo& t : tables_.list()) {
    json::Value e = json::Object{};
    e.set("table", t.name);
    e.set("rows", t.rows);
    list.push_back(std::move(e));
  }
  json::Value r = json::Object{};
  r.set("tables", std::move(list));
  return r;
}

Result<json::Value> Control::stats() {
  json::Value req = json::Object{};
  req.set("cmd", "stats");
  DataplaneReply reply = dataplane_.call(req, timeouts_.query);
  note_dataplane(reply);
  if (reply.kind == DataplaneReply::Kind::kUnreachable) return make_error(reply.error);
  if (reply.kind == DataplaneReply::Kind::kRejected) return make_error("dataplane refused stats: " + reply.error);
  json::Value r = without_ok(std::move(reply.body));
  json::Value c = json::Object{};
  c.set("accounts", account_figures());
  c.set("reports", json::Object{{"open", reports_.open_total()}, {"total", reports_.total()}});
  c.set("records", records_figures());
  r.set("control", std::move(c));
  return r;
}

Result<json::Value> Control::status() {
  json::Value req = json::Object{};
  req.set("cmd", "status");
  DataplaneReply reply = dataplane_.call(req, timeouts_.query);
  note_dataplane(reply);
  if (reply.kind == DataplaneReply::Kind::kOk) observe_dataplane_status(reply.body);

  json::Value c = json::Object{};
  c.set("pid", static_cast<int64_t>(::getpid()));
  c.set("uptime_s", std::round(std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count()));
  auto act = versions_.active();
  c.set("active_version", act ? version_or_null(act.value()) : json::Value());
  if (!act) c.set("active_error", act.error());
  auto vs = versions_.versions();
  json::Array kept;
  if (vs) {
    for (uint64_t v : vs.value()) kept.emplace_back(v);
  }
  c.set("versions_kept", std::move(kept));
  c.set("state_dir", config_.state_dir);
  json::Value dp = json::Object{};
  {
    std::lock_guard lock(state_mu_);
    if (last_load_) {
      json::Value l = json::Object{};
      l.set("version", last_load_->version);
      l.set("unix_ms", last_load_->unix_ms);
      l.set("compile_ms", last_load_->compile_ms);
      l.set("rules", last_load_->rules);
      c.set("last_load", std::move(l));
    } else {
      c.set("last_load", nullptr);
    }
    c.set("metrics_listen", metrics_address_);
    if (!resync_error_.empty()) c.set("resync_error", resync_error_);
  }
  c.set("appliance_id", config_.appliance_id);
  c.set("accounts", account_figures());
  c.set("reports", json::Object{{"open", reports_.open_total()}, {"total", reports_.total()}});
  c.set("records", records_figures());
  dp.set("socket", dataplane_.where());
  dp.set("reachable", reply.kind != DataplaneReply::Kind::kUnreachable);
  if (reply.kind == DataplaneReply::Kind::kOk) {
    json::Value body = without_ok(std::move(reply.body));
    for (auto& [k, v] : body.as_object()) dp.set(k, std::move(v));
    if (act && act.value()) {
      const json::Value* v = dp.find("version");
      dp.set("in_sync", v && v->is_int() && static_cast<uint64_t>(v->as_int()) == *act.value());
    }
  } else {
    dp.set("error", reply.error);
  }
  json::Value r = json::Object{};
  r.set("control", std::move(c));
  r.set("dataplane", std::move(dp));
  return r;
}

Result<json::Value> Control::health() {
  json::Value req = json::Object{};
  req.set("cmd", "status");
  DataplaneReply reply = dataplane_.call(req, timeouts_.scrape);
  note_dataplane(reply);
  if (reply.kind == DataplaneReply::Kind::kOk) observe_dataplane_status(reply.body);
  json::Value dp = json::Object{};
  dp.set("reachable", reply.kind != DataplaneReply::Kind::kUnreachable);
  if (reply.kind == DataplaneReply::Kind::kOk) {
    if (const json::Value* v = reply.body.find("version")) dp.set("version", *v);
  } else {
    dp.set("error", reply.error);
  }
  json::Value r = json::Object{};
  r.set("control", "up");
  r.set("dataplane", std::move(dp));
  return r;
}

void Control::observe_dataplane_status(const json::Value& body) {
  const json::Value* tables = body.find("tables");
  const json::Value* up = body.find("uptime_s");
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(state_mu_);
  DataplaneTables keeps = tables && tables->is_array() ? DataplaneTables::kYes : DataplaneTables::kNo;
  if (keeps != dataplane_tables_) {
    if (keeps == DataplaneTables::kYes) {
      spdlog::info("the dataplane keeps tables: table changes are forwarded to it");
    } else {
      spdlog::info("the dataplane does not keep tables (its status lists none): tables are not sent to it");
    }
  }
  dataplane_tables_ = keeps;
  const json::Value* accounts = body.find("accounts");
  DataplaneTables keeps_accounts = accounts && accounts->is_object() ? DataplaneTables::kYes : DataplaneTables::kNo;
  if (keeps_accounts != dataplane_accounts_) {
    spdlog::info(keeps_accounts == DataplaneTables::kYes
                     ? "the dataplane keeps accounts: account changes are forwarded to it"
                     : "the dataplane does not keep accounts (its status has none): accounts are not sent to it");
  }
  dataplane_accounts_ = keeps_accounts;
  if (!up || !up->is_number() || up->as_double() < 0) return;
  double uptime = up->as_double();
  auto started =
      now - std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(uptime));
  // It started later than it did at the previous status (its uptime went down, or grew less than
  // the time since): a new process, whose tables hold whatever it started with.
  if (dataplane_started_ && started > *dataplane_started_ + kRestartSlack) {
    spdlog::info("the dataplane restarted (up {} s): every table and the accounts will be loaded into it", uptime);
    for (auto& [name, sync] : table_sync_) sync->dirty = true;
    accounts_dirty_ = true;
  }
  dataplane_started_ = started;
}

void Control::sync_tables(const json::Value& status_body, const std::map<std::string, uint64_t>& changes_before,
                          std::string* errors) {
  const json::Value* listed = status_body.find("tables");
  if (!listed || !listed->is_array()) return;  // an imfd without tables: nothing to sync
  std::map<std::string, int64_t> theirs;
  for (const json::Value& t : listed->as_array()) {
    const json::Value* name = t.find("table");
    const json::Value* rows = t.find("rows");
    if (name && name->is_string() && rows && rows->is_int()) theirs[name->as_string()] = rows->as_int();
  }
  for (const TableInfo& info : tables_.list()) {
    TableSync& sync = table_sync(info.name);
    std::lock_guard lock(sync.mu);
    auto ours = tables_.rows(info.name);
    if (!ours) continue;
    auto it = theirs.find(info.name);
    // An empty table the dataplane lacks: nothing to give it, and no table slot spent on it.
    if (it == theirs.end() && *ours == 0) continue;
    auto before = changes_before.find(info.name);
    bool changed_since = sync.changes != (before == changes_before.end() ? 0 : before->second);
    std::string why = why_load(sync.dirty, changed_since,
                               it == theirs.end() ? std::nullopt : std::optional<int64_t>(it->second), *ours);
    if (why.empty()) continue;
    DataplaneReply r = load_table(info.name, sync);
    if (r.kind == DataplaneReply::Kind::kOk) {
      // Failures are not logged here: they make the resync error, logged once while it lasts.
      const json::Value* ms = r.body.find("ms");
      spdlog::info("table {}: loaded into the dataplane ({}): {} rows{}", info.name, why, *ours,
                   ms && ms->is_number() ? " in " + json::to_string(*ms) + " ms" : std::string());
      continue;
    }
    if (!errors->empty()) *errors += "; ";
    *errors += "loading table " + info.name + ": " +
               (r.kind == DataplaneReply::Kind::kRejected ? "dataplane refused: " : "") + r.error;
    if (r.kind == DataplaneReply::Kind::kUnreachable) break;  // the others would wait in vain
  }
}

void Control::resync() {
  // Taken before the status is asked, so a change that lands after it is recognized.
  std::map<std::string, uint64_t> changes_before = table_changes();
  uint64_t account_changes_before = account_changes_;
  std::string error;
  json::Value status_body;
  {
    std::lock_guard lock(rules_mu_);
    auto act = versions_.active();
    json::Value req = json::Object{};
    req.set("cmd", "status");
    DataplaneReply reply = dataplane_.call(req, timeouts_.query);
    note_dataplane(reply);
    if (reply.kind == DataplaneReply::Kind::kOk) observe_dataplane_status(reply.body);
    if (!act) {
      error = act.error();
    } else if (reply.kind == DataplaneReply::Kind::kRejected) {
      error = "dataplane refused status: " + reply.error;
    } else if (reply.kind == DataplaneReply::Kind::kOk && act.value()) {
      const json::Value* v = reply.body.find("version");
      uint64_t running = v && v->is_int() && v->as_int() > 0 ? static_cast<uint64_t>(v->as_int()) : 0;
      uint64_t want = *act.value();
      if (running != want) {
        spdlog::info("dataplane runs version {}, version {} is active: installing it", running, want);
        DataplaneReply r = install(want);
        if (r.kind == DataplaneReply::Kind::kOk) {
          spdlog::info("dataplane synced to version {}", want);
        } else {
          error = "installing version " + std::to_string(want) + ": " + r.error;
        }
      }
    }
    if (reply.kind == DataplaneReply::Kind::kOk) status_body = std::move(reply.body);
  }
  // Outside rules_mu_: a long table load does not hold up a rules load.
  if (!status_body.is_null()) {
    sync_tables(status_body, changes_before, &error);
    sync_accounts(status_body, account_changes_before, &error);
  }
  std::lock_guard s(state_mu_);
  if (error != resync_error_ && !error.empty()) spdlog::error("resync: {}", error);
  resync_error_ = error;
  last_resync_unix_ms_ = now_unix_ms();
}

// ------------------------------------------------------------------ accounts, reports, records

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

std::string Control::metrics_text() {
  json::Value req = json::Object{};
  req.set("cmd", "stats");
  DataplaneReply reply = dataplane_.call(req, timeouts_.scrape);
  note_dataplane(reply);
  ControlMetrics cm;
  if (auto act = versions_.active(); act && act.value()) cm.active_version = *act.value();
  cm.uptime_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  cm.accounts = true;
  AccountCounts ac = accounts_.counts();
  for (int i = 0; i < policy::kStateCount; ++i) cm.accounts_by_state[i] = ac.by_state[i];
  cm.reports_open = reports_.open_total();
  {
    std::lock_guard lock(records_mu_);
    cm.records_control_seq = records_->last_seq();
  }
  cm.records_dataplane_seq = dp_read_seq_;
  cm.dataplane_state_changes_applied = dp_records_applied_;
  return render_metrics(reply.kind == DataplaneReply::Kind::kOk ? &reply.body : nullptr, cm);
}

void Control::set_metrics_address(std::string address) {
  std::lock_guard lock(state_mu_);
  metrics_address_ = std::move(address);
}

}  // namespace imf::control
