#include "daemon/config.h"

#include <arpa/inet.h>
#include <grp.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

namespace imf::control {

namespace {

constexpr const char* kKnownKeys =
    "socket, group, state_dir, keep_versions, dataplane_socket, metrics_listen, max_request_bytes, resync_interval, "
    "appliance_id, policy_file, digest_key_file, records_dir, dataplane_records_dir, records_rotate_bytes, "
    "records_rotate_seconds, records_retention_days, records_fsync_every";

std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

bool parse_u64(std::string_view s, uint64_t* out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

// "67108864", "64M", "64MiB", "512K", "1G": binary multiples.
std::string parse_size(std::string_view s, uint64_t* out) {
  uint64_t mult = 1;
  for (auto [suffix, m] : std::initializer_list<std::pair<std::string_view, uint64_t>>{{"KiB", 1ull << 10},
                                                                                       {"MiB", 1ull << 20},
                                                                                       {"GiB", 1ull << 30},
                                                                                       {"K", 1ull << 10},
                                                                                       {"M", 1ull << 20},
                                                                                       {"G", 1ull << 30}}) {
    if (s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix) {
      mult = m;
      s.remove_suffix(suffix.size());
      break;
    }
  }
  uint64_t n = 0;
  if (!parse_u64(s, &n)) return "not a size (bytes, or a number with K, M or G)";
  if (n > (1ull << 30) / mult) return "must be between 1K and 1G";
  *out = n * mult;
  if (*out < 1024 || *out > (1ull << 30)) return "must be between 1K and 1G";
  return {};
}

std::string parse_path(std::string_view v, std::string* out) {
  if (v.empty()) return "empty path";
  *out = std::string(v);
  return {};
}

// A number from `lo` to `hi`; the error names the range and `unit` ("seconds", "").
std::string parse_range(std::string_view v, uint64_t lo, uint64_t hi, const char* unit, uint64_t* out) {
  if (!parse_u64(v, out) || *out < lo || *out > hi)
    return "'" + std::string(v) + "' is not a number" + (*unit ? std::string(" of ") + unit : std::string()) +
           " from " + std::to_string(lo) + " to " + std::to_string(hi);
  return {};
}

// Record fields name the appliance: printable ASCII without quotes or backslashes keeps them plain.
std::string parse_appliance_id(std::string_view v, std::string* out) {
  if (v.size() > 64) return "longer than 64 characters";
  for (char c : v) {
    if (c <= ' ' || c > '~' || c == '"' || c == '\\')
      return "'" + std::string(v) + "' holds a character other than printable ASCII (no spaces, quotes, backslashes)";
  }
  *out = std::string(v);
  return {};
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "imf";
  std::string out;
  if (!parse_appliance_id(buf, &out).empty()) return "imf";
  return out;
}

}  // namespace

Result<ListenAddress> parse_loopback_listen(std::string_view text) {
  ListenAddress a;
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return make_error("'" + std::string(text) + "' is not [V6ADDRESS]:PORT");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return make_error("'" + std::string(text) + "' is not HOST:PORT");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  uint64_t p = 0;
  if (!parse_u64(port, &p) || p > 65535) return make_error("'" + std::string(port) + "' is not a port number");
  a.port = static_cast<uint16_t>(p);
  if (host == "localhost") host = "127.0.0.1";
  in_addr v4{};
  in6_addr v6{};
  std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    if ((ntohl(v4.s_addr) >> 24) != 127)
      return make_error(h + " is not a loopback address (metrics are served on loopback only)");
  } else if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (!IN6_IS_ADDR_LOOPBACK(&v6))
      return make_error(h + " is not a loopback address (metrics are served on loopback only)");
    a.ipv6 = true;
  } else {
    return make_error("'" + h + "' is not a numeric address or localhost");
  }
  a.host = h;
  return a;
}

Result<ControlConfig> parse_config(std::string_view text, const std::string& source) {
  ControlConfig c;
  std::set<std::string, std::less<>> seen;
  uint32_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    if (line.empty() || line.front() == '#') continue;

    std::string where = source;
    where += ":" + std::to_string(line_no) + ": ";
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return make_error(where + "expected 'key = value'");
    std::string_view key = trim(line.substr(0, eq));
    std::string_view value = trim(line.substr(eq + 1));
    if (key.empty()) return make_error(where + "expected 'key = value'");
    std::string k(key);
    if (seen.count(k)) return make_error(where + k + ": given twice");
    seen.insert(k);
    if (value.empty()) return make_error(where + k + ": empty value");

    std::string err;
    uint64_t n = 0;
    if (key == "socket") {
      err = parse_path(value, &c.socket);
    } else if (key == "group") {
      std::string g(value);
      std::vector<char> buf(16384);
      group gr{};
      group* found = nullptr;
      int rc = getgrnam_r(g.c_str(), &gr, buf.data(), buf.size(), &found);
      if (rc != 0 || !found) {
        err = "no such group '" + g + "'";
      } else {
        c.group = g;
        c.gid = found->gr_gid;
      }
    } else if (key == "state_dir") {
      err = parse_path(value, &c.state_dir);
    } else if (key == "keep_versions") {
      if (!parse_u64(value, &n) || n < 1 || n > 10000) {
        err = "'" + std::string(value) + "' is not a number from 1 to 10000";
      } else {
        c.keep_versions = static_cast<uint32_t>(n);
      }
    } else if (key == "dataplane_socket") {
      err = parse_path(value, &c.dataplane_socket);
    } else if (key == "metrics_listen") {
      auto a = parse_loopback_listen(value);
      if (!a) {
        err = a.error();
      } else {
        c.metrics = a.value();
        c.metrics_listen = std::string(value);
      }
    } else if (key == "max_request_bytes") {
      err = parse_size(value, &c.max_request_bytes);
      if (!err.empty()) err.insert(0, "'" + std::string(value) + "': ");
    } else if (key == "resync_interval") {
      if (!parse_u64(value, &n) || n < 1 || n > 3600) {
        err = "'" + std::string(value) + "' is not a number of seconds from 1 to 3600";
      } else {
        c.resync_interval_s = static_cast<uint32_t>(n);
      }
    } else if (key == "appliance_id") {
      err = parse_appliance_id(value, &c.appliance_id);
    } else if (key == "policy_file") {
      err = parse_path(value, &c.policy_file);
    } else if (key == "digest_key_file") {
      err = parse_path(value, &c.digest_key_file);
    } else if (key == "records_dir") {
      err = parse_path(value, &c.records_dir);
    } else if (key == "dataplane_records_dir") {
      err = parse_path(value, &c.dataplane_records_dir);
    } else if (key == "records_rotate_bytes") {
      err = parse_size(value, &c.records_rotate_bytes);
      if (!err.empty()) err.insert(0, "'" + std::string(value) + "': ");
    } else if (key == "records_rotate_seconds") {
      err = parse_range(value, 60, 366ull * 86400, "seconds", &c.records_rotate_seconds);
    } else if (key == "records_retention_days") {
      err = parse_range(value, 0, 36500, "days", &n);
      c.records_retention_days = static_cast<uint32_t>(n);
    } else if (key == "records_fsync_every") {
      err = parse_range(value, 1, 1000000, "", &n);
      c.records_fsync_every = static_cast<uint32_t>(n);
    } else {
      where += "unknown key '" + k + "' (known: " + kKnownKeys + ")";
      return make_error(std::move(where));
    }
    if (!err.empty()) {
      where += k + ": ";
      where += err;
      return make_error(std::move(where));
    }
  }
  return c;
}

void resolve_default_paths(ControlConfig* c) {
  if (c->appliance_id.empty()) c->appliance_id = host_name();
  if (c->digest_key_file.empty()) c->digest_key_file = c->state_dir + "/digest.key";
  if (c->records_dir.empty()) c->records_dir = c->state_dir + "/records";
  if (c->dataplane_records_dir.empty()) c->dataplane_records_dir = c->state_dir + "/dataplane-records";
}

Result<ControlConfig> load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot open configuration file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return make_error(path + ": read error");
  return parse_config(ss.str(), path);
}

}  // namespace imf::control
