// imf-scanbench output: the cross-check between modes, the table on stdout and the JSON object.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "message_log_reader.h"
#include "timed_run.h"

namespace imf::bench::scan {

// Hits of every mode over the prefix of the log all of them scanned in their first pass.
struct CrossCheck {
  bool compared = false;  // two or more modes ran
  bool agree = true;
  uint64_t fields = 0;                                      // LoadedLog::fields compared
  uint64_t messages = 0;                                    // payload fields among them
  std::vector<std::pair<std::string, uint64_t>> hit_pairs;  // per mode, over those fields
  uint64_t first_difference = 0;                            // a field the modes disagree on (when !agree)
};

CrossCheck cross_check(const std::vector<ModeResult>& modes, const LoadedLog& log);

struct BenchReport {
  std::string rules_path;
  size_t n_rules = 0;
  const LoadedLog* log = nullptr;
  std::vector<ModeResult> modes;
  CrossCheck check;
};

// The human-readable table. Any thread.
void print_table(std::FILE* out, const BenchReport& r);

// Warns on stderr when the modes disagree or a scan call failed. Returns true if it warned.
bool print_warnings(const BenchReport& r);

// {"rules": n, "mlog": path, "modes": {name: {...}}, ...}; the schema is in main.cpp's usage text.
std::string to_json(const BenchReport& r);

}  // namespace imf::bench::scan
