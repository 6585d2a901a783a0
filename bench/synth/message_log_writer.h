// Writes the message log (bench/common/message_log.h) as the capture is generated: one chunk per
// piece of a field carried by one TCP segment. The header is rewritten with the totals on close.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "common/result.h"
#include "message_log.h"

namespace imf::bench::synth {

class MessageLogWriter {
 public:
  static Result<std::unique_ptr<MessageLogWriter>> create(const std::string& path, uint32_t n_streams);
  ~MessageLogWriter();
  MessageLogWriter(const MessageLogWriter&) = delete;
  MessageLogWriter& operator=(const MessageLogWriter&) = delete;

  // Appends a chunk of `n` bytes of one field of `stream`; `ends` on its last chunk.
  void chunk(uint32_t stream, FieldKind field, bool ends, const uint8_t* p, uint32_t n);
  // Counts one PUBLISH.
  void message() { ++header_.n_messages; }

  uint64_t field_bytes() const { return header_.field_bytes; }

  // Flushes, writes the final header, closes; errors name the path.
  Status close();

 private:
  static constexpr size_t kBufferSize = 4 << 20;
  MessageLogWriter(std::string path, FILE* f, uint32_t n_streams);
  void append(const void* p, size_t n);
  void flush();

  std::string path_;
  FILE* f_;
  MessageLogHeader header_{};
  std::unique_ptr<uint8_t[]> buf_;
  size_t used_ = 0;
  bool failed_ = false;
};

}  // namespace imf::bench::synth
