#include "policy/policy_config.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

namespace imf::policy {

namespace {

constexpr std::array<const char*, kStateCount> kStateNames = {"none", "warned", "restricted", "suspended", "shutdown"};

std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

// Whole string as an unsigned decimal; nullopt on anything else (sign, space, overflow).
template <typename T>
std::optional<T> parse_uint(std::string_view s) {
  T v{};
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> w;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t b = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > b) w.push_back(line.substr(b, i - b));
  }
  return w;
}

}  // namespace

const char* state_name(AccountState s) {
  auto i = static_cast<size_t>(s);
  return i < kStateNames.size() ? kStateNames[i] : "?";
}

std::optional<AccountState> parse_state(std::string_view s) {
  for (size_t i = 0; i < kStateNames.size(); ++i)
    if (s == kStateNames[i]) return static_cast<AccountState>(i);
  return std::nullopt;
}

AccountState next_state(AccountState s) {
  return s >= AccountState::kShutdown ? AccountState::kShutdown
                                      : static_cast<AccountState>(static_cast<uint8_t>(s) + 1);
}

Result<uint64_t> parse_duration(std::string_view s) {
  const std::string form = "durations are N, Ns, Nm, Nh or Nd (seconds, minutes, hours, days), N >= 1";
  uint64_t unit = 1;
  std::string_view digits = s;
  if (!s.empty()) {
    switch (s.back()) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      default: unit = 0; break;
    }
    if (unit != 0)
      digits.remove_suffix(1);
    else
      unit = 1;
  }
  auto n = parse_uint<uint64_t>(digits);
  if (!n || *n == 0) return make_error("bad duration " + quote(s) + ": " + form);
  if (*n > std::numeric_limits<uint64_t>::max() / unit) return make_error("duration " + quote(s) + " is too long");
  return *n * unit;
}

Result<Rate> parse_rate(std::string_view s) {
  const std::string form = "rates are MESSAGES/DURATION, e.g. 10/60s, 10/1m, 100/1h, 5/1d";
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return make_error("bad rate " + quote(s) + ": " + form);
  auto n = parse_uint<uint32_t>(s.substr(0, slash));
  if (!n || *n == 0) return make_error("bad rate " + quote(s) + ": message count must be 1-4294967295; " + form);
  auto d = parse_duration(s.substr(slash + 1));
  if (!d) return make_error("bad rate " + quote(s) + ": " + form);
  if (d.value() > std::numeric_limits<uint32_t>::max())
    return make_error("bad rate " + quote(s) + ": interval longer than 4294967295 seconds");
  return Rate{*n, static_cast<uint32_t>(d.value())};
}

std::string format_rate(const Rate& r) {
  if (r.unset()) return "";
  return std::to_string(r.messages) + "/" + std::to_string(r.interval_s) + "s";
}

Result<EscalationPolicy> parse_policy(std::string_view text, const std::string& source) {
  static const char* kKnown = "escalation, violations, window, expire, restricted-rate, report-threshold";
  EscalationPolicy p;
  std::set<std::string> seen;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto w = split_words(line);
    if (w.empty()) continue;
    auto fail = [&](const std::string& what) {
      std::string at = source + ":" + std::to_string(line_no) + ": ";
      return make_error(at.append(what));
    };
    std::string key(w[0]);
    size_t want = key == "expire" ? 3 : 2;
    std::string id = key;  // duplicate detection; expire is per state
    if (key == "expire" && w.size() >= 2) id += " " + std::string(w[1]);
    if (key != "escalation" && key != "violations" && key != "window" && key != "expire" && key != "restricted-rate" &&
        key != "report-threshold")
      return fail("unknown key " + quote(key) + " (known: " + kKnown + ")");
    if (w.size() != want)
      return fail(quote(key) + " takes " + std::to_string(want - 1) + " value" + (want == 2 ? "" : "s") + ", got " +
                  std::to_string(w.size() - 1));
    if (!seen.insert(id).second) return fail(quote(id) + " given twice");
    std::string_view v = w[1];
    if (key == "escalation") {
      if (v != "on" && v != "off") return fail("escalation is 'on' or 'off', not " + quote(v));
      p.enabled = v == "on";
    } else if (key == "violations") {
      auto n = parse_uint<uint32_t>(v);
      if (!n || *n == 0) return fail("violations must be a whole number >= 1, not " + quote(v));
      p.violations = *n;
    } else if (key == "window") {
      auto d = parse_duration(v);
      if (!d) return fail("window: " + d.error());
      p.window_s = d.value();
    } else if (key == "expire") {
      auto s = parse_state(v);
      if (!s) return fail("expire: unknown state " + quote(v) + " (warned, restricted or suspended)");
      if (*s == AccountState::kShutdown) return fail("expire shutdown: shutdown is indefinite and never expires");
      if (*s == AccountState::kNone) return fail("expire none: 'none' is not a measure and cannot expire");
      if (w[2] == "never") {
        p.expire_s[static_cast<size_t>(*s)] = 0;
      } else {
        auto d = parse_duration(w[2]);
        if (!d) return fail("expire " + std::string(v) + ": " + d.error() + ", or 'never'");
        p.expire_s[static_cast<size_t>(*s)] = d.value();
      }
    } else if (key == "restricted-rate") {
      auto r = parse_rate(v);
      if (!r) return fail("restricted-rate: " + r.error());
      p.restricted_rate = r.value();
    } else {  // report-threshold
      auto n = parse_uint<uint32_t>(v);
      if (!n) return fail("report-threshold must be a whole number (0 = reports never escalate), not " + quote(v));
      p.report_threshold = *n;
    }
  }
  return p;
}

Result<EscalationPolicy> load_policy_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_policy(ss.str(), path);
}

Status check_marker_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxMarkerLen)
    return make_error("marker name " + quote(name) + " must be 1-" + std::to_string(kMaxMarkerLen) + " characters");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) return make_error("marker name " + quote(name) + " may only use a-z, 0-9, '_', '.', '-'");
  }
  return Ok{};
}

Status check_account_name(std::string_view account) {
  if (account.empty() || account.size() > kMaxAccountLen)
    return make_error("account of " + std::to_string(account.size()) + " bytes: accounts are 1-" +
                      std::to_string(kMaxAccountLen) + " bytes");
  for (char c : account) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return make_error("account contains a control character");
    if (c == ',') return make_error("account contains ','");
  }
  return Ok{};
}

Result<AccountRow> parse_account_row(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::string_view col[5];
  size_t n = 0;
  for (;;) {
    size_t comma = line.find(',');
    if (n == 4 || comma == std::string_view::npos) {
      col[n++] = line;
      break;
    }
    col[n++] = line.substr(0, comma);
    line = line.substr(comma + 1);
  }
  if (n != 5 || col[4].find(',') != std::string_view::npos)
    return make_error("expected 5 columns account,markers,state,until,rate; got " +
                      (n != 5 ? std::to_string(n) : std::string("more")));
  AccountRow r;
  if (auto st = check_account_name(col[0]); !st) return make_error("account: " + st.error());
  r.account = col[0];
  for (std::string_view m = col[1]; !col[1].empty();) {
    size_t semi = m.find(';');
    std::string_view name = m.substr(0, semi);
    if (auto st = check_marker_name(name); !st) return make_error("markers: " + st.error());
    r.markers.emplace_back(name);
    if (semi == std::string_view::npos) break;
    m = m.substr(semi + 1);
  }
  std::sort(r.markers.begin(), r.markers.end());
  r.markers.erase(std::unique(r.markers.begin(), r.markers.end()), r.markers.end());
  if (r.markers.size() > kMaxMarkers)
    return make_error("markers: " + std::to_string(r.markers.size()) + " distinct, at most " +
                      std::to_string(kMaxMarkers));
  if (!col[2].empty()) {
    auto s = parse_state(col[2]);
    if (!s) return make_error("state: unknown " + quote(col[2]) + " (none, warned, restricted, suspended, shutdown)");
    r.state = *s;
  }
  if (!col[3].empty()) {
    auto u = parse_uint<uint64_t>(col[3]);
    if (!u || *u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return make_error("until: " + quote(col[3]) + " is not unix seconds");
    r.until_s = static_cast<int64_t>(*u);
  }
  if (!col[4].empty()) {
    auto rt = parse_rate(col[4]);
    if (!rt) return make_error("rate: " + rt.error());
    r.rate = rt.value();
  }
  return r;
}

std::string format_account_row(const AccountRow& r) {
  std::string out = r.account + ",";
  for (size_t i = 0; i < r.markers.size(); ++i) {
    if (i) out += ';';
    out += r.markers[i];
  }
  out += ',';
  if (r.state != AccountState::kNone) out += state_name(r.state);
  out += ',';
  if (r.until_s != 0) out += std::to_string(r.until_s);
  out += ',';
  out += format_rate(r.rate);
  return out;
}

}  // namespace imf::policy
