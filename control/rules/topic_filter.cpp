#include "rules/topic_filter.h"

#include <string>

namespace imf::rules {

Status check_topic_filter(std::string_view f) {
  if (f.empty() || f.size() > 128) return make_error("topic filter must be 1-128 bytes");
  for (size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    bool level_start = i == 0 || f[i - 1] == '/';
    bool level_end = i + 1 == f.size() || f[i + 1] == '/';
    if (c == '+' && !(level_start && level_end))
      return make_error("'+' must fill a whole level in '" + std::string(f) + "'");
    if (c == '#' && !(level_start && i + 1 == f.size()))
      return make_error("'#' must be the last level in '" + std::string(f) + "'");
    if (c == '\0') return make_error("topic filter contains NUL");
  }
  return Ok{};
}

bool topic_matches(std::string_view filter, std::string_view topic) {
  if (!filter.empty() && (filter[0] == '+' || filter[0] == '#') && !topic.empty() && topic[0] == '$') return false;
  size_t f = 0, t = 0;
  while (f < filter.size()) {
    if (filter[f] == '#') return true;  // matches the parent level too: "a/#" covers "a"
    if (filter[f] == '+') {
      while (t < topic.size() && topic[t] != '/') ++t;
      ++f;
    } else {
      size_t fe = filter.find('/', f);
      if (fe == std::string_view::npos) fe = filter.size();
      size_t te = topic.find('/', t);
      if (te == std::string_view::npos) te = topic.size();
      if (filter.substr(f, fe - f) != topic.substr(t, te - t)) return false;
      f = fe;
      t = te;
    }
    // Both at a separator or both at the end.
    if (f == filter.size()) return t == topic.size();
    if (t == topic.size()) {
      // "a/#" against "a": the remaining filter must be exactly "/#".
      return filter.substr(f) == "/#";
    }
    ++f;
    ++t;
  }
  return t == topic.size() && f == filter.size();
}

Status check_glob(std::string_view glob) {
  if (glob.empty() || glob.size() > 256) return make_error("a channel glob is 1-256 bytes");
  for (char c : glob) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u == 0x7f) return make_error("a channel glob holds no spaces or control characters");
  }
  return Ok{};
}

bool glob_matches(std::string_view glob, std::string_view text) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  // Greedy with one backtrack point (the last '*'), the classic wildcard matcher: a failed run
  // after a '*' restarts one byte further, never recursing.
  size_t g = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (g < glob.size() && (glob[g] == '?' || (glob[g] != '*' && lower(glob[g]) == lower(text[t])))) {
      ++g;
      ++t;
    } else if (g < glob.size() && glob[g] == '*') {
      star = g++;
      mark = t;
    } else if (star != std::string_view::npos) {
      g = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

}  // namespace imf::rules
