// A buffered writer of classic pcap files (magic 0xa1b2c3d4, v2.4, microsecond timestamps,
// snaplen 65535, link type Ethernet). Frames are built in place in the writer's buffer.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "common/result.h"

namespace imf::bench::synth {

class PcapWriter {
 public:
  static Result<std::unique_ptr<PcapWriter>> create(const std::string& path);
  ~PcapWriter();
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;

  // Room for a frame of up to `max_len` bytes; finish it with commit(). Write errors are sticky
  // and reported by close().
  uint8_t* frame(uint32_t max_len) {
    if (kBufferSize - used_ < kRecordHeader + max_len) flush();
    return buf_.get() + used_ + kRecordHeader;
  }
  void commit(uint32_t len, uint64_t ts_us);

  // Flushes and closes; reports any write error with the path.
  Status close();
  const std::string& path() const { return path_; }

 private:
  static constexpr uint32_t kRecordHeader = 16;
  static constexpr size_t kBufferSize = 4 << 20;

  PcapWriter(std::string path, FILE* f) : path_(std::move(path)), f_(f), buf_(new uint8_t[kBufferSize]) {}
  void flush();

  std::string path_;
  FILE* f_;
  std::unique_ptr<uint8_t[]> buf_;
  size_t used_ = 0;
  bool failed_ = false;
};

}  // namespace imf::bench::synth
