// The one timing loop every scan mode runs under: whole passes over the log until enough thread
// CPU time has passed, with an optional hard limit that may stop a pass midway.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "message_log_reader.h"
#include "pass.h"
#include "scan_modes.h"

namespace imf::bench::scan {

struct TimingOptions {
  double min_seconds = 2;                                        // keep starting passes until this much CPU time
  double max_seconds = std::numeric_limits<double>::infinity();  // stop even mid-pass after this much
};

struct ModeResult {
  std::string name;
  ModeInfo info;
  PassCounts pass;  // the first pass, complete or (when cut short) partial
  bool complete_pass = false;
  uint64_t fields_reached = 0;       // fields of LoadedLog::fields the first pass got through
  std::vector<uint32_t> field_hits;  // hits per field in the first pass, for the cross-check
  PassCounts total;                  // every pass, the last one possibly partial
  uint32_t passes = 0;               // complete passes
  double cpu_seconds = 0;            // thread CPU time of all passes
  double wall_seconds = 0;
};

// Runs `mode` over `log` at least once and until `t.min_seconds` of thread CPU time have passed,
// printing progress to stderr. `rule_scopes` holds each rule's scope, indexed by rule.
// Calling thread only (the CPU clock is the calling thread's).
ModeResult run_timed(ScanMode& mode, const LoadedLog& log, const std::vector<uint8_t>& rule_scopes,
                     const TimingOptions& t);

}  // namespace imf::bench::scan
