// The rule-set versions kept in <state_dir>/rules: one <N>.imfrules artifact per version
// (rules/artifact.h) and the text file `active` ("N\n") naming the one the dataplane must run.
//
// The disk is the truth: every call reads the directory, so what a crash leaves behind is exactly
// what the next start sees. Files are replaced atomically (common/atomic_file.h), so an artifact or
// the marker is always whole, old or new. Calls that change the directory must be serialized by
// the caller (Control holds its rules lock); read-only calls may run from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace imf::control {

class VersionStore {
 public:
  explicit VersionStore(std::string dir) : dir_(std::move(dir)) {}

  // Creates the directory (mode 0750) if needed and removes temporary files an interrupted write
  // left behind. Errors name the path.
  Status init() const;

  const std::string& dir() const { return dir_; }
  std::string artifact_path(uint64_t version) const;

  // Versions with an artifact on disk, ascending.
  Result<std::vector<uint64_t>> versions() const;
  // The active version; nullopt when no version was ever activated. An unreadable or garbled
  // marker is an error naming the file.
  Result<std::optional<uint64_t>> active() const;
  // Replaces the marker atomically.
  Status set_active(uint64_t version) const;

  // The number a new version gets: one above every kept version, the active one and `floor`.
  Result<uint64_t> next_version(uint64_t floor) const;
  // The version `rules rollback` picks when none is named: the newest kept version below the
  // active one. Errors say why there is none.
  Result<uint64_t> previous_version() const;

  // Deletes every artifact but the `keep` newest, and never the active one. Returns the deleted
  // versions, ascending.
  Result<std::vector<uint64_t>> prune(size_t keep) const;
  // Deletes one artifact (a load the dataplane refused). Refuses the active version.
  Status remove(uint64_t version) const;

 private:
  std::string dir_;
};

// Removes "*.tmp.*" files (write_file_atomic's temporaries) from `dir`. Returns how many.
Result<size_t> remove_temporaries(const std::string& dir);

}  // namespace imf::control
