#include "message_log_writer.h"

#include <algorithm>
#include <cstring>

namespace imf::bench::synth {

MessageLogWriter::MessageLogWriter(std::string path, FILE* f, uint32_t n_streams)
    : path_(std::move(path)), f_(f), buf_(new uint8_t[kBufferSize]) {
  std::memcpy(header_.magic, kMessageLogMagic, sizeof(header_.magic));
  header_.n_streams = n_streams;
}

Result<std::unique_ptr<MessageLogWriter>> MessageLogWriter::create(const std::string& path, uint32_t n_streams) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return make_error(path + ": cannot create message log");
  std::unique_ptr<MessageLogWriter> w(new MessageLogWriter(path, f, n_streams));
  w->append(&w->header_, sizeof(w->header_));  // placeholder until close()
  return w;
}

MessageLogWriter::~MessageLogWriter() {
  if (f_) std::fclose(f_);
}

void MessageLogWriter::append(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  while (n) {
    if (used_ == kBufferSize) flush();
    size_t k = std::min(n, kBufferSize - used_);
    std::memcpy(buf_.get() + used_, b, k);
    used_ += k;
    b += k;
    n -= k;
  }
}

void MessageLogWriter::chunk(uint32_t stream, FieldKind field, bool ends, const uint8_t* p, uint32_t n) {
  ChunkRecord r{stream, static_cast<uint8_t>(field), static_cast<uint8_t>(ends ? kChunkEndsField : 0), 0, n};
  append(&r, sizeof(r));
  append(p, n);
  ++header_.n_chunks;
  header_.field_bytes += n;
}

void MessageLogWriter::flush() {
  if (used_ && !failed_ && std::fwrite(buf_.get(), 1, used_, f_) != used_) failed_ = true;
  used_ = 0;
}

Status MessageLogWriter::close() {
  flush();
  bool failed = failed_ || std::fseek(f_, 0, SEEK_SET) != 0 || std::fwrite(&header_, sizeof(header_), 1, f_) != 1 ||
                std::ferror(f_);
  failed = std::fclose(f_) != 0 || failed;
  f_ = nullptr;
  if (failed) return make_error(path_ + ": write error");
  return Ok{};
}

}  // namespace imf::bench::synth
