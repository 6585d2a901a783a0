// An immutable, installed rule set: the deserialized Hyperscan database plus the metadata that
// turns a match id into a verdict. Built on a setup/agent thread, then read by workers.
#pragma once

#include <hs/hs.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "rules/compiler.h"
#include "rules/hs_handles.h"

namespace imf::dp::match {

// A rule's conditions in the form the fast path tests: markers as bits of the account table.
struct RuleScope {
  uint64_t with_mask = 0;     // the sender must carry all of these markers
  uint64_t without_mask = 0;  // ... and none of these
  bool needs_account = false;
  bool has_channels = false;
  bool dry_run = false;
  uint8_t protocols = rules::kAllProtocols;  // bit per protocol (proto::Protocol) it applies to
};

struct RuleGeneration {
  uint64_t version = 0;
  std::vector<rules::RuleMeta> rules;  // indexed by Hyperscan match id
  std::vector<RuleScope> scope;        // indexed like rules
  std::vector<uint16_t> any_body;      // rules without a pattern, judged once per message
  bool conditional = false;            // some rule has channel or marker conditions
  rules::HsDatabase db;
  rules::HsScratch scratch_prototype;  // cloned once per worker lcore
  size_t stream_size = 0;              // bytes of Hyperscan state per open stream
  size_t db_size = 0;
  uint8_t scopes = 0;  // union of all rules' scopes: skip fields no rule reads
};

// Maps marker names to account-table bits (the dataplane's marker registry); errors name the
// marker. Called on the installing thread.
using MarkerMapper = std::function<Result<uint64_t>(const std::vector<std::string>&)>;

// Deserializes a compiled rule set (rules::compile_rules output) and maps its markers.
// Setup/agent thread only.
Result<std::unique_ptr<RuleGeneration>> install_generation(const rules::CompiledRules& compiled, uint64_t version,
                                                           const MarkerMapper& markers);

}  // namespace imf::dp::match
