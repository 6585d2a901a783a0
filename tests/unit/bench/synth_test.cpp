// Checks the construction imf-synth's benchmarks rely on, with the real engine: every trigger
// matches exactly its own rule, corpus bodies match none, a planted body matches once; and the
// frame checksums against a plain reference.
#include <gtest/gtest.h>
#include <hs/hs.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "clean_text.h"
#include "corpus.h"
#include "frame.h"
#include "messages.h"
#include "rule_generator.h"
#include "rules/compiler.h"
#include "rules/rule_parser.h"

namespace imf::bench::synth {
namespace {

std::string rule_id(size_t i) {
  std::string id = "r";
  return id.append(std::to_string(i));
}

// A block-mode database of generated rules, and the rule ids one string matches.
class Engine {
 public:
  explicit Engine(const std::vector<GeneratedRule>& gen) {
    std::string text;
    for (size_t i = 0; i < gen.size(); ++i)
      text.append(rule_id(i)).append(" alert payload ").append(gen[i].pattern) += '\n';
    auto set = rules::parse_rules(text, "gen.rules");
    EXPECT_TRUE(set.ok()) << set.error();
    std::vector<std::string> exprs;
    std::vector<const char*> ptrs;
    std::vector<unsigned> flags, ids;
    for (size_t i = 0; i < set->rules.size(); ++i) {
      exprs.push_back(rules::hs_expression(set->rules[i]));
      flags.push_back(rules::hs_flags(set->rules[i]));
      ids.push_back(static_cast<unsigned>(i));
    }
    for (const std::string& e : exprs) ptrs.push_back(e.c_str());
    hs_compile_error_t* err = nullptr;
    EXPECT_EQ(hs_compile_multi(ptrs.data(), flags.data(), ids.data(), static_cast<unsigned>(ptrs.size()), HS_MODE_BLOCK,
                               nullptr, &db_, &err),
              HS_SUCCESS)
        << (err ? err->message : "");
    if (err) hs_free_compile_error(err);
    EXPECT_EQ(hs_alloc_scratch(db_, &scratch_), HS_SUCCESS);
  }
  ~Engine() {
    hs_free_scratch(scratch_);
    hs_free_database(db_);
  }

  std::vector<unsigned> matches(std::string_view s) {
    std::vector<unsigned> out;
    auto on_match = [](unsigned id, unsigned long long, unsigned long long, unsigned, void* ctx) {
      static_cast<std::vector<unsigned>*>(ctx)->push_back(id);
      return 0;
    };
    EXPECT_EQ(hs_scan(db_, s.data(), static_cast<unsigned>(s.size()), 0, scratch_, on_match, &out), HS_SUCCESS);
    return out;
  }

 private:
  hs_database_t* db_ = nullptr;
  hs_scratch_t* scratch_ = nullptr;
};

std::vector<GeneratedRule> generate(size_t n, uint64_t seed) {
  RuleGenerator g(seed);
  std::vector<GeneratedRule> out;
  for (size_t i = 0; i < n; ++i) out.push_back(g.next(i));
  return out;
}

// Plain English with the traps natural text holds: digits, dotted words, a marker that must go.
constexpr const char* kCorpusText =
    "The quick brown fox jumps over the lazy dog near Iraq. Xerxes was a king.\n%\n"
    "Call me at 555 1234 or at 0800 123 456 between 9 and 17 o'clock; it is 3.14159 past noon.\n%\n"
    "Jack and Jill went up the hill to fetch a pail of water. Jack fell down and broke his crown,\n"
    "and Jill came tumbling after. Version 2.6.32-5 of the kernel fixed it in 2011.\n%\n"
    "This text holds an Iraqi quiz of sorts: qxz so it is dropped.\n%\n"
    "Your lucky number is 3552664958674928. Watch for it everywhere.\n%\n"
    "A well-known proverb: all that glitters is not gold, and every cloud has a silver lining.\n";

class CorpusFile {
 public:
  CorpusFile() {
    char tmpl[] = "/tmp/imf-synth-test-XXXXXX";
    int fd = mkstemp(tmpl);
    path_ = tmpl;
    FILE* f = fdopen(fd, "w");
    std::fputs(kCorpusText, f);
    std::fclose(f);
  }
  ~CorpusFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(CleanText, FindsMarkersAcrossOneSeparatorOnly) {
  EXPECT_EQ(profile_text("aqxb").markers, 1u);
  EXPECT_EQ(profile_text("aQ.Xb").markers, 1u);
  EXPECT_EQ(profile_text("aq. xb").markers, 0u);
  EXPECT_EQ(profile_text("box quiz jazz").markers, 0u);
  EXPECT_EQ(profile_text("+44 (123) 456-7890 12").longest_digit_run, 14u);  // the gap " " joins "12"
  EXPECT_EQ(profile_text("+44 (123) 456-7890; 12").longest_digit_run, 12u);
  EXPECT_EQ(profile_text("+44 (123) 456 / 7890").longest_digit_run, 8u);
}

TEST(RuleGenerator, SameSeedSameRulesAndTheDocumentedMix) {
  auto a = generate(500, 9), b = generate(500, 9);
  size_t per_kind[5] = {};
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].pattern, b[i].pattern);
    EXPECT_EQ(a[i].trigger, b[i].trigger);
    ++per_kind[static_cast<size_t>(a[i].kind)];
  }
  EXPECT_EQ(per_kind[static_cast<size_t>(RuleKind::kWord)], 200u);
  EXPECT_EQ(per_kind[static_cast<size_t>(RuleKind::kPhrase)], 100u);
  EXPECT_EQ(per_kind[static_cast<size_t>(RuleKind::kUrl)], 50u);
  EXPECT_EQ(per_kind[static_cast<size_t>(RuleKind::kPhone)], 50u);
  EXPECT_EQ(per_kind[static_cast<size_t>(RuleKind::kObfuscated)], 100u);
}

TEST(RuleGenerator, EachTriggerMatchesExactlyItsOwnRule) {
  auto gen = generate(3000, 42);
  Engine engine(gen);
  for (size_t i = 0; i < gen.size(); ++i) {
    std::vector<unsigned> m = engine.matches(gen[i].trigger);
    ASSERT_EQ(m.size(), 1u) << gen[i].trigger << " (" << gen[i].pattern << ")";
    EXPECT_EQ(m[0], i) << gen[i].trigger;
  }
}

TEST(BodyMaker, CorpusBodiesMatchNothingAndPlantedBodiesMatchOnce) {
  auto gen = generate(1000, 7);
  Engine engine(gen);
  std::vector<Trigger> triggers;
  for (size_t i = 0; i < gen.size(); ++i) {
    triggers.push_back(Trigger{rule_id(i), gen[i].trigger, profile_text(gen[i].trigger)});
  }
  CorpusFile file;
  auto corpus = Corpus::load({file.path()}, 1, 4096);
  ASSERT_TRUE(corpus.ok()) << corpus.error();
  EXPECT_EQ(corpus->texts(), 4u);
  EXPECT_EQ(corpus->dropped(), 2u);  // the marker and the 16-digit number

  BodyMaker bodies(corpus.value(), triggers);
  Rng rng(3);
  for (int i = 0; i < 4000; ++i) {
    bool plant = i % 2 == 1;
    auto size = static_cast<uint32_t>(1 + rng.below(600));
    std::string body(bodies.make(rng, size, plant));
    EXPECT_EQ(engine.matches(body).size(), plant ? 1u : 0u) << body;
  }
}

// RFC 1071 the slow way: big-endian 16-bit words.
uint16_t reference_checksum(const std::vector<uint8_t>& b) {
  uint32_t sum = 0;
  for (size_t i = 0; i < b.size(); i += 2) sum += (b[i] << 8) | (i + 1 < b.size() ? b[i + 1] : 0);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

TEST(Frame, TcpAndIpChecksumsVerify) {
  for (uint32_t len : {0u, 1u, 7u, 100u, 1459u, 1460u}) {
    std::vector<uint8_t> payload(len);
    for (uint32_t i = 0; i < len; ++i) payload[i] = static_cast<uint8_t>(i * 37 + 11);
    uint8_t frame[kMaxFrame];
    L4Addr a{0x0a010203, 0x0a020001, 40000, 1883, true};
    uint32_t n = write_tcp_frame(frame, a, TcpFields{0x11223344, 0x55667788, kTcpAck | kTcpPsh, len == 0}, 7,
                                 payload.data(), len);
    EXPECT_EQ(n, std::max(kMinFrame, kEthHeader + kIpHeader + kTcpHeader + (len == 0 ? 4 : 0) + len));
    const uint8_t* ip = frame + kEthHeader;
    EXPECT_EQ(reference_checksum(std::vector<uint8_t>(ip, ip + kIpHeader)), 0);
    uint32_t l4 = ((ip[2] << 8) | ip[3]) - kIpHeader;
    std::vector<uint8_t> pseudo(ip + 12, ip + 20);
    pseudo.insert(pseudo.end(), {0, 6, static_cast<uint8_t>(l4 >> 8), static_cast<uint8_t>(l4)});
    pseudo.insert(pseudo.end(), ip + kIpHeader, ip + kIpHeader + l4);
    EXPECT_EQ(reference_checksum(pseudo), 0) << "payload " << len;
  }
}

}  // namespace
}  // namespace imf::bench::synth
