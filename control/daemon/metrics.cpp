#include "daemon/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <set>
#include <vector>

namespace imf::control {

namespace {

constexpr const char* kFixedFamilies[] = {
    "imf_packets_total",          "imf_bytes_total",
    "imf_port_rx_missed_total",   "imf_port_tx_errors_total",
    "imf_rule_hits_total",        "imf_latency_samples_total",
    "imf_dataplane_up",           "imf_rules_version",
    "imf_control_uptime_seconds", "imf_control_accounts",
    "imf_control_reports_open",   "imf_control_reports_oldest_open_seconds",
    "imf_control_records_seq",    "imf_control_dataplane_state_changes_applied_total"};

std::string sanitize(std::string_view name) {
  std::string out;
  for (char c : name) out.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return out;
}

std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string number(const json::Value& v) {
  if (v.is_int()) return std::to_string(v.as_int());
  if (v.is_number()) {
    char b[32];
    auto r = std::to_chars(b, b + sizeof(b), v.as_double());
    return std::string(b, r.ptr);
  }
  if (v.is_bool()) return v.as_bool() ? "1" : "0";
  return {};
}

class Writer {
 public:
  void family(const std::string& name, const char* type, const std::string& help) {
    out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  // labels: "k=\"v\",..." already escaped, or empty.
  void sample(const std::string& name, const std::string& labels, const std::string& value) {
    if (value.empty()) return;
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += " " + value + "\n";
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string label(const char* k, const std::string& v) { return std::string(k) + "=\"" + label_value(v) + "\""; }

std::string scalar_label(const json::Value* v) {
  if (!v) return "?";
  if (v->is_string()) return v->as_string();
  return number(*v);
}

void render_ports(Writer& w, const json::Value& ports) {
  if (!ports.is_array()) return;
  w.family("imf_packets_total", "counter", "Packets per port and direction, as the NIC counts them.");
  for (const json::Value& p : ports.as_array()) {
    std::string port = label("port", scalar_label(p.find("port")));
    if (const json::Value* v = p.find("rx")) w.sample("imf_packets_total", port + ",direction=\"rx\"", number(*v));
    if (const json::Value* v = p.find("tx")) w.sample("imf_packets_total", port + ",direction=\"tx\"", number(*v));
  }
  w.family("imf_bytes_total", "counter", "Bytes per port and direction, as the NIC counts them.");
  for (const json::Value& p : ports.as_array()) {
    std::string port = label("port", scalar_label(p.find("port")));
    if (const json::Value* v = p.find("rx_bytes")) w.sample("imf_bytes_total", port + ",direction=\"rx\"", number(*v));
    if (const json::Value* v = p.find("tx_bytes")) w.sample("imf_bytes_total", port + ",direction=\"tx\"", number(*v));
  }
  w.family("imf_port_rx_missed_total", "counter", "Packets the NIC dropped because no RX descriptor was free.");
  for (const json::Value& p : ports.as_array()) {
    if (const json::Value* v = p.find("rx_missed"))
      w.sample("imf_port_rx_missed_total", label("port", scalar_label(p.find("port"))), number(*v));
  }
  w.family("imf_port_tx_errors_total", "counter", "Packets the NIC failed to send.");
  for (const json::Value& p : ports.as_array()) {
    if (const json::Value* v = p.find("tx_errors"))
      w.sample("imf_port_tx_errors_total", label("port", scalar_label(p.find("port"))), number(*v));
  }
}

void render_counters(Writer& w, const json::Value& stats) {
  // Per-lcore counters when the dataplane reports them, else the totals.
  const json::Value* lcores = stats.find("lcores");
  std::vector<std::string> names;
  std::set<std::string> seen;
  if (lcores && lcores->is_array()) {
    for (const json::Value& l : lcores->as_array()) {
      const json::Value* c = l.find("counters");
      if (!c || !c->is_object()) continue;
      for (const auto& [k, unused] : c->as_object()) {
        if (seen.insert(k).second) names.push_back(k);
      }
    }
  }
  auto family_name = [](const std::string& counter) {
    std::string n = "imf_" + sanitize(counter);
    if (n.size() < 6 || n.substr(n.size() - 6) != "_total") n += "_total";
    // A counter that would take the name of one of the fixed families gets its own prefix.
    for (const char* fixed : kFixedFamilies) {
      if (n == fixed) return "imf_dp_" + n.substr(4);
    }
    return n;
  };
  if (!names.empty()) {
    for (const std::string& counter : names) {
      std::string fam = family_name(counter);
      w.family(fam, "counter", "imfd counter " + counter + " per worker lcore (dataplane/stats/counters.h).");
      for (const json::Value& l : lcores->as_array()) {
        const json::Value* c = l.find("counters");
        const json::Value* v = c ? c->find(counter) : nullptr;
        if (v) w.sample(fam, label("lcore", scalar_label(l.find("lcore"))), number(*v));
      }
    }
    return;
  }
  const json::Value* totals = stats.find("counters");
  if (!totals || !totals->is_object()) return;
  for (const auto& [counter, v] : totals->as_object()) {
    std::string fam = family_name(counter);
    w.family(fam, "counter", "imfd counter " + counter + " (dataplane/stats/counters.h).");
    w.sample(fam, "", number(v));
  }
}

void render_rules(Writer& w, const json::Value& rules) {
  if (!rules.is_array()) return;
  w.family("imf_rule_hits_total", "counter", "Messages each rule matched.");
  for (const json::Value& r : rules.as_array()) {
    const json::Value* hits = r.find("hits");
    if (!hits) continue;
    w.sample("imf_rule_hits_total",
             label("rule", scalar_label(r.find("id"))) + "," + label("action", scalar_label(r.find("action"))),
             number(*hits));
  }
}

void render_latency(Writer& w, const json::Value& lat) {
  if (!lat.is_object()) return;
  static constexpr std::pair<const char*, const char*> kQuantiles[] = {
      {"p50", "0.5"}, {"p90", "0.9"}, {"p99", "0.99"}, {"p999", "0.999"}, {"max", "1"}};
  w.family("imf_latency_nanoseconds", "gauge",
           "Forwarding latency quantiles since start (upper bucket edge; rx burst to tx burst).");
  for (auto [key, q] : kQuantiles) {
    if (const json::Value* v = lat.find(key))
      w.sample("imf_latency_nanoseconds", std::string("quantile=\"") + q + "\"", number(*v));
  }
  if (const json::Value* v = lat.find("samples")) {
    w.family("imf_latency_samples_total", "counter", "Forwarded packets whose latency was measured.");
    w.sample("imf_latency_samples_total", "", number(*v));
  }
}

}  // namespace

std::string render_metrics(const json::Value* stats, const ControlMetrics& control) {
  Writer w;
  w.family("imf_dataplane_up", "gauge", "1 when the dataplane agent answered this scrape's stats query.");
  w.sample("imf_dataplane_up", "", stats ? "1" : "0");
  w.family("imf_control_active_rules_version", "gauge", "Rule-set version marked active on disk (0: none).");
  w.sample("imf_control_active_rules_version", "", std::to_string(control.active_version));
  w.family("imf_control_uptime_seconds", "gauge", "Seconds since imf-control started.");
  w.sample("imf_control_uptime_seconds", "", std::to_string(static_cast<int64_t>(control.uptime_s)));
  if (control.accounts) {
    w.family("imf_control_accounts", "gauge", "Accounts stored in imf-control, by state.");
    constexpr const char* kStates[] = {"none", "warned", "restricted", "suspended", "shutdown"};
    for (int i = 0; i < 5; ++i)
      w.sample("imf_control_accounts", std::string("state=\"") + kStates[i] + "\"",
               std::to_string(control.accounts_by_state[i]));
    w.family("imf_control_reports_open", "gauge", "Open reports.");
    w.sample("imf_control_reports_open", "", std::to_string(control.reports_open));
    w.family("imf_control_reports_oldest_open_seconds", "gauge",
             "How long the longest-waiting open report has waited (0: none open).");
    w.sample("imf_control_reports_oldest_open_seconds", "", std::to_string(control.reports_oldest_open_s));
    w.family("imf_control_records_seq", "gauge",
             "Last record of the control chain written, and of the dataplane's chain read.");
    w.sample("imf_control_records_seq", "chain=\"control\"", std::to_string(control.records_control_seq));
    w.sample("imf_control_records_seq", "chain=\"dataplane\"", std::to_string(control.records_dataplane_seq));
    w.family("imf_control_dataplane_state_changes_applied_total", "counter",
             "State changes of the dataplane's records applied to the stored accounts since imf-control started.");
    w.sample("imf_control_dataplane_state_changes_applied_total", "",
             std::to_string(control.dataplane_state_changes_applied));
  }
  if (!stats) return w.take();

  if (const json::Value* v = stats->find("version")) {
    w.family("imf_rules_version", "gauge", "Rule-set version the dataplane judges with.");
    w.sample("imf_rules_version", "", number(*v));
  }
  if (const json::Value* p = stats->find("ports")) render_ports(w, *p);
  render_counters(w, *stats);
  if (const json::Value* r = stats->find("rules")) render_rules(w, *r);
  if (const json::Value* l = stats->find("latency_ns")) render_latency(w, *l);
  return w.take();
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::listen(const ListenAddress& address,
                                                             std::function<std::string()> body) {
  int fd = ::socket(address.ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error("metrics socket: " + std::string(std::strerror(errno)));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (address.ipv6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(address.port);
    inet_pton(AF_INET6, address.host.c_str(), &a->sin6_addr);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(address.port);
    inet_pton(AF_INET, address.host.c_str(), &a->sin_addr);
    len = sizeof(*a);
  }
  std::string where = (address.ipv6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(address.port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 16) != 0) {
    std::string e = std::strerror(errno);
    ::close(fd);
    return make_error("metrics_listen " + where + ": " + e);
  }
  len = sizeof(ss);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  uint16_t port = ntohs(address.ipv6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                     : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  where = (address.ipv6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(port);
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    ::close(fd);
    return make_error("metrics: pipe: " + std::string(std::strerror(errno)));
  }
  return std::unique_ptr<MetricsServer>(new MetricsServer(fd, p[0], p[1], where, std::move(body)));
}

MetricsServer::~MetricsServer() {
  stop();
  ::close(fd_);
  ::close(stop_r_);
  ::close(stop_w_);
}

void MetricsServer::start() {
  thread_ = std::thread([this] { run(); });
}

void MetricsServer::stop() {
  if (!thread_.joinable()) return;
  char b = 1;
  [[maybe_unused]] ssize_t n = ::write(stop_w_, &b, 1);
  thread_.join();
}

void MetricsServer::run() {
  for (;;) {
    pollfd p[2] = {{fd_, POLLIN, 0}, {stop_r_, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents) return;
    if (!(p[0].revents & POLLIN)) continue;
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    serve(c);
    ::close(c);
  }
}

void MetricsServer::serve(int c) {
  constexpr int kTimeoutMs = 2000;
  constexpr size_t kMaxHead = 8192;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
  std::string head;
  char buf[2048];
  while (head.find("\r\n\r\n") == std::string::npos && head.find("\n\n") == std::string::npos) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0 || head.size() > kMaxHead) return;
    pollfd p{c, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return;
    ssize_t n = ::recv(c, buf, sizeof(buf), 0);
    if (n <= 0) return;
    head.append(buf, static_cast<size_t>(n));
  }
  std::string line = head.substr(0, head.find_first_of("\r\n"));
  std::string status = "200 OK";
  std::string type = "text/plain; version=0.0.4; charset=utf-8";
  std::string body;
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  std::string method = line.substr(0, sp1);
  std::string target = sp1 == std::string::npos ? "" : line.substr(sp1 + 1, sp2 - sp1 - 1);
  target = target.substr(0, target.find('?'));
  if (method != "GET" && method != "HEAD") {
    status = "405 Method Not Allowed";
    type = "text/plain";
    body = "only GET /metrics\n";
  } else if (target != "/metrics") {
    status = "404 Not Found";
    type = "text/plain";
    body = "only GET /metrics\n";
  } else {
    body = body_();
  }
  std::string out = "HTTP/1.0 " + status + "\r\nContent-Type: " + type +
                    "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (method != "HEAD") out += body;
  deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
  size_t sent = 0;
  while (sent < out.size()) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    pollfd p{c, POLLOUT, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) return;
    ssize_t n = ::send(c, out.data() + sent, out.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

}  // namespace imf::control
