#include "daemon/dispatch.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <utility>
#include <vector>

#include "proto/protocol.h"

namespace imf::control {

namespace {

using json::Type;
using proto::Field;

constexpr Field kText{"text", Type::kString, false};
constexpr Field kPath{"path", Type::kString, false};
constexpr Field kSource{"source", Type::kString, false};
constexpr Field kVersionOpt{"version", Type::kInt, false};
constexpr Field kTable{"table", Type::kString, true};
constexpr Field kKey{"key", Type::kString, true};
constexpr Field kAccount{"account", Type::kString, true};

struct Input {
  const std::string* borrowed = nullptr;  // args.text, not copied: it may be megabytes
  std::string owned;                      // the file read for args.path
  std::string source;
  const std::string& text() const { return borrowed ? *borrowed : owned; }
};

// Reads a file for a root peer's args.path.
Result<std::string> read_file(const std::string& path, uint64_t limit) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(path + ": not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > limit) {
    ::close(fd);
    return make_error(path + ": larger than max_request_bytes (" + std::to_string(limit) + ")");
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return out;
}

// args.text (with args.source naming it) or, from root only, args.path read by the daemon.
Result<Input> text_or_path(const std::string& cmd, const json::Value& args, const Peer& peer, uint64_t limit,
                           const char* default_source) {
  const std::string* text = proto::get_string(args, "text");
  const std::string* path = proto::get_string(args, "path");
  const std::string* source = proto::get_string(args, "source");
  if ((text != nullptr) == (path != nullptr)) return make_error(cmd + ": give exactly one of args.text and args.path");
  Input in;
  if (text) {
    in.borrowed = text;
    in.source = source ? *source : default_source;
    return in;
  }
  // The daemon runs as root: reading a path for anyone else would let them read what they cannot.
  if (peer.uid != 0)
    return make_error(cmd + ": args.path is read by the daemon and accepted from root only (you are uid " +
                      std::to_string(peer.uid) + "); send the file's content in args.text");
  if (path->empty() || path->front() != '/') return make_error(cmd + ": args.path must be absolute");
  auto content = read_file(*path, limit);
  if (!content) return make_error(content.error());
  in.owned = std::move(content.value());
  in.source = source ? *source : *path;
  return in;
}

// args.NAME as a list of strings (absent: nullopt).
Result<std::optional<std::vector<std::string>>> string_list(const std::string& cmd, const json::Value& args,
                                                            const char* name) {
  const json::Value* v = args.find(name);
  if (!v) return std::optional<std::vector<std::string>>{};
  std::vector<std::string> out;
  for (const json::Value& e : v->as_array()) {
    if (!e.is_string()) return make_error(cmd + ": args." + name + " must be an array of strings");
    out.push_back(e.as_string());
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

std::optional<std::string> opt_string(const json::Value& args, const char* name) {
  const std::string* s = proto::get_string(args, name);
  return s ? std::optional<std::string>(*s) : std::nullopt;
}

Result<std::optional<uint64_t>> version_arg(const std::string& cmd, const json::Value& args, const char* name) {
  auto v = proto::get_int(args, name);
  if (!v) return std::optional<uint64_t>{};
  if (*v < 1) return make_error(cmd + ": args." + name + " must be a version number (1 or more)");
  return std::optional<uint64_t>(static_cast<uint64_t>(*v));
}

}  // namespace

const char* command_names() {
  return "rules.validate, rules.load, rules.show, rules.diff, rules.rollback, rules.list, table.set, table.del, "
         "table.get, table.bulk, table.list, account.set, account.show, account.del, account.load, account.count, "
         "report.add, report.list, report.resolve, records.verify, records.query, records.digest, stats, status, "
         "health";
}

std::string handle_request(Control& control, std::string_view line, const Peer& peer,
                           const std::function<void(const std::string&)>& emit) {
  json::Value id;
  auto req = proto::parse_request(line, &id);
  if (!req) return proto::error_line(id, req.error());
  const std::string& cmd = req->cmd;
  const json::Value& args = req->args;
  uint64_t limit = control.config().max_request_bytes;
  Progress progress = [&](const std::string& text) { emit(proto::progress_line(id, text)); };
  auto check = [&](std::initializer_list<Field> fields) { return proto::check_args(cmd, args, fields); };
  auto str = [&](const char* name) { return *proto::get_string(args, name); };

  Result<json::Value> r = make_error("");
  if (cmd == "rules.validate" || cmd == "rules.load") {
    if (Status s = check({kText, kPath, kSource}); !s) return proto::error_line(id, s.error());
    auto in = text_or_path(cmd, args, peer, limit, "rules");
    if (!in) return proto::error_line(id, in.error());
    r = cmd == "rules.load" ? control.rules_load(in->text(), in->source, progress)
                            : control.rules_validate(in->text(), in->source);
  } else if (cmd == "rules.show" || cmd == "rules.rollback") {
    if (Status s = check({kVersionOpt}); !s) return proto::error_line(id, s.error());
    auto v = version_arg(cmd, args, "version");
    if (!v) return proto::error_line(id, v.error());
    r = cmd == "rules.show" ? control.rules_show(v.value()) : control.rules_rollback(v.value(), progress);
  } else if (cmd == "rules.diff") {
    if (Status s = check({{"from", Type::kInt, true}, {"to", Type::kInt, true}}); !s)
      return proto::error_line(id, s.error());
    auto from = version_arg(cmd, args, "from");
    if (!from) return proto::error_line(id, from.error());
    auto to = version_arg(cmd, args, "to");
    if (!to) return proto::error_line(id, to.error());
    r = control.rules_diff(*from.value(), *to.value());
  } else if (cmd == "rules.list") {
    if (Status s = check({}); !s) return proto::error_line(id, s.error());
    r = control.rules_list();
  } else if (cmd == "table.set") {
    if (Status s = check({kTable, kKey, {"value", Type::kString, true}}); !s) return proto::error_line(id, s.error());
    r = control.table_set(str("table"), str("key"), str("value"));
  } else if (cmd == "table.del" || cmd == "table.get") {
    if (Status s = check({kTable, kKey}); !s) return proto::error_line(id, s.error());
    r = cmd == "table.del" ? control.table_del(str("table"), str("key")) : control.table_get(str("table"), str("key"));
  } else if (cmd == "table.bulk") {
    if (Status s = check({kTable, kText, kPath, kSource, {"replace", Type::kBool, false}}); !s)
      return proto::error_line(id, s.error());
    auto in = text_or_path(cmd, args, peer, limit, "csv");
    if (!in) return proto::error_line(id, in.error());
    r = control.table_bulk(str("table"), in->text(), in->source, proto::get_bool(args, "replace", false));
  } else if (cmd == "table.list") {
    if (Status s = check({}); !s) return proto::error_line(id, s.error());
    r = control.table_list();
  } else if (cmd == "account.set") {
    if (Status s = check({kAccount,
                          {"markers", Type::kArray, false},
                          {"add_markers", Type::kArray, false},
                          {"remove_markers", Type::kArray, false},
                          {"state", Type::kString, false},
                          {"until", Type::kString, false},
                          {"for", Type::kString, false},
                          {"rate", Type::kString, false},
                          {"reason", Type::kString, false}});
        !s)
      return proto::error_line(id, s.error());
    AccountSetArgs a;
    a.account = str("account");
    for (auto [name, out] :
         {std::pair{"add_markers", &a.add_markers}, std::pair{"remove_markers", &a.remove_markers}}) {
      auto l = string_list(cmd, args, name);
      if (!l) return proto::error_line(id, l.error());
      if (l.value()) *out = std::move(*l.value());
    }
    auto markers = string_list(cmd, args, "markers");
    if (!markers) return proto::error_line(id, markers.error());
    a.markers = std::move(markers.value());
    a.state = opt_string(args, "state");
    a.until = opt_string(args, "until");
    a.for_duration = opt_string(args, "for");
    a.rate = opt_string(args, "rate");
    a.reason = opt_string(args, "reason");
    r = control.account_set(a, peer.uid);
  } else if (cmd == "account.show" || cmd == "account.del") {
    if (Status s = check({kAccount}); !s) return proto::error_line(id, s.error());
    r = cmd == "account.show" ? control.account_show(str("account")) : control.account_del(str("account"), peer.uid);
  } else if (cmd == "account.load") {
    if (Status s = check({kText, kPath, kSource, {"replace", Type::kBool, false}}); !s)
      return proto::error_line(id, s.error());
    auto in = text_or_path(cmd, args, peer, limit, "accounts.csv");
    if (!in) return proto::error_line(id, in.error());
    r = control.account_load(in->text(), in->source, proto::get_bool(args, "replace", false), peer.uid, progress);
  } else if (cmd == "account.count" || cmd == "records.verify") {
    if (Status s = check({}); !s) return proto::error_line(id, s.error());
    r = cmd == "account.count" ? control.account_count() : control.records_verify();
  } else if (cmd == "report.add") {
    if (Status s = check({kAccount, {"reason", Type::kString, true}, {"digest", Type::kString, false}}); !s)
      return proto::error_line(id, s.error());
    r = control.report_add(str("account"), str("reason"), opt_string(args, "digest"), peer.uid);
  } else if (cmd == "report.list") {
    if (Status s = check({{"open", Type::kBool, false}, {"account", Type::kString, false}}); !s)
      return proto::error_line(id, s.error());
    r = control.report_list(proto::get_bool(args, "open", false), opt_string(args, "account"));
  } else if (cmd == "report.resolve") {
    if (Status s = check({{"report", Type::kInt, true}, {"note", Type::kString, false}}); !s)
      return proto::error_line(id, s.error());
    int64_t n = *proto::get_int(args, "report");
    if (n < 1) return proto::error_line(id, cmd + ": args.report must be a report number (1 or more)");
    r = control.report_resolve(static_cast<uint64_t>(n), opt_string(args, "note").value_or(""), peer.uid);
  } else if (cmd == "records.query") {
    if (Status s = check({{"account", Type::kString, false},
                          {"since", Type::kString, false},
                          {"limit", Type::kInt, false},
                          {"pseudonymize", Type::kBool, false}});
        !s)
      return proto::error_line(id, s.error());
    RecordsQueryArgs q;
    q.account = opt_string(args, "account");
    q.since = opt_string(args, "since");
    q.limit = proto::get_int(args, "limit");
    q.pseudonymize = proto::get_bool(args, "pseudonymize", false);
    r = control.records_query(q);
  } else if (cmd == "records.digest") {
    if (Status s = check({kText, kPath, kSource, {"bytes", Type::kInt, false}}); !s)
      return proto::error_line(id, s.error());
    auto in = text_or_path(cmd, args, peer, limit, "file");
    if (!in) return proto::error_line(id, in.error());
    r = control.records_digest(in->text(), proto::get_int(args, "bytes"));
  } else if (cmd == "stats" || cmd == "status" || cmd == "health") {
    if (Status s = check({}); !s) return proto::error_line(id, s.error());
    r = cmd == "stats" ? control.stats() : cmd == "status" ? control.status() : control.health();
  } else {
    return proto::error_line(id, "unknown command '" + cmd + "' (known: " + command_names() + ")");
  }
  if (!r) return proto::error_line(id, r.error());
  return proto::ok_line(id, std::move(r.value()));
}

}  // namespace imf::control
