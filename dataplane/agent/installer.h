// Installs rule-set versions into running workers without stopping them.
//
// The installer owns every rule generation and every worker Engine. install() builds the new
// generation and one Engine per worker (scratch clone, streams for every flow slot) off the fast
// path, offers them through LcoreCtx::pending, waits until every worker has switched (each does
// so between two bursts), then frees what the workers retired: the per-worker handshake is the
// grace period, so no worker ever touches freed memory. While it runs, two rule sets exist at
// once; generation_bytes() reports the memory of what is live.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/result.h"
#include "match/rule_generation.h"
#include "rules/compiler.h"
#include "worker.h"

namespace imf::dp::agent {

struct InstallTimes {
  uint64_t version = 0;
  int64_t unix_ms = 0;
  double load_ms = 0;  // deserialize the database, clone scratch, open streams
  double swap_ms = 0;  // hand over to every worker and free the old version
};

class RuleInstaller {
 public:
  // budget_bytes: most memory the rule sets may hold at once (databases, scratch, streams of
  // every worker), the swap's two versions included; 0 = unlimited.
  // markers: maps rule marker names to account-table bits (the table's registry).
  RuleInstaller(uint32_t flows_per_lcore, size_t budget_bytes, match::MarkerMapper markers)
      : flows_(flows_per_lcore), budget_(budget_bytes), markers_(std::move(markers)) {}
  ~RuleInstaller();
  RuleInstaller(const RuleInstaller&) = delete;
  RuleInstaller& operator=(const RuleInstaller&) = delete;

  // Before the workers exist: the first generation. Setup thread.
  Status start(const rules::CompiledRules& compiled, uint64_t version);
  // The engine a new worker starts with (owned by the installer). Setup thread, after start().
  Result<Engine*> first_engine();
  // The workers to switch from now on. Setup thread, before launch.
  void attach(std::vector<LcoreCtx*> workers) { workers_ = std::move(workers); }

  // While the workers run: switch them all to `compiled` as `version`. On any error the running
  // version stays; a version that would not fit beside the running one in the budget is refused
  // before anything is allocated for it. Waits at most `timeout` for the workers. One thread at a time (the agent).
  Result<InstallTimes> install(const rules::CompiledRules& compiled, uint64_t version,
                               std::chrono::milliseconds timeout = std::chrono::seconds(10));

  const match::RuleGeneration& current() const { return *gens_.back(); }
  uint64_t version() const { return gens_.back()->version; }
  const InstallTimes& last_install() const { return last_; }
  size_t generation_bytes() const;  // databases + engines alive now

 private:
  void free_retired();

  uint32_t flows_;
  size_t budget_;
  match::MarkerMapper markers_;
  std::vector<LcoreCtx*> workers_;
  std::vector<std::unique_ptr<match::RuleGeneration>> gens_;  // back() is current
  std::vector<std::unique_ptr<Engine>> engines_;              // every engine a worker holds or may hold
  InstallTimes last_;
};

}  // namespace imf::dp::agent
