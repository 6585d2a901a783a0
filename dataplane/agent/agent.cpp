#include "agent/agent.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "proto/json.h"
#include "rules/artifact.h"

namespace imf::dp::agent {

namespace {

constexpr size_t kMaxRequest = 64 * 1024;
constexpr int kMaxClients = 16;

std::string json_string(const std::string& s) {
  std::string out;
  json::write_string(out, s);
  return out;
}

// "" when every member of `req` is "cmd" or in `allowed`, else the error naming the first other.
std::string unknown_member(const json::Value& req, const std::string& cmd, std::initializer_list<const char*> allowed) {
  for (const auto& [k, v] : req.as_object()) {
    bool ok = k == "cmd";
    for (const char* a : allowed) ok = ok || k == a;
    if (!ok) return "unknown member '" + k + "' for cmd '" + cmd + "'";
  }
  return "";
}

const std::string* string_member(const json::Value& req, const char* k) {
  const json::Value* v = req.find(k);
  return v && v->is_string() ? &v->as_string() : nullptr;
}

// Table and account requests take exactly the members they name, all strings: "" when `req` has
// them, else the error naming what is wrong.
std::string only_strings(const json::Value& req, const std::string& cmd, std::initializer_list<const char*> need) {
  if (std::string e = unknown_member(req, cmd, need); !e.empty()) return e;
  for (const char* a : need) {
    if (!string_member(req, a)) return cmd + " needs string member '" + a + "'";
  }
  return "";
}

std::string error_line(const std::string& e) { return "{\"ok\":false,\"error\":" + json_string(e) + "}\n"; }

std::string times_json(const InstallTimes& t) {
  char b[160];
  std::snprintf(b, sizeof(b), "{\"version\":%lu,\"unix_ms\":%ld,\"load_ms\":%.3f,\"swap_ms\":%.3f}", t.version,
                t.unix_ms, t.load_ms, t.swap_ms);
  return b;
}

}  // namespace

Result<std::unique_ptr<Agent>> Agent::listen(const std::string& path, RuleInstaller& installer, table::TableSet& tables,
                                             policy::AccountTable& accounts, std::function<std::string()> stats_json,
                                             std::string protocols_json) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return make_error("agent socket path '" + path + "' is empty or too long");
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error("agent socket: " + std::string(std::strerror(errno)));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  ::unlink(path.c_str());  // a stale socket of an earlier run
  // Only root (the control process) may install rules: 0600.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::umask(old);
  if (rc != 0 || ::listen(fd, 8) != 0) {
    std::string e = std::strerror(errno);
    ::close(fd);
    return make_error("agent socket " + path + ": " + e);
  }
  return std::unique_ptr<Agent>(
      new Agent(fd, path, installer, tables, accounts, std::move(stats_json), std::move(protocols_json)));
}

Agent::~Agent() { stop(); }

void Agent::start() {
  thread_ = std::thread([this] { run(); });
}

void Agent::stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    ::unlink(path_.c_str());
    listen_fd_ = -1;
  }
}

std::string Agent::handle(const std::string& line) {
  auto parsed = json::parse(line);
  if (!parsed) return error_line(parsed.error());
  const json::Value& req = parsed.value();
  if (!req.is_object()) return error_line("request is not a JSON object");
  const json::Value* cmd_v = req.find("cmd");
  if (!cmd_v || !cmd_v->is_string()) return error_line("missing string member 'cmd'");
  const std::string& cmd = cmd_v->as_string();
  auto only = [&](std::initializer_list<const char*> allowed) { return unknown_member(req, cmd, allowed); };
  if (cmd == "install") {
    if (auto e = only({"version", "artifact"}); !e.empty()) return error_line(e);
    const json::Value* v = req.find("version");
    const json::Value* a = req.find("artifact");
    if (!v || !a) return error_line("install needs 'version' and 'artifact'");
    if (!v->is_int() || v->as_int() <= 0) return error_line("'version' must be a positive integer");
    if (!a->is_string()) return error_line("'artifact' must be a path");
    auto version = static_cast<uint64_t>(v->as_int());
    auto art = rules::read_artifact(a->as_string());
    if (!art) return error_line(art.error());
    if (art->version != version) {
      return error_line(a->as_string() + " holds version " + std::to_string(art->version) + ", not " +
                        std::to_string(version));
    }
    auto t = installer_.install(art->compiled, version);
    if (!t) return error_line(t.error());
    char b[160];
    std::snprintf(b, sizeof(b), "{\"ok\":true,\"version\":%lu,\"load_ms\":%.3f,\"swap_ms\":%.3f}\n", version,
                  t->load_ms, t->swap_ms);
    return b;
  }
  if (cmd == "status") {
    if (auto e = only({}); !e.empty()) return error_line(e);
    auto up = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    char b[96];
    std::snprintf(b, sizeof(b), "\"uptime_s\":%.1f,\"generation_bytes\":%zu", up, installer_.generation_bytes());
    std::string tables = ",\"tables\":[";
    for (const auto& [name, rows] : tables_.sizes()) {
      if (tables.back() != '[') tables += ',';
      tables += "{\"table\":" + json_string(name) + ",\"rows\":" + std::to_string(rows) + "}";
    }
    std::string acc = ",\"accounts\":{\"rows\":" + std::to_string(accounts_.size()) +
                      ",\"capacity\":" + std::to_string(accounts_.capacity()) +
                      ",\"memory_bytes\":" + std::to_string(accounts_.memory_bytes()) + ",\"markers\":[";
    bool first = true;
    for (const std::string& m : accounts_.markers().names_of(~0ull)) {
      acc += first ? "" : ",";
      acc += json_string(m);
      first = false;
    }
    return "{\"ok\":true,\"version\":" + std::to_string(installer_.version()) + "," + b +
           ",\"last_install\":" + times_json(installer_.last_install()) + tables + "]" + acc +
           "]},\"protocols\":" + protocols_json_ + "}\n";
  }
  if (cmd.rfind("account", 0) == 0) return handle_account(cmd, req);
  if (cmd == "stats") {
    if (auto e = only({}); !e.empty()) return error_line(e);
    std::string s = stats_json_();  // an object: splice "ok" and the version in front
    return "{\"ok\":true,\"version\":" + std::to_string(installer_.version()) + "," + s.substr(1);
  }
  if (cmd.rfind("table.", 0) == 0) return handle_table(cmd, req);
  return error_line("unknown cmd '" + cmd +
                    "' (install, status, stats, table.load|set|del|get, accounts.load, account.set|del|get)");
}

// Account rows travel as the control process's CSV row text (control/policy/policy_config.h).
std::string Agent::handle_account(const std::string& cmd, const json::Value& req) {
  auto str = [&](const char* k) { return string_member(req, k); };
  auto check_members = [&](std::initializer_list<const char*> need) { return only_strings(req, cmd, need); };
  if (cmd == "accounts.load") {
    if (auto e = check_members({"path"}); !e.empty()) return error_line(e);
    auto t0 = std::chrono::steady_clock::now();
    auto n = accounts_.load(*str("path"));
    if (!n) return error_line(n.error());
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    char b[80];
    std::snprintf(b, sizeof(b), "{\"ok\":true,\"rows\":%u,\"ms\":%.1f}\n", n.value(), ms);
    return b;
  }
  if (cmd == "account.set") {
    if (auto e = check_members({"row"}); !e.empty()) return error_line(e);
    auto row = imf::policy::parse_account_row(*str("row"));
    if (!row) return error_line(row.error());
    if (auto st = accounts_.set(row.value()); !st) return error_line(st.error());
    return "{\"ok\":true}\n";
  }
  if (cmd == "account.del") {
    if (auto e = check_members({"account"}); !e.empty()) return error_line(e);
    return std::string("{\"ok\":true,\"deleted\":") + (accounts_.del(*str("account")) ? "true" : "false") + "}\n";
  }
  if (cmd == "account.get") {
    if (auto e = check_members({"account"}); !e.empty()) return error_line(e);
    auto row = accounts_.get(*str("account"));
    if (!row) return "{\"ok\":true,\"row\":null}\n";
    return "{\"ok\":true,\"row\":" + json_string(imf::policy::format_account_row(row.value())) + "}\n";
  }
  return error_line("unknown cmd '" + cmd + "' (accounts.load, account.set, account.del, account.get)");
}

std::string Agent::handle_table(const std::string& cmd, const json::Value& req) {
  auto str = [&](const char* k) { return string_member(req, k); };
  auto check_members = [&](std::initializer_list<const char*> need) { return only_strings(req, cmd, need); };
  auto t0 = std::chrono::steady_clock::now();
  if (cmd == "table.load") {
    if (auto e = check_members({"table", "path"}); !e.empty()) return error_line(e);
    auto n = tables_.load(*str("table"), *str("path"));
    if (!n) return error_line(n.error());
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    char b[64];
    std::snprintf(b, sizeof(b), ",\"rows\":%u,\"ms\":%.1f}\n", n.value(), ms);
    return "{\"ok\":true,\"table\":" + json_string(*str("table")) + b;
  }
  if (cmd == "table.set") {
    if (auto e = check_members({"table", "key", "value"}); !e.empty()) return error_line(e);
    if (auto st = tables_.set(*str("table"), *str("key"), *str("value")); !st) return error_line(st.error());
    return "{\"ok\":true}\n";
  }
  if (cmd == "table.del") {
    if (auto e = check_members({"table", "key"}); !e.empty()) return error_line(e);
    auto d = tables_.del(*str("table"), *str("key"));
    if (!d) return error_line(d.error());
    return std::string("{\"ok\":true,\"deleted\":") + (d.value() ? "true" : "false") + "}\n";
  }
  if (cmd == "table.get") {
    if (auto e = check_members({"table", "key"}); !e.empty()) return error_line(e);
    const table::KvTable* t = tables_.find(*str("table"));
    if (!t) return error_line("no table '" + *str("table") + "'");
    const table::Value* v = t->lookup(*str("key"));
    if (!v) return "{\"ok\":true,\"found\":false}\n";
    return "{\"ok\":true,\"found\":true,\"value\":" + json_string(std::string(v->data, v->len)) + "}\n";
  }
  return error_line("unknown cmd '" + cmd + "' (table.load, table.set, table.del, table.get)");
}

void Agent::run() {
  struct Client {
    int fd;
    std::string buf;
  };
  std::vector<Client> clients;
  while (!stop_.load()) {
    std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
    for (const Client& c : clients) fds.push_back({c.fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
    if ((fds[0].revents & POLLIN) && clients.size() < kMaxClients) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) clients.push_back({c, {}});
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Client& c = clients[i - 1];
      char buf[4096];
      ssize_t n = ::read(c.fd, buf, sizeof(buf));
      bool drop = n <= 0;
      if (n > 0) c.buf.append(buf, static_cast<size_t>(n));
      size_t nl;
      while (!drop && (nl = c.buf.find('\n')) != std::string::npos) {
        std::string resp = handle(c.buf.substr(0, nl));
        c.buf.erase(0, nl + 1);
        for (size_t off = 0; off < resp.size();) {
          ssize_t w = ::send(c.fd, resp.data() + off, resp.size() - off, MSG_NOSIGNAL);
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) {
            drop = true;
            break;
          }
          off += static_cast<size_t>(w);
        }
      }
      if (!drop && c.buf.size() > kMaxRequest) {
        std::string resp = error_line("request longer than " + std::to_string(kMaxRequest) + " bytes");
        (void)!::send(c.fd, resp.data(), resp.size(), MSG_NOSIGNAL);
        drop = true;
      }
      if (drop) {
        ::close(c.fd);
        c.fd = -1;
      }
    }
    std::erase_if(clients, [](const Client& c) { return c.fd < 0; });
  }
  for (const Client& c : clients) ::close(c.fd);
}

}  // namespace imf::dp::agent
