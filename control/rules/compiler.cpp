#include "rules/compiler.h"

#include <cctype>
#include <cstdlib>
#include <sstream>

#include "rules/hs_handles.h"

namespace imf::rules {

std::string hs_expression(const Rule& rule) {
  if (!rule.literal) return rule.pattern;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(rule.pattern.size() * 4);
  // In UTF-8 mode \xHH names the code point U+00HH, not a byte: multi-byte characters stay as
  // they are (they are never metacharacters).
  bool utf8 = rule.flags & kFlagUtf8;
  for (unsigned char c : rule.pattern) {
    if (std::isalnum(c) || (utf8 && c >= 0x80)) {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

unsigned hs_flags(const Rule& rule) {
  // One report per rule per scanned field is all a verdict needs, and it keeps scans cheap.
  unsigned f = HS_FLAG_SINGLEMATCH;
  if (rule.flags & kFlagCaseless) f |= HS_FLAG_CASELESS;
  if (rule.flags & kFlagDotAll) f |= HS_FLAG_DOTALL;
  if (rule.flags & kFlagMultiline) f |= HS_FLAG_MULTILINE;
  if (rule.flags & kFlagUtf8) f |= HS_FLAG_UTF8 | HS_FLAG_UCP;
  return f;
}

namespace {

std::string where(const RuleSet& set, const Rule& r) {
  return set.source + ":" + std::to_string(r.line) + ": rule '" + r.id + "': ";
}

}  // namespace

Result<CompiledRules> compile_rules(const RuleSet& set) {
  std::vector<std::string> exprs;
  std::vector<const char*> expr_ptrs;
  std::vector<unsigned> flags;
  std::vector<unsigned> ids;
  std::ostringstream errors;
  exprs.reserve(set.rules.size());

  // hs_compile_multi stops at the first bad expression; checking each first names them all.
  for (size_t i = 0; i < set.rules.size(); ++i) {
    const Rule& r = set.rules[i];
    if (r.cond.any_body) continue;  // judged by the dataplane at each message, not by Hyperscan
    exprs.push_back(hs_expression(r));
    flags.push_back(hs_flags(r));
    ids.push_back(static_cast<unsigned>(i));
    hs_expr_info_t* info = nullptr;
    hs_compile_error_t* raw_err = nullptr;
    if (hs_expression_info(exprs.back().c_str(), flags.back(), &info, &raw_err) != HS_SUCCESS) {
      HsCompileError err(raw_err);
      errors << where(set, r) << "pattern rejected by Hyperscan: " << err->message << '\n';
      continue;
    }
    if (info->min_width == 0) errors << where(set, r) << "pattern can match an empty message\n";
    std::free(info);
  }
  if (std::string all = errors.str(); !all.empty()) {
    all.pop_back();
    return make_error(std::move(all));
  }

  if (exprs.empty()) {
    // Only pattern-less rules: the dataplane still scans with a database. This one cannot match
    // (its id is past the last rule, which the dataplane ignores) and costs nearly nothing.
    exprs.push_back("\\x00imf-no-pattern-rules\\xff\\x00");
    flags.push_back(HS_FLAG_SINGLEMATCH);
    ids.push_back(static_cast<unsigned>(set.rules.size()));
  }
  expr_ptrs.reserve(exprs.size());
  for (const std::string& e : exprs) expr_ptrs.push_back(e.c_str());
  hs_database_t* raw_db = nullptr;
  hs_compile_error_t* raw_err = nullptr;
  if (hs_compile_multi(expr_ptrs.data(), flags.data(), ids.data(), static_cast<unsigned>(exprs.size()), HS_MODE_STREAM,
                       nullptr, &raw_db, &raw_err) != HS_SUCCESS) {
    HsCompileError err(raw_err);
    if (err->expression >= 0 && static_cast<size_t>(err->expression) < ids.size()) {
      return make_error(where(set, set.rules[ids[err->expression]]) + "pattern rejected by Hyperscan: " + err->message);
    }
    return make_error(set.source + ": Hyperscan could not compile the rule set: " + err->message);
  }
  HsDatabase db(raw_db);

  char* bytes = nullptr;
  size_t len = 0;
  if (hs_serialize_database(db.get(), &bytes, &len) != HS_SUCCESS) {
    return make_error(set.source + ": Hyperscan could not serialize the database");
  }
  CompiledRules out;
  out.database.assign(bytes, len);
  std::free(bytes);
  out.rules.reserve(set.rules.size());
  for (const Rule& r : set.rules) out.rules.push_back({r.id, r.action, r.scope, r.cond});
  return out;
}

}  // namespace imf::rules
