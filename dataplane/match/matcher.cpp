#include "match/matcher.h"

namespace imf::dp::match {

namespace {

struct MatchContext {
  const RuleGeneration* gen;
  uint8_t field;
  ScanResult* out;
};

// Called by Hyperscan for each match. With HS_FLAG_SINGLEMATCH each rule reports at most once
// per field. Returning non-zero stops the scan: a drop verdict needs nothing further.
int on_match(unsigned int id, unsigned long long /*from*/, unsigned long long /*to*/, unsigned int /*flags*/,
             void* ctx) {
  auto* mc = static_cast<MatchContext*>(ctx);
  const rules::RuleMeta& rule = mc->gen->rules[id];
  if (!(rule.scope & mc->field)) return 0;
  ScanResult* r = mc->out;
  if (rule.action == rules::Action::kDrop) {
    // Keep the drop rule even when alerts filled the array: it decides the verdict.
    if (r->n_hits == ScanResult::kMaxHits) {
      --r->n_hits;
      r->overflow = true;
    }
    r->hits[r->n_hits++] = static_cast<uint16_t>(id);
    r->drop = true;
    return 1;
  }
  if (r->n_hits == ScanResult::kMaxHits - 1) {  // leave room for a drop rule
    r->overflow = true;
    return 0;
  }
  r->hits[r->n_hits++] = static_cast<uint16_t>(id);
  return 0;
}

}  // namespace

Result<std::unique_ptr<StreamPool>> StreamPool::create(const RuleGeneration& gen, uint32_t count) {
  std::unique_ptr<StreamPool> pool(new StreamPool(count));
  for (uint32_t i = 0; i < count; ++i) {
    if (hs_open_stream(gen.db.get(), 0, &pool->streams_[i]) != HS_SUCCESS) {
      return make_error("cannot open Hyperscan stream " + std::to_string(i) + " of " + std::to_string(count) +
                        " (out of memory?)");
    }
  }
  return pool;
}

StreamPool::~StreamPool() {
  for (uint32_t i = 0; i < count_; ++i) {
    if (streams_[i]) hs_close_stream(streams_[i], nullptr, nullptr, nullptr);
  }
}

Result<std::unique_ptr<Matcher>> Matcher::create(const RuleGeneration& gen) {
  hs_scratch_t* s = nullptr;
  if (hs_clone_scratch(gen.scratch_prototype.get(), &s) != HS_SUCCESS) {
    return make_error("cannot clone Hyperscan scratch");
  }
  return std::unique_ptr<Matcher>(new Matcher(gen, s));
}

ScanResult Matcher::scan(hs_stream_t* stream, Field field, const uint8_t* p, uint32_t n) {
  ScanResult r;
  MatchContext mc{&gen_, static_cast<uint8_t>(field), &r};
  hs_error_t e = hs_scan_stream(stream, reinterpret_cast<const char*>(p), n, 0, scratch_.get(), on_match, &mc);
  if (e != HS_SUCCESS && e != HS_SCAN_TERMINATED) r.error = true;
  return r;
}

ScanResult Matcher::end_field(hs_stream_t* stream, Field field) {
  ScanResult r;
  MatchContext mc{&gen_, static_cast<uint8_t>(field), &r};
  if (hs_reset_stream(stream, 0, scratch_.get(), on_match, &mc) != HS_SUCCESS) r.error = true;
  return r;
}

void Matcher::reset(hs_stream_t* stream) { hs_reset_stream(stream, 0, nullptr, nullptr, nullptr); }

}  // namespace imf::dp::match
