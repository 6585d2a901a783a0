#include "scan_modes.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <hs/hs.h>
#include <pcre2.h>

#include <algorithm>
#include <chrono>
#include <sstream>

#include "rules/compiler.h"
#include "rules/hs_handles.h"

namespace imf::bench::scan {

namespace {

double wall_seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string where(const rules::RuleSet& set, const rules::Rule& r) {
  return set.source + ":" + std::to_string(r.line) + ": rule '" + r.id + "': ";
}

uint8_t scopes_read(const rules::RuleSet& set) {
  uint8_t s = 0;
  for (const rules::Rule& r : set.rules) s |= r.scope;
  return s;
}

// Runs scan_field(data, len, field index, field scope) over every field of a kind in `scopes`, in
// LoadedLog::fields order, polling the clock between fields. The loop hs-block and PCRE2 share.
template <typename ScanField>
bool scan_fields(const LoadedLog& log, uint8_t scopes, PassState& pass, ScanField&& scan_field) {
  const char* data = log.field_data.data();
  const uint64_t n = log.fields.size();
  for (uint64_t i = 0; i < n; ++i) {
    const LogField& f = log.fields[i];
    pass.counts.messages += f.scope == rules::kScopePayload;
    if (f.scope & scopes) {
      ++pass.counts.fields;
      pass.counts.field_bytes += f.len;
      scan_field(data + f.offset, f.len, static_cast<uint32_t>(i), f.scope);
    }
    pass.fields_reached = i + 1;
    if (i + 1 < n && pass.poll()) return false;
  }
  return true;
}

// ---- Hyperscan ----

struct HitContext {
  PassState* pass;
  uint32_t field;
  uint8_t scope;
};

// As the dataplane's on_match, minus the verdict: filter by scope, count, never stop the scan.
int on_hs_match(unsigned int id, unsigned long long /*from*/, unsigned long long /*to*/, unsigned int /*flags*/,
                void* ctx) {
  auto* hc = static_cast<HitContext*>(ctx);
  hc->pass->hit(id, hc->field, hc->scope);
  return 0;
}

Result<rules::HsScratch> alloc_scratch(const hs_database_t* db, ModeInfo* info) {
  hs_scratch_t* raw = nullptr;
  if (hs_alloc_scratch(db, &raw) != HS_SUCCESS) return make_error("cannot allocate Hyperscan scratch");
  rules::HsScratch scratch(raw);
  size_t db_size = 0;
  size_t scratch_size = 0;
  if (hs_database_size(db, &db_size) != HS_SUCCESS || hs_scratch_size(raw, &scratch_size) != HS_SUCCESS) {
    return make_error("cannot size the Hyperscan database or scratch");
  }
  info->db_bytes = db_size;
  info->scratch_bytes = scratch_size;
  return scratch;
}

struct HsStreamClose {
  void operator()(hs_stream_t* s) const { hs_close_stream(s, nullptr, nullptr, nullptr); }
};
using HsStream = std::unique_ptr<hs_stream_t, HsStreamClose>;

class HsStreamMode final : public ScanMode {
 public:
  static Result<std::unique_ptr<ScanMode>> create(const rules::RuleSet& set, const LoadedLog& log) {
    std::unique_ptr<HsStreamMode> m(new HsStreamMode(log, scopes_read(set)));
    double t0 = wall_seconds_now();
    Result<rules::CompiledRules> compiled = rules::compile_rules(set);
    if (!compiled) return make_error(compiled.error());
    hs_database_t* raw = nullptr;
    if (hs_deserialize_database(compiled->database.data(), compiled->database.size(), &raw) != HS_SUCCESS) {
      return make_error("cannot deserialize the streaming database compile_rules built");
    }
    m->db_.reset(raw);
    Result<rules::HsScratch> scratch = alloc_scratch(raw, &m->info_);
    if (!scratch) return make_error(scratch.error());
    m->scratch_ = std::move(scratch).value();
    m->info_.compile_seconds = wall_seconds_now() - t0;
    size_t stream_size = 0;
    if (hs_stream_size(raw, &stream_size) != HS_SUCCESS) return make_error("not a streaming database");
    m->info_.stream_bytes = stream_size;
    m->info_.streams = log.n_streams;
    // As StreamPool does: every flow direction's stream exists before the first byte arrives.
    m->streams_.reserve(log.n_streams);
    for (uint32_t i = 0; i < log.n_streams; ++i) {
      hs_stream_t* s = nullptr;
      if (hs_open_stream(raw, 0, &s) != HS_SUCCESS) {
        return make_error("cannot open Hyperscan stream " + std::to_string(i) + " of " + std::to_string(log.n_streams));
      }
      m->streams_.emplace_back(s);
    }
    return std::unique_ptr<ScanMode>(std::move(m));
  }

  const char* name() const override { return "hs-stream"; }

  // Chunk by chunk in capture order, as Matcher::scan and Matcher::end_field are driven by the
  // inspector; every field ends in a reset, so the streams are clean again after a pass.
  bool run_pass(PassState& pass) override {
    PassCounts& c = pass.counts;
    const char* data = log_.file.data();
    hs_scratch_t* scratch = scratch_.get();
    for (const LogChunk& ch : log_.chunks) {
      if (ch.ends_field) c.messages += ch.scope == rules::kScopePayload;
      if (!(ch.scope & scopes_)) continue;
      hs_stream_t* s = streams_[ch.stream].get();
      HitContext ctx{&pass, ch.field, ch.scope};
      if (ch.len != 0) {  // the MQTT decoder never hands the matcher an empty piece
        ++c.scan_calls;
        if (hs_scan_stream(s, data + ch.offset, ch.len, 0, scratch, on_hs_match, &ctx) != HS_SUCCESS) ++c.scan_errors;
        c.field_bytes += ch.len;
      }
      if (ch.ends_field) {
        ++c.fields;
        ++c.scan_calls;
        if (hs_reset_stream(s, 0, scratch, on_hs_match, &ctx) != HS_SUCCESS) ++c.scan_errors;
      }
    }
    pass.fields_reached = log_.fields.size();
    return true;
  }

 private:
  HsStreamMode(const LoadedLog& log, uint8_t scopes) : log_(log), scopes_(scopes) {}

  const LoadedLog& log_;
  uint8_t scopes_;
  rules::HsDatabase db_;
  rules::HsScratch scratch_;
  std::vector<HsStream> streams_;  // declared last: closed before the database is freed
};

class HsBlockMode final : public ScanMode {
 public:
  static Result<std::unique_ptr<ScanMode>> create(const rules::RuleSet& set, const LoadedLog& log) {
    std::unique_ptr<HsBlockMode> m(new HsBlockMode(log, scopes_read(set)));
    double t0 = wall_seconds_now();
    std::vector<std::string> exprs;
    std::vector<const char*> ptrs;
    std::vector<unsigned> flags;
    std::vector<unsigned> ids;
    exprs.reserve(set.rules.size());
    for (size_t i = 0; i < set.rules.size(); ++i) {
      exprs.push_back(rules::hs_expression(set.rules[i]));
      flags.push_back(rules::hs_flags(set.rules[i]));
      ids.push_back(static_cast<unsigned>(i));
    }
    ptrs.reserve(exprs.size());
    for (const std::string& e : exprs) ptrs.push_back(e.c_str());
    hs_database_t* raw = nullptr;
    hs_compile_error_t* raw_err = nullptr;
    if (hs_compile_multi(ptrs.data(), flags.data(), ids.data(), static_cast<unsigned>(ptrs.size()), HS_MODE_BLOCK,
                         nullptr, &raw, &raw_err) != HS_SUCCESS) {
      rules::HsCompileError err(raw_err);
      if (err->expression >= 0 && static_cast<size_t>(err->expression) < set.rules.size()) {
        return make_error(where(set, set.rules[err->expression]) + "block mode: " + err->message);
      }
      return make_error(set.source + ": block mode: " + err->message);
    }
    m->db_.reset(raw);
    Result<rules::HsScratch> scratch = alloc_scratch(raw, &m->info_);
    if (!scratch) return make_error(scratch.error());
    m->scratch_ = std::move(scratch).value();
    m->info_.compile_seconds = wall_seconds_now() - t0;
    return std::unique_ptr<ScanMode>(std::move(m));
  }

  const char* name() const override { return "hs-block"; }

  bool run_pass(PassState& pass) override {
    const hs_database_t* db = db_.get();
    hs_scratch_t* scratch = scratch_.get();
    return scan_fields(log_, scopes_, pass, [&](const char* p, uint32_t n, uint32_t field, uint8_t scope) {
      HitContext ctx{&pass, field, scope};
      ++pass.counts.scan_calls;
      if (hs_scan(db, p, n, 0, scratch, on_hs_match, &ctx) != HS_SUCCESS) ++pass.counts.scan_errors;
    });
  }

 private:
  HsBlockMode(const LoadedLog& log, uint8_t scopes) : log_(log), scopes_(scopes) {}

  const LoadedLog& log_;
  uint8_t scopes_;
  rules::HsDatabase db_;
  rules::HsScratch scratch_;
};

// ---- PCRE2 ----

struct Pcre2CodeFree {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct Pcre2MatchDataFree {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
struct Pcre2MatchContextFree {
  void operator()(pcre2_match_context* m) const { pcre2_match_context_free(m); }
};
struct Pcre2JitStackFree {
  void operator()(pcre2_jit_stack* s) const { pcre2_jit_stack_free(s); }
};

// The JIT stack grows on demand up to this; deep backtracking beyond it is a scan error.
constexpr size_t kJitStackStart = 32 * 1024;
constexpr size_t kJitStackMax = 4 * 1024 * 1024;

// hs_flags() without SINGLEMATCH, which one pcre2_jit_match per rule and field gives anyway.
uint32_t pcre2_options(const rules::Rule& r) {
  uint32_t o = 0;
  if (r.flags & rules::kFlagCaseless) o |= PCRE2_CASELESS;
  if (r.flags & rules::kFlagDotAll) o |= PCRE2_DOTALL;
  if (r.flags & rules::kFlagMultiline) o |= PCRE2_MULTILINE;
  // Hyperscan does not check UTF-8 validity; let PCRE2 scan invalid input too rather than fail.
  if (r.flags & rules::kFlagUtf8) o |= PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  return o;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  if (pcre2_get_error_message(code, buf, sizeof buf) < 0) return "PCRE2 error " + std::to_string(code);
  return reinterpret_cast<const char*>(buf);
}

class Pcre2Mode final : public ScanMode {
 public:
  static Result<std::unique_ptr<ScanMode>> create(const rules::RuleSet& set, const LoadedLog& log) {
    std::unique_ptr<Pcre2Mode> m(new Pcre2Mode(log, scopes_read(set)));
    std::ostringstream errors;
    double t0 = wall_seconds_now();
    m->codes_.reserve(set.rules.size());
    for (size_t i = 0; i < set.rules.size(); ++i) {
      const rules::Rule& r = set.rules[i];
      std::string expr = rules::hs_expression(r);
      int code = 0;
      PCRE2_SIZE offset = 0;
      Pcre2Code c(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(expr.data()), expr.size(), pcre2_options(r), &code,
                                &offset, nullptr));
      if (!c) {
        errors << where(set, r) << "PCRE2 rejects the pattern at offset " << offset << ": " << pcre2_message(code)
               << '\n';
      } else if (int jit = pcre2_jit_compile(c.get(), PCRE2_JIT_COMPLETE); jit != 0) {
        errors << where(set, r) << "PCRE2 JIT compile failed: " << pcre2_message(jit) << '\n';
      }
      m->codes_.push_back(std::move(c));
      for (uint8_t scope : {rules::kScopePayload, rules::kScopeTopic}) {
        if (r.scope & scope) m->rules_for_[scope].push_back(static_cast<uint32_t>(i));
      }
    }
    if (std::string all = errors.str(); !all.empty()) {
      all.pop_back();
      return make_error(std::move(all));
    }
    m->match_data_.reset(pcre2_match_data_create(1, nullptr));
    m->match_context_.reset(pcre2_match_context_create(nullptr));
    m->jit_stack_.reset(pcre2_jit_stack_create(kJitStackStart, kJitStackMax, nullptr));
    if (!m->match_data_ || !m->match_context_ || !m->jit_stack_) return make_error("PCRE2: out of memory");
    pcre2_jit_stack_assign(m->match_context_.get(), nullptr, m->jit_stack_.get());
    m->info_.compile_seconds = wall_seconds_now() - t0;
    for (const Pcre2Code& c : m->codes_) {
      size_t size = 0;
      size_t jit_size = 0;
      pcre2_pattern_info(c.get(), PCRE2_INFO_SIZE, &size);
      pcre2_pattern_info(c.get(), PCRE2_INFO_JITSIZE, &jit_size);
      m->info_.db_bytes += size + jit_size;
    }
    m->info_.scratch_bytes = kJitStackMax;
    // A field costs one match call per rule: read the clock every few thousand calls.
    m->fields_per_poll_ = static_cast<uint32_t>(std::max<size_t>(1, 4096 / std::max<size_t>(1, set.rules.size())));
    return std::unique_ptr<ScanMode>(std::move(m));
  }

  const char* name() const override { return "pcre2"; }

  bool run_pass(PassState& pass) override {
    pcre2_match_data* md = match_data_.get();
    pcre2_match_context* mc = match_context_.get();
    return scan_fields(log_, scopes_, pass, [&](const char* p, uint32_t n, uint32_t field, uint8_t scope) {
      auto subject = reinterpret_cast<PCRE2_SPTR>(p);
      for (uint32_t r : rules_for_[scope]) {
        ++pass.counts.scan_calls;
        int rc = pcre2_jit_match(codes_[r].get(), subject, n, 0, 0, md, mc);
        if (rc >= 0) {
          pass.hit(r, field, scope);
        } else if (rc != PCRE2_ERROR_NOMATCH) {
          ++pass.counts.scan_errors;
        }
      }
    });
  }

 private:
  using Pcre2Code = std::unique_ptr<pcre2_code, Pcre2CodeFree>;

  Pcre2Mode(const LoadedLog& log, uint8_t scopes) : log_(log), scopes_(scopes) {}

  const LoadedLog& log_;
  uint8_t scopes_;
  std::vector<Pcre2Code> codes_;        // indexed by rule
  std::vector<uint32_t> rules_for_[3];  // rules whose scope covers a field kind, by its scope bit
  std::unique_ptr<pcre2_match_data, Pcre2MatchDataFree> match_data_;
  std::unique_ptr<pcre2_match_context, Pcre2MatchContextFree> match_context_;
  std::unique_ptr<pcre2_jit_stack, Pcre2JitStackFree> jit_stack_;
};

}  // namespace

Result<std::unique_ptr<ScanMode>> make_scan_mode(const std::string& name, const rules::RuleSet& set,
                                                 const LoadedLog& log) {
  if (name == "hs-stream") return HsStreamMode::create(set, log);
  if (name == "hs-block") return HsBlockMode::create(set, log);
  if (name == "pcre2") return Pcre2Mode::create(set, log);
  return make_error("unknown scan mode '" + name + "' (hs-stream, hs-block, pcre2)");
}

}  // namespace imf::bench::scan
