// A compiled rule-set version on disk: what the control process hands the dataplane.
//
// The control process parses and compiles a rule file, numbers it, and writes one artifact per
// version into its state directory; the dataplane reads the artifact it is told to install (or,
// starting alone, the one the state directory marks active) and only deserializes the database.
//
// File layout (little endian): "IMFRULE2", u64 version, u64 created_unix_ms,
// str source, str rules_text, u32 n_rules, n_rules x {str id, u8 action, u8 scope,
// str category, list channels, list with_markers, list without_markers, u8 dry_run | any_body << 1},
// str database, u64 FNV-1a of every byte before it. str = u32 length + bytes; list = u32 count +
// that many str. "IMFRULE1" artifacts (no conditions after the scope) still read.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "rules/compiler.h"

namespace imf::rules {

struct RuleSetArtifact {
  uint64_t version = 0;
  uint64_t created_unix_ms = 0;
  std::string source;      // where the rules came from (file name given to `rules load`)
  std::string rules_text;  // the rule file as accepted, for `rules show` and `rules diff`
  CompiledRules compiled;  // metadata per match id + serialized streaming database
};

// Serializes `a` and writes it to `path` atomically: a temporary file in the same directory,
// fsync, rename over `path`, fsync of the directory. Errors name the path and the failing step.
// Any thread.
Status write_artifact(const std::string& path, const RuleSetArtifact& a);

// Reads and validates an artifact (magic, lengths, checksum, field values). Errors name the path
// and what is wrong. Any thread.
Result<RuleSetArtifact> read_artifact(const std::string& path);

// The same two steps on memory, for tests and for callers that move artifacts themselves.
std::string encode_artifact(const RuleSetArtifact& a);
Result<RuleSetArtifact> decode_artifact(const std::string& bytes, const std::string& what);

}  // namespace imf::rules
