#include "agent/installer.h"

#include <algorithm>
#include <thread>

namespace imf::dp::agent {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

RuleInstaller::~RuleInstaller() = default;

Status RuleInstaller::start(const rules::CompiledRules& compiled, uint64_t version) {
  auto t0 = std::chrono::steady_clock::now();
  auto gen = match::install_generation(compiled, version, markers_);
  if (!gen) return make_error(gen.error());
  gens_.push_back(std::move(gen.value()));
  last_ = InstallTimes{version, now_unix_ms(), ms_since(t0), 0};
  return Ok{};
}

Result<Engine*> RuleInstaller::first_engine() {
  auto e = make_engine(current(), flows_);
  if (!e) return make_error(e.error());
  engines_.push_back(std::move(e.value()));
  return engines_.back().get();
}

Result<InstallTimes> RuleInstaller::install(const rules::CompiledRules& compiled, uint64_t version,
                                            std::chrono::milliseconds timeout) {
  auto t0 = std::chrono::steady_clock::now();
  auto gen_r = match::install_generation(compiled, version, markers_);
  if (!gen_r) return make_error(gen_r.error());
  std::unique_ptr<match::RuleGeneration> gen = std::move(gen_r.value());
  size_t need = gen->db_size + std::max<size_t>(workers_.size(), 1) * engine_bytes(*gen, flows_);
  if (budget_ && generation_bytes() + need > budget_) {
    return make_error("version " + std::to_string(version) + " needs " + std::to_string(need >> 20) +
                      " MiB beside the running version's " + std::to_string(generation_bytes() >> 20) +
                      " MiB: over the rule-set memory budget of " + std::to_string(budget_ >> 20) + " MiB");
  }
  std::vector<std::unique_ptr<Engine>> fresh;
  for (size_t i = 0; i < workers_.size(); ++i) {
    auto e = make_engine(*gen, flows_);
    if (!e) return make_error("worker " + std::to_string(i) + ": " + e.error());
    fresh.push_back(std::move(e.value()));
  }
  double load_ms = ms_since(t0);

  // Hand over. Release: the worker that acquires `pending` sees a fully built engine.
  auto t1 = std::chrono::steady_clock::now();
  gens_.push_back(std::move(gen));
  for (size_t i = 0; i < workers_.size(); ++i) workers_[i]->pending.store(fresh[i].get(), std::memory_order_release);
  for (auto& e : fresh) engines_.push_back(std::move(e));

  // Wait until every worker runs the new version (or has stopped).
  for (;;) {
    bool all = std::all_of(workers_.begin(), workers_.end(), [&](const LcoreCtx* w) {
      return w->version.load(std::memory_order_acquire) == version || w->finished.load(std::memory_order_acquire);
    });
    if (all) break;
    if (std::chrono::steady_clock::now() - t1 > timeout) {
      // A worker that has not switched may still do so: leave everything in place (the next
      // install or the destructor frees it) rather than race it.
      return make_error("workers did not take version " + std::to_string(version) + " within " +
                        std::to_string(timeout.count()) + " ms");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  free_retired();
  last_ = InstallTimes{version, now_unix_ms(), load_ms, ms_since(t1)};
  return last_;
}

void RuleInstaller::free_retired() {
  // Acquire: the worker released the engine after its last use.
  for (LcoreCtx* w : workers_) w->retired.exchange(nullptr, std::memory_order_acq_rel);
  // Keep exactly the engines some worker runs or may still pick up.
  std::vector<const Engine*> live;
  for (LcoreCtx* w : workers_) {
    live.push_back(w->engine.load(std::memory_order_acquire));
    if (const Engine* p = w->pending.load(std::memory_order_acquire)) live.push_back(p);
  }
  std::erase_if(engines_, [&](const std::unique_ptr<Engine>& e) {
    return std::find(live.begin(), live.end(), e.get()) == live.end();
  });
  // Then the generations no engine uses, except the newest.
  const match::RuleGeneration* newest = gens_.back().get();
  std::erase_if(gens_, [&](const std::unique_ptr<match::RuleGeneration>& g) {
    if (g.get() == newest) return false;
    return std::none_of(engines_.begin(), engines_.end(),
                        [&](const std::unique_ptr<Engine>& e) { return e->gen == g.get(); });
  });
}

size_t RuleInstaller::generation_bytes() const {
  size_t n = 0;
  for (const auto& g : gens_) n += g->db_size;
  for (const auto& e : engines_) n += e->bytes;
  return n;
}

}  // namespace imf::dp::agent
