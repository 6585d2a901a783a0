// The three ways imf-scanbench scans a message log:
//   hs-stream  the dataplane's design and its ceiling: the streaming database imfd installs, one
//              stream per flow direction opened up front, fields scanned chunk by chunk as the
//              segments carried them and ended with a stream reset (dataplane/match/matcher.h);
//   hs-block   the same rules compiled in block mode, one hs_scan per whole field, for reference;
//   pcre2      the naive baseline: one PCRE2 JIT pattern per rule, each run over every field its
//              scope covers.
// Every mode skips field kinds no rule reads and counts a hit only when the rule's scope covers
// the field kind.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "message_log_reader.h"
#include "pass.h"
#include "rules/rule.h"

namespace imf::bench::scan {

struct ModeInfo {
  double compile_seconds = 0;  // wall time to build what the scans use from the parsed rules
  uint64_t db_bytes = 0;       // hs_database_size; PCRE2: compiled plus JIT code of all rules
  uint64_t scratch_bytes = 0;  // hs_scratch_size; PCRE2: the JIT stack limit
  uint64_t stream_bytes = 0;   // hs_stream_size, per stream (hs-stream only)
  uint64_t streams = 0;        // streams held open (hs-stream only)
};

class ScanMode {
 public:
  virtual ~ScanMode() = default;
  virtual const char* name() const = 0;

  // Scans the whole log once, in order, reporting hits into `pass`. Returns false when
  // pass.poll() stopped it before the end. Creating thread only.
  virtual bool run_pass(PassState& pass) = 0;

  const ModeInfo& info() const { return info_; }
  // How many fields to scan between clock reads when a pass may be stopped early.
  uint32_t fields_per_poll() const { return fields_per_poll_; }

 protected:
  ModeInfo info_;
  uint32_t fields_per_poll_ = 1u << 16;
};

inline const char* const kModeNames[] = {"hs-stream", "hs-block", "pcre2"};

// Builds the mode called `name` (one of kModeNames) for `set`, timing the build. hs-stream uses
// rules::compile_rules and hs_deserialize_database, exactly what imfd installs. Errors name the
// rule a compiler rejected (PCRE2: every one). `log` must outlive the mode.
Result<std::unique_ptr<ScanMode>> make_scan_mode(const std::string& name, const rules::RuleSet& set,
                                                 const LoadedLog& log);

}  // namespace imf::bench::scan
