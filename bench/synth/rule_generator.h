// Synthetic rule sets of the kinds operators write, each rule with a trigger: a string that rule
// matches and, by construction, no other rule of the set does.
//
// Kinds, fixed by the rule's position so any prefix of a set has the same mix (kKindCycle):
//   40% word        "token"i
//   20% phrase      "claim your token bonus"i  (a third of them case-sensitive)
//   10% url         /https?:\/\/(www\.)?token[a-z0-9-]{0,8}\.(com|net|top)(\/\S*)?/i
//   10% phone       /\+?44[\s.-]?\(?123\)?[\s.-]?456[\s.-]?\d{4}/  (12 digits, the first 8 fixed)
//   20% obfuscated  /t[\s._-]?[o0][\s._-]?.../i  (leet classes, optional separators)
//
// Why no trigger matches a second rule (see clean_text.h for the marker bigrams):
//  - A non-phone token is P + L + m + R + S: m a marker bigram, L and R exactly four letters
//    without marker letters, P and S optional syllables. Every pattern writes each token letter as
//    a class whose members all have that letter's skeleton (lowercase, l and i alike, leet digits
//    and @ $ mapped back), with at most one separator between letters. A trigger holds exactly one
//    marker occurrence, so a rule matching it must align its own marker there and read its four
//    L and R letters off the trigger's: the skeleton key (L, m, R) would be equal. Keys are unique.
//  - A phone rule needs 12 digits in one run (clean_text.h); a phone trigger's run has exactly 12,
//    so a rule matching it uses all of them, and its fixed first 8 digits, unique per rule, decide.
//  - Non-phone rules need a marker, which phone triggers lack; phone rules need a 12-digit run,
//    which non-phone triggers lack.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>

#include "common/result.h"
#include "rng.h"

namespace imf::bench::synth {

enum class RuleKind : uint8_t { kWord, kPhrase, kUrl, kPhone, kObfuscated };

const char* rule_kind_name(RuleKind k);

// Kind of rule i is kKindCycle[i % 10]: 4 word, 2 phrase, 1 url, 1 phone, 2 obfuscated.
inline constexpr RuleKind kKindCycle[10] = {RuleKind::kWord, RuleKind::kPhrase,     RuleKind::kWord,   RuleKind::kUrl,
                                            RuleKind::kWord, RuleKind::kObfuscated, RuleKind::kPhrase, RuleKind::kPhone,
                                            RuleKind::kWord, RuleKind::kObfuscated};

struct GeneratedRule {
  RuleKind kind;
  std::string pattern;  // as written in a rule file: "literal"FLAGS or /regex/FLAGS
  std::string trigger;  // printable ASCII, no tab or newline
};

// Generates rules one at a time; remembers each key to keep them unique. One thread.
class RuleGenerator {
 public:
  explicit RuleGenerator(uint64_t seed) : rng_(seed) {}

  // Rule number `index` (0-based) of the set.
  GeneratedRule next(uint64_t index);

 private:
  struct Token {
    std::string text;  // lowercase letters: P + L + marker + R + S
  };
  Token token();
  std::string syllables(size_t letters);
  GeneratedRule word(const Token& t);
  GeneratedRule phrase(const Token& t);
  GeneratedRule url(const Token& t);
  GeneratedRule obfuscated(const Token& t);
  GeneratedRule phone();

  Rng rng_;
  std::unordered_set<uint64_t> keys_;        // (L, m, R) skeletons
  std::unordered_set<uint32_t> phone_keys_;  // fixed 8-digit prefixes
};

// Writes `count` rules (action alert, scope payload) to rules_path and one "id<TAB>trigger" line
// per rule to triggers_path. Errors name the file.
Status write_rule_set(uint64_t count, uint64_t seed, const std::string& rules_path, const std::string& triggers_path);

}  // namespace imf::bench::synth
