#include "timed_run.h"

#include <time.h>

#include <cstdio>

namespace imf::bench::scan {

namespace {

double clock_seconds(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
double cpu_now() { return clock_seconds(CLOCK_THREAD_CPUTIME_ID); }
double wall_now() { return clock_seconds(CLOCK_MONOTONIC); }

constexpr double kProgressEvery = 1.0;  // seconds of CPU time between progress lines

}  // namespace

bool PassState::time_up() {
  double now = cpu_now();
  if (now - *timing_.last_progress_cpu >= kProgressEvery) {
    *timing_.last_progress_cpu = now;
    std::fprintf(stderr, "imf-scanbench: %s pass %u: %llu/%llu fields, %.1f s cpu\n", timing_.mode.c_str(),
                 timing_.pass + 1, static_cast<unsigned long long>(fields_reached),
                 static_cast<unsigned long long>(n_fields_), now - timing_.start_cpu);
  }
  return now >= timing_.deadline_cpu;
}

ModeResult run_timed(ScanMode& mode, const LoadedLog& log, const std::vector<uint8_t>& rule_scopes,
                     const TimingOptions& t) {
  ModeResult res;
  res.name = mode.name();
  res.info = mode.info();
  res.field_hits.assign(log.fields.size(), 0);

  PassState::Timing timing;
  timing.mode = res.name;
  timing.fields_per_poll = mode.fields_per_poll();
  double last_progress = cpu_now();
  timing.last_progress_cpu = &last_progress;
  double wall0 = wall_now();
  timing.start_cpu = cpu_now();
  timing.deadline_cpu = timing.start_cpu + t.max_seconds;
  for (;; ++timing.pass) {
    PassState pass(rule_scopes, log.fields.size(), timing.pass == 0 ? &res.field_hits : nullptr, timing);
    bool complete = mode.run_pass(pass);
    res.total += pass.counts;
    if (timing.pass == 0) {
      res.pass = pass.counts;
      res.complete_pass = complete;
      res.fields_reached = pass.fields_reached;
    }
    res.passes += complete;
    double now = cpu_now();
    double elapsed = now - timing.start_cpu;
    if (now - last_progress >= kProgressEvery || !complete || elapsed >= t.min_seconds) {
      last_progress = now;
      std::fprintf(stderr, "imf-scanbench: %s pass %u %s, %.2f s cpu\n", res.name.c_str(), timing.pass + 1,
                   complete ? "done" : "stopped at the time limit", elapsed);
    }
    if (!complete || elapsed >= t.min_seconds || now >= timing.deadline_cpu) break;
  }
  res.cpu_seconds = cpu_now() - timing.start_cpu;
  res.wall_seconds = wall_now() - wall0;
  return res;
}

}  // namespace imf::bench::scan
