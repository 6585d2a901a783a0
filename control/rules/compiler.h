// Compiles a parsed rule set into one serialized Hyperscan streaming database.
// Runs off the fast path (seconds for large sets); the dataplane only deserializes the result.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "rules/rule.h"

namespace imf::rules {

// What the dataplane needs of each rule, indexed by Hyperscan match id.
struct RuleMeta {
  std::string id;
  Action action;
  uint8_t scope;
  RuleConditions cond;
};

struct CompiledRules {
  std::vector<RuleMeta> rules;
  std::string database;  // hs_serialize_database() output, streaming mode
};

// Maps a rule's pattern and flags to the Hyperscan expression and HS_FLAG_* bits it compiles with.
// Literals become \xHH-escaped regexes so both kinds share one database.
std::string hs_expression(const Rule& rule);
unsigned hs_flags(const Rule& rule);

// Validates every rule against Hyperscan, then compiles all into one database.
// Errors name each rejected rule as "source:line: rule 'id': reason", one per line.
// Thread-safe.
Result<CompiledRules> compile_rules(const RuleSet& set);

}  // namespace imf::rules
