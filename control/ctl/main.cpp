// imfctl: the operators' command line for imf-control. Turns arguments into one protocol request
// (docs/control-protocol.md), prints the result. Exit status: 0 success, 1 the command failed,
// 2 usage error, 3 the control socket is unreachable.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "ctl/client.h"
#include "ctl/format.h"
#include "daemon/config.h"
#include "proto/json.h"

namespace {

using imf::json::Value;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;
constexpr const char* kDefaultSocket = "/run/imf/control.sock";

const char* kMainHelp =
    "usage: imfctl [--socket PATH | --config FILE] [--json] [--timeout SEC] COMMAND ...\n"
    "\n"
    "Commands:\n"
    "  rules validate FILE          parse and compile FILE; report errors with file:line and rule id\n"
    "  rules load FILE              compile FILE into the next version and make it active\n"
    "  rules show [VERSION]         rule text of a kept version (default: the active one)\n"
    "  rules diff A B               rules added, removed and changed from version A to B\n"
    "  rules rollback [VERSION]     make a kept version active again (default: the one before)\n"
    "  rules list                   kept versions, and which is active\n"
    "  table set NAME KEY VALUE     set one row\n"
    "  table del NAME KEY           delete one row\n"
    "  table get NAME KEY           print one row's value (exit 1 when absent)\n"
    "  table bulk NAME FILE [--replace]  load key,value CSV rows (--replace: FILE becomes the whole table)\n"
    "  table list                   tables and their sizes\n"
    "  account set ACCOUNT [--markers M,..] [--add-marker M] [--remove-marker M] [--state S]\n"
    "        [--until TIME | --for DURATION] [--rate N/INTERVAL] [--reason TEXT]\n"
    "                               mark an account, apply a measure (recorded)\n"
    "  account show ACCOUNT         stored row, open reports, the dataplane's live row\n"
    "  account del ACCOUNT          remove an account (recorded)\n"
    "  account load FILE [--replace]  load account rows (CSV; --replace: FILE becomes all accounts)\n"
    "  account count                accounts by state\n"
    "  report add ACCOUNT --reason TEXT [--digest HEX]  open a report (complaint)\n"
    "  report list [--open] [--account ACCOUNT]  reports\n"
    "  report resolve ID [--note TEXT]  resolve a report\n"
    "  records verify               check both record chains (control and dataplane)\n"
    "  records query [--account A] [--since TIME] [--limit N] [--pseudonymize]  records, oldest first\n"
    "  records digest FILE [--bytes N]  FILE's message digest, as records carry it (key stays in the daemon)\n"
    "  stats                        the dataplane's counters\n"
    "  status                       control and dataplane status\n"
    "  health                       is the control process up, does the dataplane answer\n"
    "\n"
    "Options:\n"
    "  --socket PATH   control socket (default: `socket` of --config FILE, else of /etc/imf/control.conf\n"
    "                  when readable, else /run/imf/control.sock)\n"
    "  --config FILE   imf-control's configuration file, to find the socket\n"
    "  --json          print the raw JSON result instead of text\n"
    "  --timeout SEC   give up after SEC seconds without a word from the daemon (default 600)\n"
    "  --help          help; also after a command, e.g. `imfctl rules load --help`\n"
    "\n"
    "Exit status: 0 success, 1 the command failed, 2 usage error, 3 control socket unreachable.\n"
    "Progress of long commands goes to stderr.\n";

const char* kRulesHelp =
    "usage: imfctl rules validate FILE\n"
    "       imfctl rules load FILE\n"
    "       imfctl rules show [VERSION]\n"
    "       imfctl rules diff A B\n"
    "       imfctl rules rollback [VERSION]\n"
    "       imfctl rules list\n"
    "Rule file format: config/rules/README.md. A load compiles FILE, stores it as the next version,\n"
    "installs it in the dataplane and marks it active; on any error the active version stays.\n";

const char* kTableHelp =
    "usage: imfctl table set NAME KEY VALUE\n"
    "       imfctl table del NAME KEY\n"
    "       imfctl table get NAME KEY\n"
    "       imfctl table bulk NAME FILE [--replace]\n"
    "       imfctl table list\n"
    "CSV: one key,value row per line; the key runs to the first ',', the value is the rest of the line.\n"
    "Keys are 1-96 bytes, values 0-256 bytes (what the dataplane's tables hold). Each change is stored,\n"
    "then sent to the dataplane; one it does not apply is loaded into it by the next resync.\n";

const char* kAccountHelp =
    "usage: imfctl account set ACCOUNT [--markers M1,M2] [--add-marker M] [--remove-marker M]\n"
    "                      [--state STATE] [--until TIME | --for DURATION] [--rate N/INTERVAL] [--reason TEXT]\n"
    "       imfctl account show ACCOUNT\n"
    "       imfctl account del ACCOUNT\n"
    "       imfctl account load FILE [--replace]\n"
    "       imfctl account count\n"
    "States: none, warned, restricted (at most N messages per INTERVAL), suspended (until a time),\n"
    "shutdown. Every change is recorded (imfctl records query --account ACCOUNT), stored, then sent\n"
    "to the dataplane; one it does not apply is loaded into it by the next resync.\n";

const char* kReportHelp =
    "usage: imfctl report add ACCOUNT --reason TEXT [--digest HEX]\n"
    "       imfctl report list [--open] [--account ACCOUNT]\n"
    "       imfctl report resolve ID [--note TEXT]\n"
    "Reports are complaints about an account. When an account's open reports reach the policy's\n"
    "report_threshold (and each multiple of it), the account goes one step up the ladder.\n";

const char* kRecordsHelp =
    "usage: imfctl records verify\n"
    "       imfctl records query [--account ACCOUNT] [--since TIME] [--limit N] [--pseudonymize]\n"
    "       imfctl records digest FILE [--bytes N]\n"
    "Records are hash-chained JSON lines: the control chain (operator actions, reports) and the\n"
    "dataplane's (verdicts, escalations). verify exits 1 when either chain was altered.\n";

struct Command {
  const char* group;  // "rules", "table", "account", "report", "records" or nullptr for top-level
  const char* name;
  const char* protocol;  // protocol command
  int min_args;
  int max_args;
  const char* help;
  const char* options = "";  // command options it takes, each followed by a space
};

constexpr const char* kGroups[] = {"rules", "table", "account", "report", "records"};

constexpr Command kCommands[] = {
    {"rules", "validate", "rules.validate", 1, 1,
     "usage: imfctl rules validate FILE\nParses and compiles FILE without keeping it. Errors name file:line and rule "
     "id.\n"},
    {"rules", "load", "rules.load", 1, 1,
     "usage: imfctl rules load FILE\nCompiles FILE (progress on stderr), stores it as the next version, installs it "
     "in the\ndataplane and marks it active. When the dataplane is down the version still becomes active\nand is "
     "installed when the dataplane is back.\n"},
    {"rules", "show", "rules.show", 0, 1, "usage: imfctl rules show [VERSION]\nPrints a kept version's rule text.\n"},
    {"rules", "diff", "rules.diff", 2, 2, "usage: imfctl rules diff A B\nRules added (+), removed (-), changed (~).\n"},
    {"rules", "rollback", "rules.rollback", 0, 1,
     "usage: imfctl rules rollback [VERSION]\nMakes VERSION (default: the newest kept version below the active one) "
     "active again.\n"},
    {"rules", "list", "rules.list", 0, 0, "usage: imfctl rules list\nKept versions; * marks the active one.\n"},
    {"table", "set", "table.set", 3, 3, "usage: imfctl table set NAME KEY VALUE\n"},
    {"table", "del", "table.del", 2, 2, "usage: imfctl table del NAME KEY\n"},
    {"table", "get", "table.get", 2, 2, "usage: imfctl table get NAME KEY\nExit status 1 when KEY is absent.\n"},
    {"table", "bulk", "table.bulk", 2, 2,
     "usage: imfctl table bulk NAME FILE [--replace]\nLoads key,value rows from FILE (all or nothing: a bad line "
     "changes nothing).\n--replace makes FILE the table's whole content; otherwise rows are added or updated.\n",
     "--replace "},
    {"table", "list", "table.list", 0, 0, "usage: imfctl table list\n"},
    {"account", "set", "account.set", 1, 1,
     "usage: imfctl account set ACCOUNT [--markers M1,M2] [--add-marker M] [--remove-marker M]\n"
     "                          [--state STATE] [--until TIME | --for DURATION] [--rate N/INTERVAL] [--reason TEXT]\n"
     "Creates ACCOUNT when new. Markers are names of 1-32 characters [a-z0-9_.-]: --markers sets the\n"
     "whole list (\"\" clears it), --add-marker and --remove-marker (repeatable) change it.\n"
     "--state none|warned|restricted|suspended|shutdown applies a measure:\n"
     "  --until TIME (2026-12-01T12:00:00Z, 2026-12-01, unix seconds) or --for DURATION (30m, 2h, 7d)\n"
     "  says when warned, restricted or suspended lapse; without them the policy's expiry applies\n"
     "  (suspended needs one when the policy gives none); shutdown and none take neither.\n"
     "  --rate N/INTERVAL (10/60s, 100/1h): a restricted account's limit (default: the policy's).\n"
     "--reason TEXT (up to 500 bytes) goes into the records. Each change of markers or measure is\n"
     "recorded before it is stored, then sent to the dataplane.\n",
     "--markers --add-marker --remove-marker --state --until --for --rate --reason "},
    {"account", "show", "account.show", 1, 1,
     "usage: imfctl account show ACCOUNT\nThe stored row (markers, state, until, rate), the account's open reports "
     "and, when the\ndataplane answers, its live row (which includes its own escalations and lapses).\nExit status "
     "1 when the account is not stored.\n"},
    {"account", "del", "account.del", 1, 1,
     "usage: imfctl account del ACCOUNT\nRemoves the account (its measure and markers going are recorded) here and "
     "in the dataplane.\n"},
    {"account", "load", "account.load", 1, 1,
     "usage: imfctl account load FILE [--replace]\nLoads account rows from FILE, one "
     "`account,markers,state,until,rate` "
     "line each\n(markers ';'-separated; until in unix seconds; e.g. `alice,verified_publisher;press,,,`).\nAll or "
     "nothing: a bad line changes nothing. --replace makes FILE the whole set of accounts;\notherwise rows are added "
     "or updated. A record of the load and one per changed measure are written.\n",
     "--replace "},
    {"account", "count", "account.count", 0, 0, "usage: imfctl account count\nStored accounts, by state.\n"},
    {"report", "add", "report.add", 1, 1,
     "usage: imfctl report add ACCOUNT --reason TEXT [--digest HEX]\nOpens a report about ACCOUNT. --reason (1-500 "
     "bytes) says what was reported; --digest is the\nmessage digest a reviewer computed with `imfctl records "
     "digest FILE` (64 hex digits).\nReaching the policy's report_threshold of open reports escalates the account one "
     "step.\n",
     "--reason --digest "},
    {"report", "list", "report.list", 0, 0,
     "usage: imfctl report list [--open] [--account ACCOUNT]\nReports, oldest first; --open: only open ones.\n",
     "--open --account "},
    {"report", "resolve", "report.resolve", 1, 1,
     "usage: imfctl report resolve ID [--note TEXT]\nResolves an open report (recorded), with an optional note of up "
     "to 500 bytes.\n",
     "--note "},
    {"records", "verify", "records.verify", 0, 0,
     "usage: imfctl records verify\nChecks the control chain and the dataplane's: every record present, in order, "
     "unaltered.\nPrints each problem (file:line: what is wrong). Exit status 1 when there is any.\n"},
    {"records", "query", "records.query", 0, 0,
     "usage: imfctl records query [--account ACCOUNT] [--since TIME] [--limit N] [--pseudonymize]\nRecords of both "
     "chains merged by time, one JSON object per line. --since TIME: 2026-12-01,\n2026-12-01T12:00:00Z, unix seconds "
     "or relative (-2h, -7d). --limit N: the newest N matches\n(default 1000). --pseudonymize replaces every account "
     "by a keyed pseudonym (p-...), for export.\n",
     "--account --since --limit --pseudonymize "},
    {"records", "digest", "records.digest", 1, 1,
     "usage: imfctl records digest FILE [--bytes N]\nThe message digest (HMAC-SHA256 under the appliance's digest "
     "key, which stays in the\ndaemon) of FILE's bytes, to compare with a record's \"digest\". The dataplane digests "
     "the\nfirst digest_bytes of a body of body_bytes: give --bytes N to digest only the first N bytes.\n",
     "--bytes "},
    {nullptr, "stats", "stats", 0, 0, "usage: imfctl stats\nThe dataplane's counters, per port, lcore and rule.\n"},
    {nullptr, "status", "status", 0, 0,
     "usage: imfctl status\nControl side (uptime, active version, last load) and "
     "dataplane status.\n"},
    {nullptr, "health", "health", 0, 0,
     "usage: imfctl health\nExit 0 while the control process answers; says whether the dataplane does.\n"},
};

int usage_error(const std::string& what, const char* help) {
  std::fprintf(stderr, "imfctl: %s\n%s", what.c_str(), help);
  return kExitUsage;
}

int file_error(const std::string& what) {
  std::fprintf(stderr, "imfctl: %s\n", what.c_str());
  return kExitUsage;
}

bool read_file(const std::string& path, std::string* out, std::string* err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *err = path + ": " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    *err = path + ": read error";
    return false;
  }
  *out = ss.str();
  return true;
}

bool parse_version(const std::string& s, int64_t* v) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto r = std::from_chars(s.data(), s.data() + s.size(), *v);
  return r.ec == std::errc() && *v > 0;
}

// Splits "m1,m2" (empty: no markers).
std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  size_t start = 0;
  for (;;) {
    size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Value string_array(const std::vector<std::string>& v) {
  imf::json::Array a;
  for (const std::string& s : v) a.emplace_back(s);
  return a;
}

// Options of single commands, as given.
struct CommandOptions {
  std::vector<std::string> given;             // option names, in order, for the per-command check
  std::map<std::string, std::string> values;  // the last value of each valued option
  std::vector<std::string> add_markers, remove_markers;
  bool has(const std::string& name) const { return values.count(name) != 0; }
};

// Options that take a value; the rest are flags.
constexpr const char* kValued[] = {"--markers", "--add-marker", "--remove-marker", "--state",  "--until",
                                   "--for",     "--rate",       "--reason",        "--digest", "--account",
                                   "--note",    "--since",      "--limit",         "--bytes"};
constexpr const char* kFlags[] = {"--replace", "--open", "--pseudonymize"};

int run(int argc, char** argv) {
  std::vector<std::string> pos;
  std::string socket, config;
  bool json_out = false, help = false, options_done = false;
  CommandOptions opts;
  int64_t timeout_s = 600;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    bool valued = std::find(std::begin(kValued), std::end(kValued), a) != std::end(kValued);
    bool flag = std::find(std::begin(kFlags), std::end(kFlags), a) != std::end(kFlags);
    if (options_done || a.empty() || a[0] != '-' || a == "-") {
      pos.push_back(a);
    } else if (a == "--") {
      options_done = true;
    } else if (a == "--help" || a == "-h") {
      help = true;
    } else if (a == "--json") {
      json_out = true;
    } else if (flag) {
      opts.given.push_back(a);
      opts.values[a] = "";
    } else if (valued) {
      std::string v;
      if (!value(&v)) return usage_error(a + " needs a value", kMainHelp);
      opts.given.push_back(a);
      if (a == "--add-marker") opts.add_markers.push_back(v);
      if (a == "--remove-marker") opts.remove_markers.push_back(v);
      opts.values[a] = std::move(v);
    } else if (a == "--socket") {
      if (!value(&socket)) return usage_error("--socket needs a PATH", kMainHelp);
    } else if (a == "--config") {
      if (!value(&config)) return usage_error("--config needs a FILE", kMainHelp);
    } else if (a == "--timeout") {
      std::string t;
      if (!value(&t) || !parse_version(t, &timeout_s))
        return usage_error("--timeout needs a number of seconds", kMainHelp);
    } else {
      return usage_error("unknown option '" + a + "'", kMainHelp);
    }
  }

  // Find the command: "rules load", "table bulk", "stats", ...
  const Command* cmd = nullptr;
  size_t consumed = 0;
  if (!pos.empty()) {
    bool is_group = std::find(std::begin(kGroups), std::end(kGroups), pos[0]) != std::end(kGroups);
    for (const Command& c : kCommands) {
      if (is_group && c.group && pos[0] == c.group && pos.size() > 1 && pos[1] == c.name) {
        cmd = &c;
        consumed = 2;
      } else if (!is_group && !c.group && pos[0] == c.name) {
        cmd = &c;
        consumed = 1;
      }
    }
    if (!cmd && is_group) {
      const char* group_help = pos[0] == "rules"     ? kRulesHelp
                               : pos[0] == "table"   ? kTableHelp
                               : pos[0] == "account" ? kAccountHelp
                               : pos[0] == "report"  ? kReportHelp
                                                     : kRecordsHelp;
      if (help && pos.size() == 1) {
        std::fputs(group_help, stdout);
        return kExitOk;
      }
      return usage_error(pos.size() == 1 ? "'" + pos[0] + "' needs a subcommand"
                                         : "unknown subcommand '" + pos[0] + " " + pos[1] + "'",
                         group_help);
    }
    if (!cmd) return usage_error("unknown command '" + pos[0] + "'", kMainHelp);
  }
  if (help) {
    std::fputs(cmd ? cmd->help : kMainHelp, stdout);
    return kExitOk;
  }
  if (!cmd) return usage_error("no command given", kMainHelp);
  std::vector<std::string> args(pos.begin() + static_cast<long>(consumed), pos.end());
  if (static_cast<int>(args.size()) < cmd->min_args || static_cast<int>(args.size()) > cmd->max_args)
    return usage_error("wrong number of arguments", cmd->help);
  std::string where = cmd->group ? std::string(cmd->group) + " " + cmd->name : std::string(cmd->name);
  for (const std::string& o : opts.given) {
    if (std::string(cmd->options).find(o + " ") == std::string::npos)
      return usage_error(o + " does not go with '" + where + "'", cmd->help);
  }

  // Translate the arguments into the request's args.
  std::string p = cmd->protocol;
  Value req = imf::json::Object{};
  std::string err;
  if (p == "rules.validate" || p == "rules.load") {
    std::string text;
    if (!read_file(args[0], &text, &err)) return file_error("cannot read rule file " + err);
    req.set("text", std::move(text));
    req.set("source", args[0]);
  } else if (p == "rules.show" || p == "rules.rollback") {
    int64_t v = 0;
    if (!args.empty()) {
      if (!parse_version(args[0], &v)) return usage_error("'" + args[0] + "' is not a version number", cmd->help);
      req.set("version", v);
    }
  } else if (p == "rules.diff") {
    int64_t a = 0, b = 0;
    if (!parse_version(args[0], &a) || !parse_version(args[1], &b))
      return usage_error("versions are numbers (see `imfctl rules list`)", cmd->help);
    req.set("from", a);
    req.set("to", b);
  } else if (p == "table.set" || p == "table.del" || p == "table.get") {
    req.set("table", args[0]);
    req.set("key", args[1]);
    if (p == "table.set") req.set("value", args[2]);
  } else if (p == "table.bulk") {
    std::string text;
    if (!read_file(args[1], &text, &err)) return file_error("cannot read CSV file " + err);
    req.set("table", args[0]);
    req.set("text", std::move(text));
    req.set("source", args[1]);
    if (opts.has("--replace")) req.set("replace", true);
  } else if (p == "account.set") {
    if (opts.has("--until") && opts.has("--for")) return usage_error("--until and --for: give one of them", cmd->help);
    req.set("account", args[0]);
    if (opts.has("--markers")) req.set("markers", string_array(split_commas(opts.values["--markers"])));
    if (!opts.add_markers.empty()) req.set("add_markers", string_array(opts.add_markers));
    if (!opts.remove_markers.empty()) req.set("remove_markers", string_array(opts.remove_markers));
    for (const char* o : {"--state", "--until", "--for", "--rate", "--reason"}) {
      if (opts.has(o)) req.set(o + 2, opts.values[o]);
    }
  } else if (p == "account.show" || p == "account.del") {
    req.set("account", args[0]);
  } else if (p == "account.load") {
    std::string text;
    if (!read_file(args[0], &text, &err)) return file_error("cannot read accounts file " + err);
    req.set("text", std::move(text));
    req.set("source", args[0]);
    if (opts.has("--replace")) req.set("replace", true);
  } else if (p == "report.add") {
    if (!opts.has("--reason")) return usage_error("--reason is required", cmd->help);
    req.set("account", args[0]);
    req.set("reason", opts.values["--reason"]);
    if (opts.has("--digest")) req.set("digest", opts.values["--digest"]);
  } else if (p == "report.list") {
    if (opts.has("--open")) req.set("open", true);
    if (opts.has("--account")) req.set("account", opts.values["--account"]);
  } else if (p == "report.resolve") {
    int64_t id = 0;
    if (!parse_version(args[0], &id)) return usage_error("'" + args[0] + "' is not a report number", cmd->help);
    req.set("report", id);
    if (opts.has("--note")) req.set("note", opts.values["--note"]);
  } else if (p == "records.query") {
    if (opts.has("--account")) req.set("account", opts.values["--account"]);
    if (opts.has("--since")) req.set("since", opts.values["--since"]);
    if (opts.has("--limit")) {
      int64_t n = 0;
      if (!parse_version(opts.values["--limit"], &n))
        return usage_error("--limit needs a number (1 or more)", cmd->help);
      req.set("limit", n);
    }
    if (opts.has("--pseudonymize")) req.set("pseudonymize", true);
  } else if (p == "records.digest") {
    std::string text;
    // The content only travels to the daemon: errors never show it.
    if (!read_file(args[0], &text, &err)) return file_error("cannot read " + err);
    req.set("text", std::move(text));
    req.set("source", args[0]);
    if (opts.has("--bytes")) {
      int64_t n = 0;
      if (opts.values["--bytes"] != "0" && !parse_version(opts.values["--bytes"], &n))
        return usage_error("--bytes needs a number of bytes", cmd->help);
      req.set("bytes", n);
    }
  }

  if (socket.empty()) {
    std::string from = config;
    if (from.empty() && ::access(imf::control::kDefaultConfigPath, R_OK) == 0) from = imf::control::kDefaultConfigPath;
    if (from.empty()) {
      socket = kDefaultSocket;
    } else {
      auto c = imf::control::load_config(from);
      if (!c) return usage_error(c.error(), kMainHelp);
      socket = c->socket;
    }
  }

  auto progress = [](const std::string& text) { std::fprintf(stderr, "imfctl: %s\n", text.c_str()); };
  imf::ctl::Reply reply = imf::ctl::call(socket, p, std::move(req), progress, std::chrono::seconds(timeout_s));
  switch (reply.kind) {
    case imf::ctl::Reply::Kind::kUnreachable:
      std::fprintf(stderr, "imfctl: %s\n", reply.error.c_str());
      return kExitUnreachable;
    case imf::ctl::Reply::Kind::kError: std::fprintf(stderr, "imfctl: %s\n", reply.error.c_str()); return kExitFailed;
    case imf::ctl::Reply::Kind::kOk: break;
  }
  if (json_out) {
    std::printf("%s\n", imf::json::to_string(reply.result).c_str());
  }
  if (p == "table.get") {
    const Value* found = reply.result.find("found");
    if (!found || !found->is_bool() || !found->as_bool()) {
      if (!json_out) std::fprintf(stderr, "imfctl: key '%s' is not in table '%s'\n", args[1].c_str(), args[0].c_str());
      return kExitFailed;
    }
  }
  if (!json_out) std::fputs(imf::ctl::format_result(p, reply.result).c_str(), stdout);
  // Printed above, and still a failure:
  if (p == "account.show") {
    const Value* found = reply.result.find("found");
    if (!found || !found->is_bool() || !found->as_bool()) {
      std::fprintf(stderr, "imfctl: account '%s' is not stored\n", args[0].c_str());
      return kExitFailed;
    }
  }
  if (p == "records.verify") {
    const Value* ok = reply.result.find("ok");
    if (!ok || !ok->is_bool() || !ok->as_bool()) {
      std::fprintf(stderr, "imfctl: the records were altered or are incomplete (problems above)\n");
      return kExitFailed;
    }
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // only an impossible state or out of memory gets here
    std::fprintf(stderr, "imfctl: internal error: %s\n", e.what());
    return kExitFailed;
  }
}
