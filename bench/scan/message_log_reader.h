// Loads a whole message log (bench/common/message_log.h) into memory and checks it, so that timed
// scan passes touch nothing but RAM and never meet a malformed record.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace imf::bench::scan {

// One chunk record, in capture order. `scope` is the field kind as a rules::Scope bit, so a scan
// compares it with rule scopes directly.
struct LogChunk {
  uint64_t offset;  // of the chunk's bytes in LoadedLog::file
  uint32_t len;
  uint32_t stream;
  uint32_t field;  // index into LoadedLog::fields
  uint8_t scope;   // rules::kScopePayload or rules::kScopeTopic
  bool ends_field;
};

// One whole field, numbered in the order its last chunk arrives (the order a streaming scan
// completes fields), so a pass cut short covers the same prefix in every mode.
struct LogField {
  uint64_t offset;  // of the field's bytes in LoadedLog::field_data
  uint32_t len;
  uint32_t stream;
  uint8_t scope;
};

struct LoadedLog {
  std::string path;
  uint32_t n_streams = 0;
  uint64_t n_messages = 0;
  uint64_t field_bytes = 0;
  std::string file;              // the whole log as read
  std::vector<LogChunk> chunks;  // capture order, streams interleaved
  std::vector<LogField> fields;  // completion order
  std::string field_data;        // every field's bytes, contiguous, for block mode and PCRE2; padded
};

// Reads and validates `path`: magic, record sizes, truncation, stream numbers, field kinds and
// flags, fields that never end, and the header's counts. Errors name the file, the chunk and its
// byte offset. Any thread; allocates the whole file plus a copy of its field bytes.
Result<LoadedLog> load_message_log(const std::string& path);

}  // namespace imf::bench::scan
