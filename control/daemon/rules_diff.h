// Differences between two rule sets by rule id: what `rules diff A B` reports.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rules/rule.h"

namespace imf::control {

struct RuleChange {
  std::string id;
  uint32_t from_line = 0;  // 0 when the rule is not in `from`
  uint32_t to_line = 0;    // 0 when the rule is not in `to`
  std::string from_text;   // the rule's source line in `from`, trimmed
  std::string to_text;
};

struct RuleDiff {
  std::vector<RuleChange> added;    // in `to` only, in `to`'s order
  std::vector<RuleChange> removed;  // in `from` only, in `from`'s order
  std::vector<RuleChange> changed;  // in both with another action, scope, pattern or flags
};

// `*_text` are the files the sets were parsed from (for the source lines). A rule that only moved
// to another line, or whose spacing changed, is not a change. Pure; any thread.
RuleDiff diff_rules(const rules::RuleSet& from, const std::string& from_text, const rules::RuleSet& to,
                    const std::string& to_text);

}  // namespace imf::control
