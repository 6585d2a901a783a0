#include "daemon/dispatch.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <optional>

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

Result<std::optional<uint64_t>> version_arg(const std::string& cmd, const json::Value& args, const char* name) {
  auto v = proto::get_int(args, name);
  if (!v) return std::optional<uint64_t>{};
  if (*v < 1) return make_error(cmd + ": args." + name + " must be a version number (1 or more)");
  return std::optional<uint64_t>(static_cast<uint64_t>(*v));
}

}  // namespace

const char* command_names() {
  return "rules.validate, rules.load, rules.show, rules.diff, rules.rollback, rules.list, table.set, table.del, "
         "table.get, table.bulk, table.list, stats, status, health";
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
