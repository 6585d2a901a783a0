#include "daemon/rules_diff.h"

#include <string_view>
#include <unordered_map>

namespace imf::control {

namespace {

// Line n (1-based) of `text`, without surrounding blanks.
class Lines {
 public:
  explicit Lines(const std::string& text) : text_(text) {
    starts_.push_back(0);
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\n') starts_.push_back(i + 1);
    }
  }
  std::string get(uint32_t n) const {
    if (n == 0 || n > starts_.size()) return {};
    size_t b = starts_[n - 1];
    size_t e = n < starts_.size() ? starts_[n] - 1 : text_.size();
    std::string_view s(text_.data() + b, e - b);
    size_t first = s.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) return {};
    size_t last = s.find_last_not_of(" \t\r");
    return std::string(s.substr(first, last - first + 1));
  }

 private:
  const std::string& text_;
  std::vector<size_t> starts_;
};

bool same_rule(const rules::Rule& a, const rules::Rule& b) {
  return a.action == b.action && a.scope == b.scope && a.cond == b.cond && a.literal == b.literal &&
         a.pattern == b.pattern && a.flags == b.flags;
}

}  // namespace

RuleDiff diff_rules(const rules::RuleSet& from, const std::string& from_text, const rules::RuleSet& to,
                    const std::string& to_text) {
  Lines from_lines(from_text);
  Lines to_lines(to_text);
  std::unordered_map<std::string_view, const rules::Rule*> in_from;
  std::unordered_map<std::string_view, const rules::Rule*> in_to;
  for (const rules::Rule& r : from.rules) in_from.emplace(r.id, &r);
  for (const rules::Rule& r : to.rules) in_to.emplace(r.id, &r);

  RuleDiff d;
  for (const rules::Rule& r : to.rules) {
    auto it = in_from.find(r.id);
    if (it == in_from.end()) {
      d.added.push_back({r.id, 0, r.line, {}, to_lines.get(r.line)});
    } else if (!same_rule(*it->second, r)) {
      d.changed.push_back({r.id, it->second->line, r.line, from_lines.get(it->second->line), to_lines.get(r.line)});
    }
  }
  for (const rules::Rule& r : from.rules) {
    if (!in_to.count(r.id)) d.removed.push_back({r.id, r.line, 0, from_lines.get(r.line), {}});
  }
  return d;
}

}  // namespace imf::control
