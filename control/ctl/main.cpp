// imfctl: the operators' command line for imf-control. Turns arguments into one protocol request
// (docs/control-protocol.md), prints the result. Exit status: 0 success, 1 the command failed,
// 2 usage error, 3 the control socket is unreachable.
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
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

struct Command {
  const char* group;  // "rules", "table" or nullptr for top-level
  const char* name;
  const char* protocol;  // protocol command
  int min_args;
  int max_args;
  const char* help;
};

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
     "changes nothing).\n--replace makes FILE the table's whole content; otherwise rows are added or updated.\n"},
    {"table", "list", "table.list", 0, 0, "usage: imfctl table list\n"},
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

int run(int argc, char** argv) {
  std::vector<std::string> pos;
  std::string socket, config;
  bool json_out = false, help = false, replace = false, options_done = false;
  int64_t timeout_s = 600;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    if (options_done || a.empty() || a[0] != '-' || a == "-") {
      pos.push_back(a);
    } else if (a == "--") {
      options_done = true;
    } else if (a == "--help" || a == "-h") {
      help = true;
    } else if (a == "--json") {
      json_out = true;
    } else if (a == "--replace") {
      replace = true;
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
    bool is_group = pos[0] == "rules" || pos[0] == "table";
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
      const char* group_help = pos[0] == "rules" ? kRulesHelp : kTableHelp;
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
  if (replace && std::string(cmd->protocol) != "table.bulk")
    return usage_error("--replace only goes with 'table bulk'", cmd->help);

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
    if (replace) req.set("replace", true);
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
