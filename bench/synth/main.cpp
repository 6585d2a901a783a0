// imf-synth: synthetic rule sets with triggers, and synthetic MQTT captures with their message log.
// See bench/synth/README.md.
#include <getopt.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "rule_generator.h"
#include "traffic.h"

namespace imf::bench::synth {
namespace {

const char* usage() {
  return "usage: imf-synth rules --count N [--seed S] --out FILE.rules --triggers FILE.triggers\n"
         "       imf-synth traffic --profile mixed|full|small --flows N --messages M [options] --out PREFIX\n"
         "traffic options:\n"
         "  --match-fraction F   fraction 0..1 of messages that carry one rule trigger (default 0)\n"
         "  --triggers FILE      'rule_id<TAB>trigger' lines from 'imf-synth rules' (needed when F > 0)\n"
         "  --corpus PATH        text file or directory, repeatable (default /usr/share/games/fortunes)\n"
         "  --seed S             PRNG seed (default 1); same arguments and seed give identical files\n"
         "  --queues Q           split flows over PREFIX.q0.pcap .. q{Q-1}.pcap by flow % Q (default 1)\n"
         "  --mqtt-port P        server port of the MQTT sessions (default 1883)\n"
         "  --fragment SIZE      mixed, full: send every data segment whose IP payload exceeds SIZE as\n"
         "                       IPv4 fragments of at most SIZE payload bytes (a multiple of 8, 24-1472;\n"
         "                       imfd reassembles at most 8 fragments: SIZE >= 192 for full segments)\n"
         "outputs: PREFIX.pcap (or PREFIX.q<i>.pcap), PREFIX.mlog, PREFIX.json\n"
         "profile small: --messages is the number of 60-byte frames; no MQTT, empty message log\n";
}

Status parse_u64(const char* opt, const char* s, uint64_t lo, uint64_t hi, uint64_t* out) {
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
    return make_error(std::string(opt) + ": '" + s + "' is not a number " + std::to_string(lo) + "-" +
                      std::to_string(hi));
  }
  *out = v;
  return Ok{};
}

enum : int {
  kCount = 1000,
  kSeed,
  kOut,
  kTriggers,
  kProfile,
  kFlows,
  kMessages,
  kMatchFraction,
  kCorpus,
  kQueues,
  kMqttPort,
  kFragment,
  kHelp
};

constexpr option kLong[] = {
    {"count", required_argument, nullptr, kCount},
    {"seed", required_argument, nullptr, kSeed},
    {"out", required_argument, nullptr, kOut},
    {"triggers", required_argument, nullptr, kTriggers},
    {"profile", required_argument, nullptr, kProfile},
    {"flows", required_argument, nullptr, kFlows},
    {"messages", required_argument, nullptr, kMessages},
    {"match-fraction", required_argument, nullptr, kMatchFraction},
    {"corpus", required_argument, nullptr, kCorpus},
    {"queues", required_argument, nullptr, kQueues},
    {"mqtt-port", required_argument, nullptr, kMqttPort},
    {"fragment", required_argument, nullptr, kFragment},
    {"help", no_argument, nullptr, kHelp},
    {nullptr, 0, nullptr, 0},
};

// Options of both subcommands; `given` marks which appeared.
struct Args {
  uint64_t count = 0;
  std::string rules_out;
  TrafficOptions traffic;
  bool given[kHelp - kCount + 1] = {};
  bool has(int opt) const { return given[opt - kCount]; }
};

Result<Args> parse_args(int argc, char** argv) {
  Args a;
  optind = 1;
  opterr = 0;
  int c;
  uint64_t v;
  while ((c = getopt_long(argc, argv, ":", kLong, nullptr)) != -1) {
    if (c >= kCount && c <= kHelp) a.given[c - kCount] = true;
    Status st = Ok{};
    switch (c) {
      case kCount: st = parse_u64("--count", optarg, 1, 100000000, &a.count); break;
      case kSeed: st = parse_u64("--seed", optarg, 0, UINT64_MAX, &a.traffic.seed); break;
      case kOut: a.rules_out = a.traffic.out = optarg; break;
      case kTriggers: a.traffic.triggers = optarg; break;
      case kProfile:
        if (std::strcmp(optarg, "mixed") == 0) {
          a.traffic.profile = Profile::kMixed;
        } else if (std::strcmp(optarg, "full") == 0) {
          a.traffic.profile = Profile::kFull;
        } else if (std::strcmp(optarg, "small") == 0) {
          a.traffic.profile = Profile::kSmall;
        } else {
          return make_error(std::string("--profile: '") + optarg + "' is not mixed, full or small");
        }
        break;
      case kFlows: st = parse_u64("--flows", optarg, 1, INT32_MAX, &a.traffic.flows); break;
      case kMessages: st = parse_u64("--messages", optarg, 0, UINT64_MAX / 4, &a.traffic.messages); break;
      case kMatchFraction: {
        errno = 0;
        char* end = nullptr;
        double f = std::strtod(optarg, &end);
        if (errno || end == optarg || *end || !std::isfinite(f) || f < 0 || f > 1) {
          return make_error(std::string("--match-fraction: '") + optarg + "' is not a number 0..1");
        }
        a.traffic.match_fraction = f;
        break;
      }
      case kCorpus: a.traffic.corpus.push_back(optarg); break;
      case kQueues:
        st = parse_u64("--queues", optarg, 1, 1024, &v);
        a.traffic.queues = static_cast<uint32_t>(v);
        break;
      case kMqttPort:
        st = parse_u64("--mqtt-port", optarg, 1, 65535, &v);
        a.traffic.mqtt_port = static_cast<uint16_t>(v);
        break;
      case kFragment:
        // The first fragment must hold the whole TCP header (RFC 1858): at least 24 bytes.
        st = parse_u64("--fragment", optarg, 24, 1472, &v);
        if (st && v % 8) st = make_error(std::string("--fragment: '") + optarg + "' is not a multiple of 8");
        a.traffic.fragment = static_cast<uint32_t>(v);
        break;
      case kHelp: return make_error(usage());
      case ':': return make_error(std::string("option '") + argv[optind - 1] + "' needs a value");
      default: return make_error(std::string("unknown option '") + argv[optind - 1] + "'\n" + usage());
    }
    if (!st) return make_error(st.error());
  }
  if (optind < argc) return make_error(std::string("unexpected argument '") + argv[optind] + "'");
  return a;
}

// Rejects options that belong to the other subcommand, so a typo is not silently ignored.
Status only(const Args& a, std::initializer_list<int> allowed, const char* sub) {
  for (const option* o = kLong; o->name; ++o) {
    if (!a.has(o->val) || o->val == kHelp) continue;
    bool ok = false;
    for (int x : allowed) ok = ok || x == o->val;
    if (!ok) return make_error(std::string("--") + o->name + " is not an option of '" + sub + "'");
  }
  return Ok{};
}

Status run_rules(const Args& a) {
  if (Status s = only(a, {kCount, kSeed, kOut, kTriggers}, "rules"); !s) return s;
  if (!a.has(kCount)) return make_error("--count N is required");
  if (!a.has(kOut)) return make_error("--out FILE.rules is required");
  if (!a.has(kTriggers)) return make_error("--triggers FILE.triggers is required");
  return write_rule_set(a.count, a.traffic.seed, a.rules_out, a.traffic.triggers);
}

Status run_traffic_cmd(Args a) {
  if (Status s = only(
          a,
          {kProfile, kFlows, kMessages, kMatchFraction, kTriggers, kCorpus, kSeed, kOut, kQueues, kMqttPort, kFragment},
          "traffic");
      !s) {
    return s;
  }
  TrafficOptions& o = a.traffic;
  if (!a.has(kProfile)) return make_error("--profile mixed|full|small is required");
  if (!a.has(kFlows)) return make_error("--flows N is required");
  if (!a.has(kMessages)) return make_error("--messages M is required");
  if (!a.has(kOut)) return make_error("--out PREFIX is required");
  if (o.profile != Profile::kSmall) {
    if (o.match_fraction > 0 && o.triggers.empty()) {
      return make_error("--match-fraction above 0 needs --triggers FILE.triggers");
    }
    if (o.corpus.empty()) o.corpus.push_back("/usr/share/games/fortunes");
  } else if (a.has(kFragment)) {
    return make_error("--fragment applies to the mixed and full profiles");
  }
  return run_traffic(o);
}

int run(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(usage(), argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string sub = argv[1];
  if (sub != "rules" && sub != "traffic") {
    std::fprintf(stderr, "imf-synth: unknown subcommand '%s' (rules or traffic)\n%s", argv[1], usage());
    return 2;
  }
  auto args = parse_args(argc - 1, argv + 1);
  if (!args) {
    std::fprintf(stderr, "imf-synth %s: %s\n", argv[1], args.error().c_str());
    return 2;
  }
  Status s = sub == "rules" ? run_rules(args.value()) : run_traffic_cmd(args.value());
  if (!s) {
    std::fprintf(stderr, "imf-synth %s: %s\n", argv[1], s.error().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace imf::bench::synth

int main(int argc, char** argv) { return imf::bench::synth::run(argc, argv); }
