#include "rules/rule_parser.h"

#include <cctype>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "rules/topic_filter.h"

namespace imf::rules {

const char* action_name(Action a) { return a == Action::kDrop ? "drop" : "alert"; }

namespace {

constexpr size_t kMaxIdLen = 64;
constexpr size_t kMaxPatternLen = 16 * 1024;

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLen) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != ':' && c != '-') return false;
  }
  return true;
}

// Splits off the next whitespace-separated token; `rest` keeps what follows.
std::string_view next_token(std::string_view& rest) {
  size_t b = rest.find_first_not_of(" \t");
  if (b == std::string_view::npos) {
    rest = {};
    return {};
  }
  size_t e = rest.find_first_of(" \t", b);
  std::string_view tok = rest.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b);
  rest = e == std::string_view::npos ? std::string_view{} : rest.substr(e);
  return tok;
}

std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses the flag letters after a pattern. Returns an error text, empty on success.
std::string parse_flags(std::string_view letters, uint8_t* flags) {
  for (char c : letters) {
    uint8_t bit = 0;
    switch (c) {
      case 'i': bit = kFlagCaseless; break;
      case 's': bit = kFlagDotAll; break;
      case 'm': bit = kFlagMultiline; break;
      case 'u': bit = kFlagUtf8; break;
      default: return std::string("unknown pattern flag '") + c + "' (allowed: i s m u)";
    }
    if (*flags & bit) return std::string("pattern flag '") + c + "' given twice";
    *flags |= bit;
  }
  return {};
}

// Parses `"literal"flags` into rule. Returns an error text, empty on success.
std::string parse_literal(std::string_view p, Rule* rule) {
  std::string out;
  size_t i = 1;
  for (; i < p.size(); ++i) {
    char c = p[i];
    if (c == '"') break;
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (++i >= p.size()) return "literal ends inside an escape";
    char e = p[i];
    if (e == '"' || e == '\\') {
      out.push_back(e);
    } else if (e == 'x') {
      int hi = i + 1 < p.size() ? hex_value(p[i + 1]) : -1;
      int lo = i + 2 < p.size() ? hex_value(p[i + 2]) : -1;
      if (hi < 0 || lo < 0) return "\\x must be followed by two hex digits";
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      return std::string("unknown escape '\\") + e + "' in literal (allowed: \\\" \\\\ \\xHH)";
    }
  }
  if (i >= p.size()) return "literal has no closing '\"'";
  if (out.empty()) return "empty literal";
  rule->literal = true;
  rule->pattern = std::move(out);
  return parse_flags(p.substr(i + 1), &rule->flags);
}

// Parses `/regex/flags`. The regex runs to the last '/', so '/' inside needs no escape.
std::string parse_regex(std::string_view p, Rule* rule) {
  size_t close = p.rfind('/');
  if (close == 0) return "regex has no closing '/'";
  std::string_view body = p.substr(1, close - 1);
  if (body.empty()) return "empty regex";
  rule->literal = false;
  rule->pattern = std::string(body);
  return parse_flags(p.substr(close + 1), &rule->flags);
}

std::string parse_scope(std::string_view s, uint8_t* scope) {
  *scope = 0;
  while (!s.empty()) {
    size_t comma = s.find(',');
    std::string_view part = s.substr(0, comma);
    if (part == "body" || part == "payload") {
      *scope |= kScopeBody;
    } else if (part == "channel" || part == "topic") {
      *scope |= kScopeChannel;
    } else {
      return "unknown scope '" + std::string(part) +
             "' (allowed: body, channel, body,channel; payload and topic are MQTT's names for them)";
    }
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return *scope ? std::string{} : "empty scope";
}

// Marker names as the account table takes them: 1-32 of a-z 0-9 _ . -
bool valid_marker(std::string_view m) {
  if (m.empty() || m.size() > 32) return false;
  for (char c : m) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_' ||
          c == '.' || c == '-'))
      return false;
  }
  return true;
}

std::vector<std::string> split_list(std::string_view v) {
  std::vector<std::string> out;
  while (true) {
    size_t comma = v.find(',');
    out.emplace_back(v.substr(0, comma));
    if (comma == std::string_view::npos) return out;
    v.remove_prefix(comma + 1);
  }
}

// Parses one `key=value` option into rule->cond. Returns an error text, empty on success.
std::string parse_option(std::string_view opt, Rule* rule) {
  size_t eq = opt.find('=');
  std::string_view key = opt.substr(0, eq);
  std::string_view value = opt.substr(eq + 1);
  RuleConditions& c = rule->cond;
  if (value.empty()) return "option '" + std::string(key) + "' has no value";
  if (key == "category") {
    if (!c.category.empty()) return "category given twice";
    if (value.size() > 32 || !valid_marker(value)) return "category must be 1-32 characters of a-z 0-9 _ . -";
    c.category = std::string(value);
  } else if (key == "channel") {
    // Checked once the whole line is read: what a pattern may be depends on protocol=.
    for (std::string& f : split_list(value)) c.channels.push_back(std::move(f));
  } else if (key == "protocol") {
    if (c.protocols) return "protocol given twice";
    for (const std::string& name : split_list(value)) {
      uint8_t bit = 0;
      for (uint8_t i = 0; i < std::size(kProtocolNames); ++i) {
        if (name == kProtocolNames[i]) bit = static_cast<uint8_t>(1u << i);
      }
      if (!bit) return "unknown protocol '" + name + "' (allowed: mqtt, xmpp, sip, irc)";
      c.protocols |= bit;
    }
  } else if (key == "with" || key == "without") {
    auto& list = key == "with" ? c.with_markers : c.without_markers;
    for (std::string& m : split_list(value)) {
      if (!valid_marker(m)) return "marker '" + m + "' must be 1-32 characters of a-z 0-9 _ . -";
      list.push_back(std::move(m));
    }
  } else if (key == "mode") {
    if (value == "dry-run") {
      c.dry_run = true;
    } else if (value != "enforce") {
      return "unknown mode '" + std::string(value) + "' (allowed: enforce, dry-run)";
    }
  } else {
    return "unknown option '" + std::string(key) + "' (allowed: category, channel, protocol, with, without, mode)";
  }
  return {};
}

// Each channel pattern is an MQTT topic filter for MQTT messages and a glob for the others: it
// must be valid as whichever the rule's protocols need. Returns an error text, empty when valid.
std::string check_channels(const RuleConditions& c) {
  uint8_t protocols = c.protocols ? c.protocols : kAllProtocols;
  for (const std::string& f : c.channels) {
    if (protocols & kProtoMqtt) {
      if (Status st = check_topic_filter(f); !st) {
        return "channel '" + f + "' is not an MQTT topic filter: " + st.error() +
               " (for XMPP, SIP and IRC channels alone, add protocol=xmpp,sip,irc)";
      }
    }
    if (protocols & ~kProtoMqtt) {
      if (Status st = check_glob(f); !st) return "channel '" + f + "': " + st.error();
    }
  }
  return {};
}

}  // namespace

Result<RuleSet> parse_rules(std::string_view text, const std::string& source) {
  RuleSet set;
  set.source = source;
  std::set<std::string, std::less<>> seen;
  std::ostringstream errors;
  uint32_t line_no = 0;

  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;

    line = trim(line);
    if (line.empty() || line.front() == '#') continue;

    std::string_view rest = line;
    std::string_view id = next_token(rest);
    std::string_view action = next_token(rest);
    std::string_view scope = next_token(rest);
    std::string_view options = rest;  // key=value tokens up to the pattern

    auto fail = [&](const std::string& what) {
      errors << source << ':' << line_no << ": ";
      if (!id.empty()) errors << "rule '" << id << "': ";
      errors << what << '\n';
    };

    if (!valid_id(id)) {
      fail("bad rule id (1-64 characters of A-Z a-z 0-9 . _ : -)");
      continue;
    }
    if (seen.count(id)) {
      fail("duplicate rule id");
      continue;
    }
    Rule rule;
    rule.id = std::string(id);
    rule.line = line_no;
    if (action == "drop") {
      rule.action = Action::kDrop;
    } else if (action == "alert") {
      rule.action = Action::kAlert;
    } else {
      fail(action.empty() ? "missing action" : "unknown action '" + std::string(action) + "' (allowed: drop, alert)");
      continue;
    }
    if (std::string err = parse_scope(scope, &rule.scope); !err.empty()) {
      fail(scope.empty() ? "missing scope" : err);
      continue;
    }
    std::string err;
    std::string_view pattern;
    while (err.empty()) {
      std::string_view before = options;
      std::string_view tok = next_token(options);
      if (tok.empty() || tok.front() == '"' || tok.front() == '/' || tok == "*" || tok.find('=') == tok.npos) {
        pattern = trim(before);
        break;
      }
      err = parse_option(tok, &rule);
    }
    if (!err.empty()) {
      fail(err);
      continue;
    }
    if (pattern.empty()) {
      fail("missing pattern");
      continue;
    }
    if (!rule.cond.channels.empty() && (rule.scope & kScopeChannel)) {
      fail("channel= limits which messages' bodies are scanned: it takes scope body, not channel");
      continue;
    }
    if (std::string bad = check_channels(rule.cond); !bad.empty()) {
      fail(bad);
      continue;
    }
    if (pattern == "*") {
      if (rule.cond.channels.empty() && !rule.cond.needs_account()) {
        fail("a rule without a pattern ('*') needs channel=, with= or without=");
        continue;
      }
      if (rule.scope != kScopePayload) {
        fail("a rule without a pattern ('*') judges whole messages: its scope must be payload");
        continue;
      }
      rule.cond.any_body = true;
      seen.insert(rule.id);
      set.rules.push_back(std::move(rule));
      continue;
    }
    if (pattern.size() > kMaxPatternLen) {
      fail("pattern longer than " + std::to_string(kMaxPatternLen) + " bytes");
      continue;
    }
    if (pattern.front() == '"') {
      err = parse_literal(pattern, &rule);
    } else if (pattern.front() == '/') {
      err = parse_regex(pattern, &rule);
    } else {
      err = "pattern must be \"literal\" or /regex/";
    }
    if (!err.empty()) {
      fail(err);
      continue;
    }
    seen.insert(rule.id);
    set.rules.push_back(std::move(rule));
  }

  std::string all = errors.str();
  if (!all.empty()) {
    all.pop_back();  // trailing newline
    return make_error(std::move(all));
  }
  if (set.rules.empty()) return make_error(source + ": no rules");
  return set;
}

Result<RuleSet> load_rules_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot open rule file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return make_error(path + ": read error");
  return parse_rules(ss.str(), path);
}

}  // namespace imf::rules
