// RAII owners for Hyperscan objects. The one place the dataplane and the control side free them.
#pragma once

#include <hs/hs.h>

#include <memory>

namespace imf::rules {

struct HsDatabaseFree {
  void operator()(hs_database_t* db) const { hs_free_database(db); }
};
struct HsScratchFree {
  void operator()(hs_scratch_t* s) const { hs_free_scratch(s); }
};
struct HsCompileErrorFree {
  void operator()(hs_compile_error_t* e) const { hs_free_compile_error(e); }
};

using HsDatabase = std::unique_ptr<hs_database_t, HsDatabaseFree>;
using HsScratch = std::unique_ptr<hs_scratch_t, HsScratchFree>;
using HsCompileError = std::unique_ptr<hs_compile_error_t, HsCompileErrorFree>;

}  // namespace imf::rules
