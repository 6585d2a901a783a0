// Parses the rule file format documented in config/rules/README.md.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "rules/rule.h"

namespace imf::rules {

// Parses `text` (the whole file); `source` names it in errors. On failure the error lists every
// bad line as "source:line: rule 'id': what is wrong", one per line of the message.
// Thread-safe; no global state.
Result<RuleSet> parse_rules(std::string_view text, const std::string& source);

// Reads and parses a rule file. Errors also cover an unreadable or empty file.
Result<RuleSet> load_rules_file(const std::string& path);

}  // namespace imf::rules
