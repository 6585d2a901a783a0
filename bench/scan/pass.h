// What one pass over the message log counts, and the state every scan mode reports hits into.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rules/rule.h"

namespace imf::bench::scan {

struct PassCounts {
  uint64_t messages = 0;            // payload fields reached, scanned or not
  uint64_t fields = 0;              // fields scanned (kinds no rule reads are skipped)
  uint64_t field_bytes = 0;         // bytes of the fields scanned
  uint64_t scan_calls = 0;          // hs_scan_stream + hs_reset_stream, hs_scan, or pcre2_jit_match calls
  uint64_t hit_pairs = 0;           // distinct (field, rule) matches with the rule's scope covering the field
  uint64_t messages_with_hits = 0;  // payload fields with at least one hit; counted on the first pass only
  uint64_t scan_errors = 0;         // calls that failed (Hyperscan error, PCRE2 match or JIT-stack limit)

  PassCounts& operator+=(const PassCounts& o) {
    messages += o.messages;
    fields += o.fields;
    field_bytes += o.field_bytes;
    scan_calls += o.scan_calls;
    hit_pairs += o.hit_pairs;
    messages_with_hits += o.messages_with_hits;
    scan_errors += o.scan_errors;
    return *this;
  }
};

// State of one pass, owned by the timing loop and handed to ScanMode::run_pass. Single thread.
class PassState {
 public:
  struct Timing {
    std::string mode;
    uint32_t pass = 0;
    uint32_t fields_per_poll = 1;
    double start_cpu = 0;  // thread CPU seconds when the mode's first pass began
    double deadline_cpu = 0;
    double* last_progress_cpu = nullptr;
  };

  // `field_hits`, when not null, receives hits per field (LoadedLog::fields order) and turns on
  // messages_with_hits; the timing loop passes it on the first pass only.
  PassState(const std::vector<uint8_t>& rule_scopes, uint64_t n_fields, std::vector<uint32_t>* field_hits,
            const Timing& timing)
      : rule_scopes_(rule_scopes.data()),
        n_fields_(n_fields),
        field_hits_(field_hits),
        timing_(timing),
        countdown_(timing.fields_per_poll) {}

  PassCounts counts;
  uint64_t fields_reached = 0;  // fields (in LoadedLog::fields order) this pass got through

  // A rule matched a field. Counted only when the rule's scope covers the field kind, as the
  // dataplane's match callback filters. HS_FLAG_SINGLEMATCH (Hyperscan) and one match call per
  // rule and field (PCRE2) make each report a distinct (field, rule) pair.
  void hit(uint32_t rule, uint32_t field, uint8_t field_scope) {
    if (!(rule_scopes_[rule] & field_scope)) return;
    ++counts.hit_pairs;
    if (field_hits_ && (*field_hits_)[field]++ == 0 && field_scope == rules::kScopePayload) {
      ++counts.messages_with_hits;
    }
  }

  // Called by field-at-a-time loops after each field; true when the time limit has passed and the
  // pass must stop. Reads the clock only every fields_per_poll fields.
  bool poll() {
    if (--countdown_ != 0) return false;
    countdown_ = timing_.fields_per_poll;
    return time_up();
  }

 private:
  bool time_up();  // timed_run.cpp: reads the clock, prints progress

  const uint8_t* rule_scopes_;
  uint64_t n_fields_;
  std::vector<uint32_t>* field_hits_;
  Timing timing_;
  uint32_t countdown_;
};

}  // namespace imf::bench::scan
