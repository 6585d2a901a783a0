// An immutable, installed rule set: the deserialized Hyperscan database plus the metadata that
// turns a match id into a verdict. Built on a setup/agent thread, then read by workers.
#pragma once

#include <hs/hs.h>

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "rules/compiler.h"
#include "rules/hs_handles.h"

namespace imf::dp::match {

struct RuleGeneration {
  uint64_t version = 0;
  std::vector<rules::RuleMeta> rules;  // indexed by Hyperscan match id
  rules::HsDatabase db;
  rules::HsScratch scratch_prototype;  // cloned once per worker lcore
  size_t stream_size = 0;              // bytes of Hyperscan state per open stream
  size_t db_size = 0;
  uint8_t scopes = 0;  // union of all rules' scopes: skip fields no rule reads
};

// Deserializes a compiled rule set (rules::compile_rules output). Setup/agent thread only.
Result<std::unique_ptr<RuleGeneration>> install_generation(const rules::CompiledRules& compiled, uint64_t version);

}  // namespace imf::dp::match
