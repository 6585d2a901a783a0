#include "daemon/control.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>

#include "common/atomic_file.h"
#include "daemon/control_util.h"
#include "daemon/metrics.h"
#include "daemon/rules_diff.h"
#include "rules/artifact.h"
#include "rules/compiler.h"
#include "rules/rule_parser.h"

namespace imf::control {

double ms_since(std::chrono::steady_clock::time_point t0) {
  auto d = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return std::round(d * 10) / 10;
}

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

namespace {

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

DataplaneReply Control::ask_dataplane(const char* cmd, std::chrono::milliseconds timeout) {
  json::Value req = json::Object{};
  req.set("cmd", cmd);
  DataplaneReply reply = dataplane_.call(req, timeout);
  note_dataplane(reply);
  // Every status answer tells what the dataplane keeps and whether it restarted.
  if (reply.kind == DataplaneReply::Kind::kOk && std::string_view(cmd) == "status")
    observe_dataplane_status(reply.body);
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
  DataplaneReply reply = ask_dataplane("stats", timeouts_.query);
  if (reply.kind == DataplaneReply::Kind::kUnreachable) return make_error(reply.error);
  if (reply.kind == DataplaneReply::Kind::kRejected) return make_error("dataplane refused stats: " + reply.error);
  json::Value r = without_ok(std::move(reply.body));
  json::Value c = json::Object{};
  add_policy_figures(c);
  r.set("control", std::move(c));
  return r;
}

Result<json::Value> Control::status() {
  DataplaneReply reply = ask_dataplane("status", timeouts_.query);

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
  add_policy_figures(c);
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
  DataplaneReply reply = ask_dataplane("status", timeouts_.scrape);
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
    DataplaneReply reply = ask_dataplane("status", timeouts_.query);
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

std::string Control::metrics_text() {
  DataplaneReply reply = ask_dataplane("stats", timeouts_.scrape);
  ControlMetrics cm;
  if (auto act = versions_.active(); act && act.value()) cm.active_version = *act.value();
  cm.uptime_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  cm.accounts = true;
  AccountCounts ac = accounts_.counts();
  for (int i = 0; i < policy::kStateCount; ++i) cm.accounts_by_state[i] = ac.by_state[i];
  cm.reports_open = reports_.open_total();
  if (auto oldest = reports_.oldest_open_ns()) cm.reports_oldest_open_s = (now_ns() - *oldest) / 1000000000;
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
