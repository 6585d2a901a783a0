#include "ctl/format.h"

#include <cstdio>
#include <ctime>

namespace imf::ctl {

namespace {

const json::Value kNull;

const json::Value& at(const json::Value& v, const char* key) {
  const json::Value* p = v.find(key);
  return p ? *p : kNull;
}

// A scalar as text: strings bare, numbers as JSON writes them, null as "-".
std::string s(const json::Value& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.as_string();
  return json::to_string(v);
}

std::string version_text(const json::Value& v) { return v.is_null() ? "none" : "version " + s(v); }

std::string pad(std::string text, size_t width, bool right = false) {
  if (text.size() >= width) return text;
  std::string fill(width - text.size(), ' ');
  return right ? fill + text : text + fill;
}

std::string dataplane_line(const json::Value& dp, const json::Value& version) {
  if (at(dp, "installed").is_bool() && at(dp, "installed").as_bool())
    return "dataplane: installed (load " + s(at(dp, "load_ms")) + " ms, swap " + s(at(dp, "swap_ms")) + " ms)\n";
  return "dataplane: not reachable (" + s(at(dp, "error")) + "); " + version_text(version) +
         " will be installed when it is\n";
}

std::string pruned_line(const json::Value& pruned) {
  if (!pruned.is_array() || pruned.as_array().empty()) return {};
  std::string out = "removed old versions:";
  for (const json::Value& v : pruned.as_array()) out += " " + s(v);
  return out + "\n";
}

std::string rules_load(const json::Value& r) {
  std::string out = version_text(at(r, "version")) + " active (" + s(at(r, "rules")) + " rules, compiled in " +
                    s(at(r, "compile_ms")) + " ms; was " + version_text(at(r, "previous")) + ")\n";
  return out + dataplane_line(at(r, "dataplane"), at(r, "version")) + pruned_line(at(r, "pruned"));
}

std::string rules_rollback(const json::Value& r) {
  std::string out = version_text(at(r, "version")) + " active again (" + s(at(r, "rules")) + " rules; was " +
                    version_text(at(r, "previous")) + ")\n";
  return out + dataplane_line(at(r, "dataplane"), at(r, "version")) + pruned_line(at(r, "pruned"));
}

std::string rules_show(const json::Value& r) {
  bool active = at(r, "active").is_bool() && at(r, "active").as_bool();
  const json::Value& created = at(r, "created_unix_ms");
  std::string out = "# " + version_text(at(r, "version")) + (active ? " (active)" : "") + ": " + s(at(r, "rules")) +
                    " rules from " + s(at(r, "source")) + ", created " +
                    (created.is_int() ? format_time(created.as_int()) : "?") + "\n";
  std::string text = s(at(r, "text"));
  if (!text.empty() && text.back() != '\n') text.push_back('\n');
  return out + text;
}

std::string rules_diff(const json::Value& r) {
  auto count = [&](const char* k) { return at(r, k).is_array() ? at(r, k).as_array().size() : 0; };
  std::string out = version_text(at(r, "from")) + " -> " + version_text(at(r, "to")) + ": " +
                    std::to_string(count("added")) + " added, " + std::to_string(count("removed")) + " removed, " +
                    std::to_string(count("changed")) + " changed\n";
  if (at(r, "added").is_array()) {
    for (const json::Value& c : at(r, "added").as_array())
      out += "+ " + s(at(c, "id")) + " (line " + s(at(c, "line")) + "): " + s(at(c, "text")) + "\n";
  }
  if (at(r, "removed").is_array()) {
    for (const json::Value& c : at(r, "removed").as_array())
      out += "- " + s(at(c, "id")) + " (line " + s(at(c, "line")) + "): " + s(at(c, "text")) + "\n";
  }
  if (at(r, "changed").is_array()) {
    for (const json::Value& c : at(r, "changed").as_array()) {
      out += "~ " + s(at(c, "id")) + "\n";
      out += "    - (line " + s(at(c, "from_line")) + ") " + s(at(c, "from")) + "\n";
      out += "    + (line " + s(at(c, "to_line")) + ") " + s(at(c, "to")) + "\n";
    }
  }
  return out;
}

std::string rules_list(const json::Value& r) {
  std::string out = "VERSION  ACTIVE  CREATED                 RULES  SOURCE\n";
  if (!at(r, "versions").is_array()) return out;
  for (const json::Value& v : at(r, "versions").as_array()) {
    bool active = at(v, "active").is_bool() && at(v, "active").as_bool();
    const json::Value& created = at(v, "created_unix_ms");
    out += pad(s(at(v, "version")), 7, true) + "  " + pad(active ? "*" : "", 6) + "  " +
           pad(created.is_int() ? format_time(created.as_int()) : "?", 22) + "  " + pad(s(at(v, "rules")), 5, true) +
           "  " + (at(v, "error").is_string() ? "unreadable: " + s(at(v, "error")) : s(at(v, "source"))) + "\n";
  }
  return out;
}

// What the dataplane made of a table change ("" from a daemon that does not say).
std::string table_dataplane_line(const json::Value& r) {
  const json::Value& dp = at(r, "dataplane");
  if (!dp.is_object()) return {};
  if (at(dp, "applied").is_bool() && at(dp, "applied").as_bool()) {
    if (at(dp, "ms").is_null()) return "dataplane: applied\n";
    return "dataplane: loaded " + s(at(dp, "rows")) + " rows in " + s(at(dp, "ms")) + " ms\n";
  }
  std::string out = "dataplane: not applied";
  if (at(dp, "error").is_string()) out += " (" + s(at(dp, "error")) + ")";
  if (at(dp, "note").is_string()) out += "; " + s(at(dp, "note"));
  return out + "\n";
}

std::string table_bulk(const json::Value& r) {
  return s(at(r, "table")) + ": " + s(at(r, "rows")) + " rows loaded (" + s(at(r, "inserted")) + " new, " +
         s(at(r, "updated")) + " updated" +
         (at(r, "replace").is_bool() && at(r, "replace").as_bool() ? ", replaced" : "") + "); " + s(at(r, "size")) +
         " rows in the table; " + s(at(r, "ms")) + " ms\n" + table_dataplane_line(r);
}

std::string table_list(const json::Value& r) {
  std::string out = "TABLE                             ROWS\n";
  if (!at(r, "tables").is_array()) return out;
  for (const json::Value& t : at(r, "tables").as_array())
    out += pad(s(at(t, "table")), 30) + "  " + pad(s(at(t, "rows")), 6, true) + "\n";
  return out;
}

bool is_true(const json::Value& v) { return v.is_bool() && v.as_bool(); }

std::string joined(const json::Value& list, const char* sep) {
  std::string out;
  if (!list.is_array()) return out;
  for (const json::Value& v : list.as_array()) out += (out.empty() ? "" : sep) + s(v);
  return out;
}

// "suspended until 2026-12-01T12:00:00.000Z", "restricted to 10/60s", "none".
std::string measure_text(const json::Value& r) {
  std::string out = s(at(r, "state"));
  if (at(r, "rate").is_string()) out += " to " + s(at(r, "rate"));
  if (at(r, "until").is_string()) out += " until " + s(at(r, "until"));
  return out;
}

std::string markers_text(const json::Value& r) {
  std::string m = joined(at(r, "markers"), ", ");
  return m.empty() ? "none" : m;
}

std::string records_line(const json::Value& seqs) {
  if (!seqs.is_array() || seqs.as_array().empty()) return {};
  return "recorded: seq " + joined(seqs, ", ") + "\n";
}

std::string account_set(const json::Value& r) {
  const json::Value& changed = at(r, "changed");
  std::string out = "account " + s(at(r, "account")) + ": ";
  if (!is_true(at(changed, "markers")) && !is_true(at(changed, "measure"))) out += "unchanged; ";
  out += measure_text(r) + "; markers " + markers_text(r) + "\n";
  return out + records_line(at(r, "records")) + table_dataplane_line(r);
}

std::string account_show(const json::Value& r) {
  std::string out = "account:      " + s(at(r, "account")) + "\n";
  if (is_true(at(r, "found"))) {
    out += "markers:      " + markers_text(r) + "\n";
    out += "state:        " + measure_text(r) + "\n";
  } else {
    out += "stored:       no\n";
  }
  out += "open reports: " + s(at(r, "open_reports")) + "\n";
  const json::Value& dp = at(r, "dataplane");
  std::string d;
  if (at(dp, "note").is_string()) {
    d = s(at(dp, "note"));
  } else if (at(dp, "error").is_string()) {
    d = "not asked (" + s(at(dp, "error")) + ")";
  } else if (at(dp, "row").is_null()) {
    d = "no row";
    if (is_true(at(dp, "in_sync"))) d += " (in sync)";
  } else {
    d = s(at(dp, "state"));
    if (at(dp, "until").is_string()) d += " until " + s(at(dp, "until"));
    d += is_true(at(dp, "in_sync")) ? " (in sync)" : " (differs: " + s(at(dp, "row")) + ")";
  }
  return out + "dataplane:    " + d + "\n";
}

std::string account_load(const json::Value& r) {
  std::string out =
      s(at(r, "rows")) + " rows loaded (" + s(at(r, "inserted")) + " new, " + s(at(r, "updated")) + " updated";
  if (is_true(at(r, "replace"))) out += ", " + s(at(r, "removed")) + " removed: replaced";
  out += "); " + s(at(r, "size")) + " accounts; " + s(at(r, "state_changes")) + " state changes recorded; " +
         s(at(r, "ms")) + " ms\n";
  return out + table_dataplane_line(r);
}

std::string account_count(const json::Value& r) {
  std::string out = s(at(r, "rows")) + " accounts";
  if (at(r, "by_state").is_object()) {
    std::string parts;
    for (const auto& [k, v] : at(r, "by_state").as_object()) parts += (parts.empty() ? "" : ", ") + k + " " + s(v);
    out += ": " + parts;
  }
  return out + "\n";
}

std::string report_add(const json::Value& r) {
  std::string out = "report " + s(at(r, "report")) + " opened for " + s(at(r, "account")) + " (" +
                    s(at(r, "open_reports")) + " open)\n";
  const json::Value& e = at(r, "escalation");
  if (e.is_object()) {
    if (at(e, "state").is_string()) {
      out += "escalated: " + s(at(e, "state_before")) + " -> " + measure_text(e) + "\n";
      out += records_line(at(e, "records")) + table_dataplane_line(e);
    } else {
      out += "not escalated: " + s(at(e, at(e, "error").is_string() ? "error" : "note")) + "\n";
    }
  }
  return out;
}

std::string report_list(const json::Value& r) {
  std::string out = "REPORT  STATUS    OPENED                    AGE       ACCOUNT               REASON\n";
  if (!at(r, "reports").is_array()) return out;
  for (const json::Value& rep : at(r, "reports").as_array()) {
    out += pad(s(at(rep, "report")), 6, true) + "  " + pad(s(at(rep, "status")), 8) + "  " +
           pad(s(at(rep, "opened")), 24) + "  " + pad(at(rep, "age_s").is_int() ? s(at(rep, "age_s")) + "s" : "-", 8) +
           "  " + pad(s(at(rep, "account")), 20) + "  " + s(at(rep, "reason"));
    if (at(rep, "digest").is_string()) out += " [digest " + s(at(rep, "digest")).substr(0, 16) + "...]";
    if (at(rep, "note").is_string() && !at(rep, "note").as_string().empty())
      out += " (note: " + s(at(rep, "note")) + ")";
    out += "\n";
  }
  return out;
}

std::string records_verify(const json::Value& r) {
  std::string out;
  if (!at(r, "chains").is_array()) return out;
  for (const json::Value& c : at(r, "chains").as_array()) {
    out += s(at(c, "source")) + " (" + s(at(c, "dir")) + "): ";
    if (is_true(at(c, "ok"))) {
      out += "ok, " + s(at(c, "records")) + " records in " + s(at(c, "files")) + " files";
      if (at(c, "records").is_int() && at(c, "records").as_int() > 0)
        out += " (seq " + s(at(c, "first_seq")) + "-" + s(at(c, "last_seq")) + ")";
      out += "\n";
      continue;
    }
    size_t n = at(c, "problems").is_array() ? at(c, "problems").as_array().size() : 0;
    out += "FAILED, " + std::to_string(n) + (n == 1 ? " problem\n" : " problems\n");
    if (at(c, "problems").is_array()) {
      for (const json::Value& p : at(c, "problems").as_array()) out += "  " + s(p) + "\n";
    }
  }
  return out;
}

std::string records_query(const json::Value& r) {
  std::string out;
  if (!at(r, "records").is_array()) return out;
  for (const json::Value& rec : at(r, "records").as_array())
    out += (rec.is_string() ? rec.as_string() : json::to_string(rec)) + "\n";
  return out;
}

// The control side's accounts, reports and records figures (status and stats).
std::string control_figures(const json::Value& c) {
  std::string out;
  const json::Value& acc = at(c, "accounts");
  if (acc.is_object()) out += "accounts: " + account_count(acc);
  const json::Value& rep = at(c, "reports");
  if (rep.is_object()) {
    out += "reports: " + s(at(rep, "open")) + " open, " + s(at(rep, "total")) + " in all";
    if (at(rep, "oldest_open_age_s").is_int())
      out += "; the oldest open one waits " + s(at(rep, "oldest_open_age_s")) + " s";
    out += "\n";
  }
  const json::Value& rec = at(c, "records");
  if (rec.is_object()) {
    const json::Value& dp = at(rec, "dataplane");
    out += "records: control chain at seq " + s(at(at(rec, "control"), "last_seq")) + "; dataplane chain at seq " +
           s(at(dp, "head_seq")) + ", read to " + s(at(dp, "read_seq")) + ", " + s(at(dp, "applied")) +
           " state changes applied (" + s(at(dp, "stale")) + " passed over as stale)\n";
  }
  return out;
}

std::string stats(const json::Value& r) {
  std::string out = "dataplane rules: " + version_text(at(r, "version")) + "\n";
  if (at(r, "ports").is_array()) {
    for (const json::Value& p : at(r, "ports").as_array())
      out += "port " + s(at(p, "port")) + ": rx " + s(at(p, "rx")) + " pkts " + s(at(p, "rx_bytes")) + " bytes, tx " +
             s(at(p, "tx")) + " pkts " + s(at(p, "tx_bytes")) + " bytes, rx_missed " + s(at(p, "rx_missed")) +
             ", tx_errors " + s(at(p, "tx_errors")) + "\n";
  }
  if (at(r, "lcores").is_array()) {
    for (const json::Value& l : at(r, "lcores").as_array())
      out += "lcore " + s(at(l, "lcore")) + ": rx " + s(at(l, "rx")) + ", forwarded " + s(at(l, "forwarded")) + "\n";
  }
  if (at(r, "counters").is_object()) {
    out += "counters:\n";
    for (const auto& [k, v] : at(r, "counters").as_object()) out += "  " + pad(k, 24) + " " + s(v) + "\n";
  }
  if (at(r, "latency_ns").is_object()) {
    out += "latency ns:";
    for (const auto& [k, v] : at(r, "latency_ns").as_object()) out += " " + k + " " + s(v);
    out += "\n";
  }
  if (at(r, "rules").is_array() && !at(r, "rules").as_array().empty()) {
    out += "rule hits:\n";
    for (const json::Value& h : at(r, "rules").as_array())
      out += "  " + pad(s(at(h, "id")), 40) + " " + pad(s(at(h, "action")), 5) + " " + s(at(h, "hits")) + "\n";
  }
  return out;
}

std::string stats_with_control(const json::Value& r) { return stats(r) + control_figures(at(r, "control")); }

std::string status(const json::Value& r) {
  const json::Value& c = at(r, "control");
  const json::Value& dp = at(r, "dataplane");
  std::string out = "control: up " + s(at(c, "uptime_s")) + " s, pid " + s(at(c, "pid")) + ", active " +
                    version_text(at(c, "active_version")) + ", kept:";
  if (at(c, "versions_kept").is_array()) {
    for (const json::Value& v : at(c, "versions_kept").as_array()) out += " " + s(v);
  }
  out += "\n";
  const json::Value& last = at(c, "last_load");
  if (last.is_object()) {
    out += "last load: " + version_text(at(last, "version")) + " at " +
           (at(last, "unix_ms").is_int() ? format_time(at(last, "unix_ms").as_int()) : "?") + ", " +
           s(at(last, "rules")) + " rules compiled in " + s(at(last, "compile_ms")) + " ms\n";
  } else {
    out += "last load: none since start\n";
  }
  if (at(c, "resync_error").is_string()) out += "resync error: " + s(at(c, "resync_error")) + "\n";
  out += control_figures(c);
  if (at(c, "metrics_listen").is_string() && !at(c, "metrics_listen").as_string().empty())
    out += "metrics: http://" + s(at(c, "metrics_listen")) + "/metrics\n";
  if (!(at(dp, "reachable").is_bool() && at(dp, "reachable").as_bool())) {
    out += "dataplane: not reachable (" + s(at(dp, "error")) + ")\n";
    return out;
  }
  bool in_sync = at(dp, "in_sync").is_bool() && at(dp, "in_sync").as_bool();
  out += "dataplane: reachable, runs " + version_text(at(dp, "version")) +
         (at(dp, "in_sync").is_bool() ? (in_sync ? " (in sync)" : " (NOT in sync; resync pending)") : "") + ", up " +
         s(at(dp, "uptime_s")) + " s, rule memory " + s(at(dp, "generation_bytes")) + " bytes\n";
  const json::Value& li = at(dp, "last_install");
  if (li.is_object())
    out += "last install: " + version_text(at(li, "version")) + " at " +
           (at(li, "unix_ms").is_int() ? format_time(at(li, "unix_ms").as_int()) : "?") + " (load " +
           s(at(li, "load_ms")) + " ms, swap " + s(at(li, "swap_ms")) + " ms)\n";
  const json::Value& acc = at(dp, "accounts");
  if (acc.is_object())
    out += "dataplane accounts: " + s(at(acc, "rows")) + " rows (capacity " + s(at(acc, "capacity")) + ", " +
           s(at(acc, "memory_bytes")) + " bytes), markers: " +
           (joined(at(acc, "markers"), ", ").empty() ? "none" : joined(at(acc, "markers"), ", ")) + "\n";
  const json::Value& protocols = at(dp, "protocols");
  if (protocols.is_object()) {
    // "protocols: mqtt tcp/1883; xmpp tcp/5222; sip tcp/5060 udp/5060; irc tcp/6667; detection off"
    out += "protocols:";
    bool first = true;
    for (const char* name : {"mqtt", "xmpp", "sip", "irc"}) {
      const json::Value& p = at(protocols, name);
      std::string ports;
      for (const char* transport : {"tcp", "udp"}) {
        if (!at(p, transport).is_array()) continue;
        for (const json::Value& port : at(p, transport).as_array())
          ports += " " + std::string(transport) + "/" + s(port);
      }
      out += std::string(first ? " " : "; ") + name + (ports.empty() ? " off" : ports);
      first = false;
    }
    bool detect = at(protocols, "detect").is_bool() && at(protocols, "detect").as_bool();
    out += std::string("; detection on other ports ") + (detect ? "on" : "off") + "\n";
  }
  if (at(dp, "tables").is_array()) {
    out += "dataplane tables:";
    for (const json::Value& t : at(dp, "tables").as_array())
      out += " " + s(at(t, "table")) + " (" + s(at(t, "rows")) + " rows)";
    out += at(dp, "tables").as_array().empty() ? " none\n" : "\n";
  }
  return out;
}

std::string health(const json::Value& r) {
  const json::Value& dp = at(r, "dataplane");
  std::string out = "control: " + s(at(r, "control")) + "\n";
  if (at(dp, "reachable").is_bool() && at(dp, "reachable").as_bool())
    return out + "dataplane: reachable, " + version_text(at(dp, "version")) + "\n";
  return out + "dataplane: not reachable (" + s(at(dp, "error")) + ")\n";
}

}  // namespace

std::string format_time(int64_t unix_ms) {
  time_t t = static_cast<time_t>(unix_ms / 1000);
  tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

std::string format_result(const std::string& cmd, const json::Value& r) {
  if (cmd == "rules.validate") return s(at(r, "source")) + ": " + s(at(r, "rules")) + " rules, valid\n";
  if (cmd == "rules.load") return rules_load(r);
  if (cmd == "rules.rollback") return rules_rollback(r);
  if (cmd == "rules.show") return rules_show(r);
  if (cmd == "rules.diff") return rules_diff(r);
  if (cmd == "rules.list") return rules_list(r);
  if (cmd == "table.set") return "set " + s(at(r, "key")) + " in " + s(at(r, "table")) + "\n" + table_dataplane_line(r);
  if (cmd == "table.del") {
    bool deleted = at(r, "deleted").is_bool() && at(r, "deleted").as_bool();
    return (deleted ? "deleted " : "not present: ") + s(at(r, "key")) + " in " + s(at(r, "table")) + "\n" +
           table_dataplane_line(r);
  }
  if (cmd == "table.get") return s(at(r, "value")) + "\n";
  if (cmd == "table.bulk") return table_bulk(r);
  if (cmd == "table.list") return table_list(r);
  if (cmd == "account.set") return account_set(r);
  if (cmd == "account.show") return account_show(r);
  if (cmd == "account.del")
    return (is_true(at(r, "deleted")) ? "deleted account " : "not present: account ") + s(at(r, "account")) + "\n" +
           records_line(at(r, "records")) + table_dataplane_line(r);
  if (cmd == "account.load") return account_load(r);
  if (cmd == "account.count") return account_count(r);
  if (cmd == "report.add") return report_add(r);
  if (cmd == "report.list") return report_list(r);
  if (cmd == "report.resolve")
    return "report " + s(at(r, "report")) + " resolved (" + s(at(r, "account")) + ": " + s(at(r, "open_reports")) +
           " open)\n";
  if (cmd == "records.verify") return records_verify(r);
  if (cmd == "records.query") return records_query(r);
  if (cmd == "records.digest") return s(at(r, "digest")) + "\n";
  if (cmd == "stats") return stats_with_control(r);
  if (cmd == "status") return status(r);
  if (cmd == "health") return health(r);
  return json::to_string(r) + "\n";
}

}  // namespace imf::ctl
