#include "match/rule_generation.h"

namespace imf::dp::match {

Result<std::unique_ptr<RuleGeneration>> install_generation(const rules::CompiledRules& compiled, uint64_t version) {
  auto gen = std::make_unique<RuleGeneration>();
  gen->version = version;
  gen->rules = compiled.rules;
  for (const rules::RuleMeta& r : gen->rules) gen->scopes |= r.scope;

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
