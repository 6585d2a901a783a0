#include "clean_text.h"

#include <array>

namespace imf::bench::synth {

namespace {

// pair_table[a][b]: letters a, b (0-25) form a marker bigram.
constexpr std::array<std::array<bool, 26>, 26> make_pair_table() {
  std::array<std::array<bool, 26>, 26> t{};
  for (std::string_view m : kMarkerBigrams) t[m[0] - 'a'][m[1] - 'a'] = true;
  return t;
}
constexpr auto kPairTable = make_pair_table();

constexpr std::array<bool, 26> make_letter_table() {
  std::array<bool, 26> t{};
  for (std::string_view m : kMarkerBigrams) t[m[0] - 'a'] = t[m[1] - 'a'] = true;
  return t;
}
constexpr auto kLetterTable = make_letter_table();

// Letter index 0-25 of an ASCII letter, any case; -1 otherwise.
inline int letter(char c) {
  char l = static_cast<char>(c | 0x20);
  return l >= 'a' && l <= 'z' ? l - 'a' : -1;
}

inline bool is_phone_gap(char c) { return is_separator(c) || c == '(' || c == ')' || c == '+'; }

}  // namespace

bool is_marker_letter(char c) {
  int l = letter(c);
  return l >= 0 && kLetterTable[l];
}

TextProfile profile_text(std::string_view s) {
  TextProfile p;
  uint32_t run = 0;  // digits in the current run
  uint32_t gap = 0;  // gap characters since the run's last digit
  size_t n = s.size();
  for (size_t i = 0; i < n; ++i) {
    char c = s[i];
    if (c >= '0' && c <= '9') {
      run = (run > 0 && gap <= 2) ? run + 1 : 1;
      gap = 0;
      if (run > p.longest_digit_run) p.longest_digit_run = run;
      continue;
    }
    if (is_phone_gap(c)) {
      if (run > 0 && ++gap > 2) run = 0;
    } else {
      run = 0;
    }
    int a = letter(c);
    if (a < 0 || !kLetterTable[a] || i + 1 >= n) continue;
    int b = letter(s[i + 1]);
    if (b >= 0) {
      if (kPairTable[a][b]) ++p.markers;
    } else if (is_separator(s[i + 1]) && i + 2 < n) {
      b = letter(s[i + 2]);
      if (b >= 0 && kPairTable[a][b]) ++p.markers;
    }
  }
  return p;
}

}  // namespace imf::bench::synth
