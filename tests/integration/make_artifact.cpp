// Test helper: compiles a rule file into a rule-set artifact of a given version, as the control
// process does, so dataplane tests can install versions through imfd's agent socket directly.
// usage: make_artifact RULES VERSION OUT
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "rules/artifact.h"
#include "rules/rule_parser.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: make_artifact RULES VERSION OUT\n");
    return 2;
  }
  auto set = imf::rules::load_rules_file(argv[1]);
  if (!set) {
    std::fprintf(stderr, "%s\n", set.error().c_str());
    return 1;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto compiled = imf::rules::compile_rules(set.value());
  if (!compiled) {
    std::fprintf(stderr, "%s\n", compiled.error().c_str());
    return 1;
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  imf::rules::RuleSetArtifact a;
  a.version = std::strtoull(argv[2], nullptr, 10);
  a.source = argv[1];
  a.compiled = std::move(compiled.value());
  if (auto st = imf::rules::write_artifact(argv[3], a); !st) {
    std::fprintf(stderr, "%s\n", st.error().c_str());
    return 1;
  }
  std::printf("{\"version\":%llu,\"rules\":%zu,\"compile_ms\":%.1f}\n", static_cast<unsigned long long>(a.version),
              a.compiled.rules.size(), ms);
  return 0;
}
