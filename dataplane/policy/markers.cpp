#include "policy/markers.h"

#include <algorithm>

#include "policy/policy_config.h"

namespace imf::dp::policy {

namespace {

int find(const std::vector<std::string>& names, std::string_view name) {
  auto it = std::find(names.begin(), names.end(), name);
  return it == names.end() ? -1 : static_cast<int>(it - names.begin());
}

}  // namespace

Result<uint64_t> MarkerRegistry::mask_of(const std::vector<std::string>& names) {
  std::lock_guard lock(mu_);
  uint64_t mask = 0;
  size_t next = names_.size();
  std::vector<std::string> fresh;
  for (const auto& n : names) {
    int bit = find(names_, n);
    if (int f = find(fresh, n); bit < 0 && f >= 0) bit = static_cast<int>(names_.size()) + f;
    if (bit < 0) {
      if (auto st = imf::policy::check_marker_name(n); !st) return make_error(st.error());
      if (next == kMaxMarkerBits)
        return make_error("marker limit of " + std::to_string(kMaxMarkerBits) + " reached: cannot add '" + n + "'");
      bit = static_cast<int>(next++);
      fresh.push_back(n);
    }
    mask |= uint64_t{1} << bit;
  }
  names_.insert(names_.end(), fresh.begin(), fresh.end());
  return mask;
}

int MarkerRegistry::bit_of(std::string_view name) const {
  std::lock_guard lock(mu_);
  return find(names_, name);
}

std::vector<std::string> MarkerRegistry::names_of(uint64_t mask) const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (size_t b = 0; b < names_.size(); ++b)
    if (mask & (uint64_t{1} << b)) out.push_back(names_[b]);
  return out;
}

std::vector<std::string> MarkerRegistry::names() const {
  std::lock_guard lock(mu_);
  return names_;
}

size_t MarkerRegistry::size() const {
  std::lock_guard lock(mu_);
  return names_.size();
}

bool MarkerRegistry::adopt(const std::vector<std::string>& grown) {
  std::lock_guard lock(mu_);
  if (grown.size() < names_.size() || !std::equal(names_.begin(), names_.end(), grown.begin())) return false;
  names_ = grown;
  return true;
}

}  // namespace imf::dp::policy
