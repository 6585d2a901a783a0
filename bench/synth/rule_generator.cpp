#include "rule_generator.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "clean_text.h"

namespace imf::bench::synth {

namespace {

// Letters for the parts of a token around its marker: no marker letters (q x z j v k).
constexpr std::string_view kConsonants = "bcdfghlmnprstw";
constexpr std::string_view kVowels = "aeiou";

// Words operators put around a name in a phrase rule. None holds a marker letter, so a phrase
// holds exactly its token's marker.
constexpr std::string_view kPhraseWords[] = {
    "claim",  "your",   "free",   "bargain", "now",     "buy",      "cheap", "best",    "offer",  "limited",
    "deal",   "from",   "get",    "the",     "with",    "new",      "order", "today",   "bonus",  "win",
    "gift",   "card",   "meet",   "hot",     "enter",   "open",     "call",  "us",      "at",     "send",
    "money",  "to",     "secure", "urgent",  "reply",   "sale",     "cash",  "loan",    "crypto", "wallet",
    "reward", "points", "only",   "for",     "members", "official", "store", "support", "team",   "account"};

constexpr std::string_view kTlds[] = {"com", "net", "org", "top", "info", "site", "shop", "online", "store", "app"};
constexpr std::string_view kUrlSuffixes[] = {"-24", "shop", "-app", "now", "1", "-eu", "online", "-pay", "2", "-id"};
constexpr std::string_view kUrlPaths[] = {"/login", "/promo", "/win", "/free-gift", "/signin?id=", "/p/", "/s/"};

constexpr bool words_avoid_marker_letters() {
  for (std::string_view w : kPhraseWords) {
    for (char c : w) {
      for (std::string_view m : kMarkerBigrams) {
        if (c == m[0] || c == m[1]) return false;
      }
    }
  }
  return true;
}
static_assert(words_avoid_marker_letters(), "phrase words must not add marker occurrences");

// The skeleton letter of a token letter: l and i read alike ([i1l]); everything else is itself.
char skeleton(char c) { return c == 'l' ? 'i' : c; }

// The leet class of a token letter, or empty if it has none. Every member has the letter's skeleton.
std::string_view leet_class(char c) {
  switch (c) {
    case 'a': return "a4@";
    case 'e': return "e3";
    case 'i':
    case 'l': return "i1l";
    case 'o': return "o0";
    case 's': return "s5$";
    case 't': return "t7";
    default: return {};
  }
}

char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; }

// A caseless trigger's spelling: mostly lowercase, sometimes Capitalized or UPPER.
std::string case_variant(Rng& rng, std::string_view s) {
  std::string out(s);
  double r = rng.uniform();
  if (r < 0.6) return out;
  if (r < 0.85) {
    out[0] = upper(out[0]);
    return out;
  }
  for (char& c : out) c = upper(c);
  return out;
}

template <typename T, size_t N>
const T& pick(Rng& rng, const T (&items)[N]) {
  return items[rng.below(N)];
}

char pick_char(Rng& rng, std::string_view s) { return s[rng.below(s.size())]; }

std::string digits(Rng& rng, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>('0' + rng.below(10)));
  return s;
}

// The separator a trigger puts where a phone pattern allows [\s.-]?.
std::string_view phone_sep(Rng& rng) {
  static constexpr std::string_view kSeps[] = {"", " ", "-", "."};
  return pick(rng, kSeps);
}

// Appends a digit group, in parentheses if asked.
void append_group(std::string& out, std::string_view group, bool parens) {
  if (parens) out += '(';
  out += group;
  if (parens) out += ')';
}

// Crashes loudly: a trigger that breaks the construction would make every benchmark count wrong.
void check_trigger(const GeneratedRule& r) {
  TextProfile p = profile_text(r.trigger);
  bool ok = !r.trigger.empty();
  for (char c : r.trigger) ok = ok && c >= 0x20 && c < 0x7f;
  if (r.kind == RuleKind::kPhone) {
    ok = ok && p.markers == 0 && p.longest_digit_run == kPhoneDigits;
  } else {
    ok = ok && p.markers == 1 && p.longest_digit_run < kPhoneDigits && !is_marker_letter(r.trigger.front()) &&
         !is_marker_letter(r.trigger.back());
  }
  if (!ok) {
    std::fprintf(stderr, "imf-synth: internal error: trigger '%s' of pattern %s breaks the construction\n",
                 r.trigger.c_str(), r.pattern.c_str());
    std::abort();
  }
}

}  // namespace

const char* rule_kind_name(RuleKind k) {
  switch (k) {
    case RuleKind::kWord: return "word";
    case RuleKind::kPhrase: return "phrase";
    case RuleKind::kUrl: return "url";
    case RuleKind::kPhone: return "phone";
    case RuleKind::kObfuscated: return "obfuscated";
  }
  return "?";
}

std::string RuleGenerator::syllables(size_t letters) {
  // Alternate consonants and vowels, starting with either.
  std::string s;
  bool vowel = rng_.chance(0.35);
  while (s.size() < letters) {
    s.push_back(pick_char(rng_, vowel ? kVowels : kConsonants));
    vowel = !vowel;
  }
  return s;
}

RuleGenerator::Token RuleGenerator::token() {
  for (;;) {
    std::string left = syllables(4);
    size_t m = rng_.below(kMarkerCount);
    std::string right = syllables(4);
    uint64_t key = m;
    for (char c : left + right) key = (key << 5) | static_cast<uint64_t>(skeleton(c) - 'a');
    if (!keys_.insert(key).second) continue;

    Token t;
    if (rng_.chance(0.5)) t.text = syllables(2 + rng_.below(2));
    t.text += left;
    t.text += kMarkerBigrams[m];
    t.text += right;
    if (rng_.chance(0.5)) t.text += syllables(1 + rng_.below(3));
    return t;
  }
}

GeneratedRule RuleGenerator::word(const Token& t) {
  return {RuleKind::kWord, "\"" + t.text + "\"i", case_variant(rng_, t.text)};
}

GeneratedRule RuleGenerator::phrase(const Token& t) {
  size_t n = 2 + rng_.below(3);
  size_t at = rng_.below(n);
  std::string text;
  for (size_t i = 0; i < n; ++i) {
    if (i) text += ' ';
    text += i == at ? std::string_view(t.text) : pick(rng_, kPhraseWords);
  }
  if (rng_.chance(1.0 / 3)) {  // case-sensitive, as written
    text[0] = upper(text[0]);
    return {RuleKind::kPhrase, "\"" + text + "\"", text};
  }
  return {RuleKind::kPhrase, "\"" + text + "\"i", case_variant(rng_, text)};
}

GeneratedRule RuleGenerator::url(const Token& t) {
  bool www = rng_.chance(0.7);
  bool suffix = rng_.chance(0.6);
  bool path = rng_.chance(0.5);
  size_t n_tld = 1 + rng_.below(3);
  std::string_view tlds[3];
  for (size_t i = 0; i < n_tld; ++i) {
    do {
      tlds[i] = pick(rng_, kTlds);
    } while ((i > 0 && tlds[i] == tlds[0]) || (i > 1 && tlds[i] == tlds[1]));
  }

  std::string pattern = "/https?:\\/\\/";
  if (www) pattern += "(www\\.)?";
  pattern += t.text;
  if (suffix) pattern += "[a-z0-9-]{0,8}";
  pattern += "\\.";
  if (n_tld == 1) {
    pattern += tlds[0];
  } else {
    pattern += '(';
    for (size_t i = 0; i < n_tld; ++i) {
      if (i) pattern += '|';
      pattern += tlds[i];
    }
    pattern += ')';
  }
  if (path) pattern += "(\\/\\S*)?";
  pattern += "/i";

  std::string trigger = rng_.chance(0.7) ? "https://" : "http://";
  if (www && rng_.chance(0.6)) trigger += "www.";
  trigger += t.text;
  if (suffix && rng_.chance(0.5)) trigger += pick(rng_, kUrlSuffixes);
  trigger += '.';
  trigger += tlds[rng_.below(n_tld)];
  if (path && rng_.chance(0.6)) {
    std::string_view p = pick(rng_, kUrlPaths);
    trigger += p;
    if (p.back() == '=' || p.back() == '/') trigger += digits(rng_, 3);
  }
  return {RuleKind::kUrl, std::move(pattern), std::move(trigger)};
}

GeneratedRule RuleGenerator::obfuscated(const Token& t) {
  bool leet = rng_.chance(0.8);
  bool seps = !leet || rng_.chance(0.6);
  std::string pattern = "/";
  std::string trigger;
  for (size_t i = 0; i < t.text.size(); ++i) {
    char c = t.text[i];
    std::string_view cls = leet ? leet_class(c) : std::string_view{};
    if (i > 0 && seps) {
      pattern += "[\\s._-]?";
      if (rng_.chance(0.35)) trigger += pick_char(rng_, " ._-");
    }
    if (cls.empty()) {
      pattern += c;
    } else {
      pattern += '[';
      pattern += cls;
      pattern += ']';
    }
    if (!cls.empty() && rng_.chance(0.5)) {
      char alt;
      do {
        alt = pick_char(rng_, cls);
      } while (alt == c);
      trigger += alt;
    } else {
      trigger += rng_.chance(0.1) ? upper(c) : c;
    }
  }
  pattern += "/i";
  return {RuleKind::kObfuscated, std::move(pattern), std::move(trigger)};
}

GeneratedRule RuleGenerator::phone() {
  std::string d;
  for (;;) {
    d = static_cast<char>('1' + rng_.below(9)) + digits(rng_, 7);
    if (phone_keys_.insert(static_cast<uint32_t>(std::strtoul(d.c_str(), nullptr, 10))).second) break;
  }
  std::string pattern = "/";
  std::string trigger;
  bool plus = rng_.chance(0.5);
  bool parens = rng_.chance(0.4);
  switch (rng_.below(3)) {
    case 0:  // +44 (123) 456 ....
      pattern += "\\+?" + d.substr(0, 2) + "[\\s.-]?\\(?" + d.substr(2, 3) + "\\)?[\\s.-]?" + d.substr(5, 3);
      trigger += plus ? "+" : "";
      trigger += d.substr(0, 2);
      trigger += phone_sep(rng_);
      append_group(trigger, d.substr(2, 3), parens);
      trigger += phone_sep(rng_);
      trigger += d.substr(5, 3);
      break;
    case 1:  // +441 23 456 ....
      pattern += "\\+?" + d.substr(0, 3) + "[\\s.-]?" + d.substr(3, 2) + "[\\s.-]?" + d.substr(5, 3);
      trigger += plus ? "+" : "";
      trigger += d.substr(0, 3);
      trigger += phone_sep(rng_);
      trigger += d.substr(3, 2);
      trigger += phone_sep(rng_);
      trigger += d.substr(5, 3);
      break;
    default:  // (4412) 3456 ....
      pattern += "\\(?" + d.substr(0, 4) + "\\)?[\\s.-]?" + d.substr(4, 4);
      append_group(trigger, d.substr(0, 4), parens);
      trigger += phone_sep(rng_);
      trigger += d.substr(4, 4);
      break;
  }
  pattern += "[\\s.-]?";
  trigger += phone_sep(rng_);
  switch (rng_.below(3)) {
    case 0:
      pattern += "\\d{4}";
      trigger += digits(rng_, 4);
      break;
    case 1:
      pattern += "[2-9]\\d{3}";
      trigger += static_cast<char>('2' + rng_.below(8));
      trigger += digits(rng_, 3);
      break;
    default:
      pattern += "\\d{2}[\\s.-]?\\d{2}";
      trigger += digits(rng_, 2);
      trigger += phone_sep(rng_);
      trigger += digits(rng_, 2);
      break;
  }
  pattern += "/";
  return {RuleKind::kPhone, std::move(pattern), std::move(trigger)};
}

GeneratedRule RuleGenerator::next(uint64_t index) {
  RuleKind kind = kKindCycle[index % 10];
  GeneratedRule r;
  switch (kind) {
    case RuleKind::kWord: r = word(token()); break;
    case RuleKind::kPhrase: r = phrase(token()); break;
    case RuleKind::kUrl: r = url(token()); break;
    case RuleKind::kObfuscated: r = obfuscated(token()); break;
    case RuleKind::kPhone: r = phone(); break;
  }
  check_trigger(r);
  return r;
}

namespace {

struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};
using File = std::unique_ptr<FILE, FileCloser>;

Status close_file(File& f, const std::string& path) {
  bool failed = std::ferror(f.get()) != 0;
  failed = std::fclose(f.release()) != 0 || failed;
  if (failed) return make_error(path + ": write error");
  return Ok{};
}

}  // namespace

Status write_rule_set(uint64_t count, uint64_t seed, const std::string& rules_path, const std::string& triggers_path) {
  File rules(std::fopen(rules_path.c_str(), "w"));
  if (!rules) return make_error(rules_path + ": cannot create rule file");
  File triggers(std::fopen(triggers_path.c_str(), "w"));
  if (!triggers) return make_error(triggers_path + ": cannot create trigger file");

  uint64_t per_kind[5] = {};
  for (uint64_t i = 0; i < count; ++i) ++per_kind[static_cast<size_t>(kKindCycle[i % 10])];
  std::fprintf(rules.get(),
               "# Synthetic rule set: imf-synth rules --count %llu --seed %llu (bench/synth/README.md)\n"
               "# Every rule is built around an invented token (or fixed phone digits) that natural text never\n"
               "# holds; the .triggers file gives for each rule a string it matches and no other rule does.\n"
               "# Mix (rule i has kind i %% 10 of: word phrase word url word obfuscated phrase phone word\n"
               "# obfuscated):\n",
               static_cast<unsigned long long>(count), static_cast<unsigned long long>(seed));
  static constexpr const char* kMeaning[5] = {
      "caseless literal of one invented word",
      "literal of 2-4 words around an invented word (1/3 case-sensitive)",
      "regex: URL whose host starts with an invented word",
      "regex: 12-digit phone number, first 8 digits fixed, optional separators",
      "regex: invented word with leet classes and/or optional separators",
  };
  for (size_t k = 0; k < 5; ++k) {
    double pct = count ? 100.0 * static_cast<double>(per_kind[k]) / static_cast<double>(count) : 0.0;
    std::fprintf(rules.get(), "#   %-10s %8llu  %5.1f%%  %s\n", rule_kind_name(static_cast<RuleKind>(k)),
                 static_cast<unsigned long long>(per_kind[k]), pct, kMeaning[k]);
  }
  std::fprintf(rules.get(), "#\n# id  action  scope  pattern\n");

  size_t width = 6;
  for (uint64_t c = count; c >= 1000000; c /= 10) ++width;
  RuleGenerator gen(seed);
  for (uint64_t i = 0; i < count; ++i) {
    GeneratedRule r = gen.next(i);
    std::string number = std::to_string(i + 1);
    std::string id = rule_kind_name(r.kind);
    id.append(".").append(number.size() < width ? width - number.size() : 0, '0').append(number);
    std::fprintf(rules.get(), "%s alert payload %s\n", id.c_str(), r.pattern.c_str());
    std::fprintf(triggers.get(), "%s\t%s\n", id.c_str(), r.trigger.c_str());
  }
  if (Status s = close_file(rules, rules_path); !s) return s;
  return close_file(triggers, triggers_path);
}

}  // namespace imf::bench::synth
