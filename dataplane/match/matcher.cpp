#include "match/matcher.h"

#include "rules/topic_filter.h"

namespace imf::dp::match {

bool rule_applies(const RuleGeneration& gen, uint32_t i, const MessageContext& m) {
  const RuleScope& s = gen.scope[i];
  if (!(s.protocols & (1u << m.protocol))) return false;
  if (s.needs_account) {
    if (!m.sender_known) return false;
    if ((m.markers & s.with_mask) != s.with_mask || (m.markers & s.without_mask)) return false;
  }
  if (s.has_channels) {
    // MQTT names channels with topic filters, the other protocols with globs.
    std::string_view channel(m.topic, m.topic_len);
    bool mqtt = m.protocol == 0;
    for (const std::string& f : gen.rules[i].cond.channels) {
      if (mqtt ? rules::topic_matches(f, channel) : rules::glob_matches(f, channel)) return true;
    }
    return false;
  }
  return true;
}

namespace {

struct MatchContext {
  const RuleGeneration* gen;
  uint8_t field;
  const MessageContext* msg;
  ScanResult* out;
};

// Adds rule `id` to `r`; returns true when it decides the verdict (an enforced drop).
bool add_hit(const RuleGeneration& gen, unsigned id, ScanResult* r) {
  if (gen.rules[id].action == rules::Action::kDrop && !gen.scope[id].dry_run) {
    // Keep the drop rule even when alerts filled the array: it decides the verdict.
    if (r->n_hits == ScanResult::kMaxHits) {
      --r->n_hits;
      r->overflow = true;
    }
    r->hits[r->n_hits++] = static_cast<uint16_t>(id);
    r->drop = true;
    return true;
  }
  if (r->n_hits == ScanResult::kMaxHits - 1) {  // leave room for a drop rule
    r->overflow = true;
    return false;
  }
  r->hits[r->n_hits++] = static_cast<uint16_t>(id);
  return false;
}

// Called by Hyperscan for each match. With HS_FLAG_SINGLEMATCH each rule reports at most once
// per field. Returning non-zero stops the scan: a drop verdict needs nothing further.
int on_match(unsigned int id, unsigned long long /*from*/, unsigned long long /*to*/, unsigned int /*flags*/,
             void* ctx) {
  auto* mc = static_cast<MatchContext*>(ctx);
  const RuleGeneration& gen = *mc->gen;
  if (id >= gen.rules.size() || !(gen.rules[id].scope & mc->field)) return 0;
  if (gen.conditional && !rule_applies(gen, id, *mc->msg)) return 0;
  return add_hit(gen, id, mc->out) ? 1 : 0;
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

ScanResult Matcher::scan(hs_stream_t* stream, Field field, const uint8_t* p, uint32_t n, const MessageContext& m) {
  ScanResult r;
  MatchContext mc{&gen_, static_cast<uint8_t>(field), &m, &r};
  hs_error_t e = hs_scan_stream(stream, reinterpret_cast<const char*>(p), n, 0, scratch_.get(), on_match, &mc);
  if (e != HS_SUCCESS && e != HS_SCAN_TERMINATED) r.error = true;
  return r;
}

ScanResult Matcher::end_field(hs_stream_t* stream, Field field, const MessageContext& m) {
  ScanResult r;
  MatchContext mc{&gen_, static_cast<uint8_t>(field), &m, &r};
  if (hs_reset_stream(stream, 0, scratch_.get(), on_match, &mc) != HS_SUCCESS) r.error = true;
  return r;
}

ScanResult Matcher::judge_any_body(const MessageContext& m) const {
  ScanResult r;
  for (uint16_t id : gen_.any_body) {
    if (rule_applies(gen_, id, m) && add_hit(gen_, id, &r)) break;
  }
  return r;
}

void Matcher::reset(hs_stream_t* stream) { hs_reset_stream(stream, 0, nullptr, nullptr, nullptr); }

}  // namespace imf::dp::match
