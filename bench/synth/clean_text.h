// The contract between the rule generator and the traffic synthesizer that makes the expected hit
// count exact: what a rule needs in order to match, and a test that text has none of it.
//
//  - Every word, phrase, URL and obfuscated rule is built around a token holding exactly one
//    marker bigram (two letters from q x z j v k that English text never puts side by side, e.g.
//    "qx"), written literally in the pattern with at most one optional separator [\s._-] between
//    the two letters. Any string such a rule matches therefore holds a marker occurrence.
//  - Every phone rule needs kPhoneDigits digits in one run whose digits are at most two characters
//    of [\s.()+-] apart.
//
// Text with neither (is_clean) can match no synthesized rule; a message with one trigger inserted
// and nothing else of the kind can match only that trigger's rule (see rule_generator.h).
#pragma once

#include <cstdint>
#include <string_view>

namespace imf::bench::synth {

inline constexpr uint32_t kPhoneDigits = 12;

// The marker bigrams, lowercase.
inline constexpr std::string_view kMarkerBigrams[] = {"qx", "qz", "qj", "xz", "zq", "jq",
                                                      "jx", "jz", "vq", "vz", "vj", "kx"};
inline constexpr size_t kMarkerCount = sizeof(kMarkerBigrams) / sizeof(kMarkerBigrams[0]);

// The letters marker bigrams are made of; the rest of every token avoids them.
bool is_marker_letter(char c);

// The separators obfuscated rules allow between letters: [\s._-].
inline bool is_separator(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '.' || c == '_' || c == '-';
}

struct TextProfile {
  uint32_t markers = 0;            // marker occurrences, caseless, with at most one separator inside
  uint32_t longest_digit_run = 0;  // digits in the longest phone-like run
};

// Scans `s` once. Thread-safe.
TextProfile profile_text(std::string_view s);

inline bool is_clean(std::string_view s) {
  TextProfile p = profile_text(s);
  return p.markers == 0 && p.longest_digit_run < kPhoneDigits;
}

}  // namespace imf::bench::synth
