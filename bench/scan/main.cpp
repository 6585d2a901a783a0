// imf-scanbench: how fast can this design scan? Replays a message log (bench/common/message_log.h)
// through Hyperscan exactly as the dataplane scans (the ceiling), through Hyperscan block mode
// (reference), and through one PCRE2 JIT pattern per rule (the naive baseline).
#include <getopt.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "report.h"
#include "rules/rule_parser.h"
#include "scan_modes.h"
#include "timed_run.h"

namespace imf::bench::scan {
namespace {

const char* usage() {
  return "usage: imf-scanbench --rules FILE.rules --mlog FILE.mlog [options]\n"
         "options:\n"
         "  --modes LIST              any of hs-stream,hs-block,pcre2 (default: all three, in that order)\n"
         "  --min-seconds S           repeat whole passes until S s of thread CPU time (default 2; at least one)\n"
         "  --max-seconds-pcre2 S     stop pcre2 after S s of CPU time, even mid-pass (default 10)\n"
         "  --json OUT                also write one JSON object to OUT ('-': stdout)\n"
         "JSON: {\"rules\": N, \"rules_file\", \"mlog\", \"log\": {messages, fields, chunks, field_bytes, streams},\n"
         "       \"modes\": {MODE: {first pass: messages, fields, field_bytes, scan_calls, hit_pairs,\n"
         "                          messages_with_hits, scan_errors, complete_pass;\n"
         "                          passes, compile_seconds, db_bytes, scratch_bytes, stream_bytes, streams,\n"
         "                          cpu_seconds, wall_seconds, messages_per_sec, bytes_per_sec, ns_per_byte,\n"
         "                          ns_per_message (per CPU second, all passes),\n"
         "                          total: {messages, fields, field_bytes, scan_calls, hit_pairs, scan_errors}}},\n"
         "       \"cross_check\": {agree, fields, messages, hit_pairs: {MODE: n}}}  (cross_check: 2+ modes)\n"
         "Exit status: 0 ok (warnings on stderr when modes disagree), 1 error, 2 usage.\n";
}

struct Options {
  std::string rules;
  std::string mlog;
  std::vector<std::string> modes;
  double min_seconds = 2;
  double max_seconds_pcre2 = 10;
  std::string json;
};

bool parse_seconds(const char* s, double* out) {
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s, &end);
  if (errno || end == s || *end || !std::isfinite(v) || v < 0) return false;
  *out = v;
  return true;
}

Result<std::vector<std::string>> parse_modes(const std::string& list) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string name = list.substr(pos, comma - pos);
    bool known = false;
    for (const char* k : kModeNames) known |= name == k;
    if (!known) return make_error("unknown mode '" + name + "' (allowed: hs-stream, hs-block, pcre2)");
    for (const std::string& seen : out) {
      if (seen == name) return make_error("mode '" + name + "' given twice");
    }
    out.push_back(name);
    pos = comma + 1;
  }
  return out;
}

Result<Options> parse_options(int argc, char** argv) {
  enum : int { kRules = 1000, kMlog, kModes, kMinSeconds, kMaxSecondsPcre2, kJson, kHelp };
  static const option kLong[] = {
      {"rules", required_argument, nullptr, kRules},
      {"mlog", required_argument, nullptr, kMlog},
      {"modes", required_argument, nullptr, kModes},
      {"min-seconds", required_argument, nullptr, kMinSeconds},
      {"max-seconds-pcre2", required_argument, nullptr, kMaxSecondsPcre2},
      {"json", required_argument, nullptr, kJson},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };
  Options o;
  o.modes.assign(std::begin(kModeNames), std::end(kModeNames));
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "", kLong, nullptr)) != -1) {
    switch (c) {
      case kRules: o.rules = optarg; break;
      case kMlog: o.mlog = optarg; break;
      case kModes: {
        Result<std::vector<std::string>> m = parse_modes(optarg);
        if (!m) return make_error(m.error());
        o.modes = std::move(m).value();
        break;
      }
      case kMinSeconds:
        if (!parse_seconds(optarg, &o.min_seconds)) return make_error("--min-seconds: not a number of seconds");
        break;
      case kMaxSecondsPcre2:
        if (!parse_seconds(optarg, &o.max_seconds_pcre2)) {
          return make_error("--max-seconds-pcre2: not a number of seconds");
        }
        break;
      case kJson: o.json = optarg; break;
      case kHelp: return make_error("");
      default: return make_error(std::string("unknown option or missing value: ") + argv[optind - 1]);
    }
  }
  if (optind < argc) return make_error(std::string("unexpected argument: ") + argv[optind]);
  if (o.rules.empty() || o.mlog.empty()) return make_error("--rules and --mlog are required");
  return o;
}

int run(const Options& o) {
  Result<rules::RuleSet> set = rules::load_rules_file(o.rules);
  if (!set) {
    std::fprintf(stderr, "imf-scanbench: %s\n", set.error().c_str());
    return 1;
  }
  Result<LoadedLog> log = load_message_log(o.mlog);
  if (!log) {
    std::fprintf(stderr, "imf-scanbench: %s\n", log.error().c_str());
    return 1;
  }
  std::vector<uint8_t> rule_scopes;
  for (const rules::Rule& r : set->rules) rule_scopes.push_back(r.scope);

  // Build every mode before timing any, so a rule PCRE2 rejects fails the run at once.
  std::vector<std::unique_ptr<ScanMode>> modes;
  for (const std::string& name : o.modes) {
    std::fprintf(stderr, "imf-scanbench: compiling %zu rules for %s\n", set->rules.size(), name.c_str());
    Result<std::unique_ptr<ScanMode>> m = make_scan_mode(name, set.value(), log.value());
    if (!m) {
      std::fprintf(stderr, "imf-scanbench: %s: %s\n", name.c_str(), m.error().c_str());
      return 1;
    }
    modes.push_back(std::move(m).value());
  }

  BenchReport report;
  report.rules_path = o.rules;
  report.n_rules = set->rules.size();
  report.log = &log.value();
  for (const std::unique_ptr<ScanMode>& m : modes) {
    TimingOptions t;
    t.min_seconds = o.min_seconds;
    if (std::string(m->name()) == "pcre2") t.max_seconds = o.max_seconds_pcre2;
    report.modes.push_back(run_timed(*m, log.value(), rule_scopes, t));
  }
  report.check = cross_check(report.modes, log.value());

  print_table(stdout, report);
  print_warnings(report);
  if (!o.json.empty()) {
    std::string json = to_json(report);
    if (o.json == "-") {
      std::fputs(json.c_str(), stdout);
    } else {
      std::ofstream out(o.json, std::ios::binary | std::ios::trunc);
      out << json;
      out.close();
      if (!out) {
        std::fprintf(stderr, "imf-scanbench: cannot write %s\n", o.json.c_str());
        return 1;
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace imf::bench::scan

int main(int argc, char** argv) {
  imf::Result<imf::bench::scan::Options> o = imf::bench::scan::parse_options(argc, argv);
  if (!o) {
    if (!o.error().empty()) std::fprintf(stderr, "imf-scanbench: %s\n", o.error().c_str());
    std::fputs(imf::bench::scan::usage(), o.error().empty() ? stdout : stderr);
    return o.error().empty() ? 0 : 2;
  }
  return imf::bench::scan::run(o.value());
}
