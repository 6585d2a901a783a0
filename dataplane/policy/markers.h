// Operator-defined marker names -> bits of a 64-bit mask. A bit is assigned on a name's first use
// and never reassigned while the process lives, so masks stored in account entries and compiled
// rules stay meaningful without being rewritten.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace imf::dp::policy {

inline constexpr size_t kMaxMarkerBits = 64;

// Internally locked: the agent thread, rule installs and the record thread may call any method
// concurrently. Workers never call it (they only test bits).
class MarkerRegistry {
 public:
  MarkerRegistry() = default;
  // Starts with `names` at bits 0..n-1 (for building a candidate registry, see adopt()).
  explicit MarkerRegistry(std::vector<std::string> names) : names_(std::move(names)) {}

  // The mask of `names`, assigning bits to names not seen before. All or nothing: on error no bit
  // is assigned. Errors: an invalid name (policy::check_marker_name), or
  // "marker limit of 64 reached: cannot add 'x'".
  Result<uint64_t> mask_of(const std::vector<std::string>& names);
  // Bit of a known name, -1 if unknown; never assigns.
  int bit_of(std::string_view name) const;
  // Names of the set bits, in bit order; unassigned bits are skipped.
  std::vector<std::string> names_of(uint64_t mask) const;
  // All names in bit order.
  std::vector<std::string> names() const;
  size_t size() const;
  // Replaces the names with `grown` if the current names are a prefix of it (no bit changes
  // meaning); false otherwise, leaving this registry unchanged.
  bool adopt(const std::vector<std::string>& grown);

 private:
  mutable std::mutex mu_;
  std::vector<std::string> names_;  // index = bit
};

}  // namespace imf::dp::policy
