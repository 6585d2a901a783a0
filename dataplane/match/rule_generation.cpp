#include "match/rule_generation.h"

namespace imf::dp::match {

Result<std::unique_ptr<RuleGeneration>> install_generation(const rules::CompiledRules& compiled, uint64_t version,
                                                           const MarkerMapper& markers) {
  auto gen = std::make_unique<RuleGeneration>();
  gen->version = version;
  gen->rules = compiled.rules;
  gen->scope.resize(gen->rules.size());
  for (size_t i = 0; i < gen->rules.size(); ++i) {
    const rules::RuleMeta& r = gen->rules[i];
    RuleScope& s = gen->scope[i];
    gen->scopes |= r.scope;
    if (!r.cond.with_markers.empty() || !r.cond.without_markers.empty()) {
      auto with = markers(r.cond.with_markers);
      if (!with) return make_error("rule '" + r.id + "': " + with.error());
      auto without = markers(r.cond.without_markers);
      if (!without) return make_error("rule '" + r.id + "': " + without.error());
      s.with_mask = with.value();
      s.without_mask = without.value();
      s.needs_account = true;
    }
    s.has_channels = !r.cond.channels.empty();
    s.dry_run = r.cond.dry_run;
    if (r.cond.protocols) s.protocols = r.cond.protocols;
    gen->conditional |= s.needs_account || s.has_channels || s.protocols != rules::kAllProtocols;
    if (r.cond.any_body) gen->any_body.push_back(static_cast<uint16_t>(i));
  }

  hs_database_t* db = nullptr;
  if (hs_deserialize_database(compiled.database.data(), compiled.database.size(), &db) != HS_SUCCESS) {
    return make_error("cannot deserialize the Hyperscan database (built by another Hyperscan version?)");
  }
  gen->db.reset(db);
  if (hs_database_size(db, &gen->db_size) != HS_SUCCESS || hs_stream_size(db, &gen->stream_size) != HS_SUCCESS) {
    return make_error("the Hyperscan database is not a streaming database");
  }
  hs_scratch_t* scratch = nullptr;
  if (hs_alloc_scratch(db, &scratch) != HS_SUCCESS) {
    return make_error("cannot allocate Hyperscan scratch (this CPU lacks what the database needs?)");
  }
  gen->scratch_prototype.reset(scratch);
  return gen;
}

}  // namespace imf::dp::match
