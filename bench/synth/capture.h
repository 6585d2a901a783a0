// The output capture: flows partitioned over Q pcap files by flow_index % Q, one global clock
// (1 us per packet) so each file keeps the global order of its flows, and per-frame statistics.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "frame.h"
#include "pcap_writer.h"

namespace imf::bench::synth {

struct FrameStats {
  static constexpr const char* kBucketNames[6] = {"<=64", "65-127", "128-255", "256-511", "512-1023", "1024-1518"};
  uint64_t packets = 0;
  uint64_t frame_bytes = 0;
  uint64_t by_size[6] = {};
};

class Capture {
 public:
  // Creates PREFIX.pcap (queues == 1) or PREFIX.q<i>.pcap for each queue.
  static Result<std::unique_ptr<Capture>> create(const std::string& prefix, uint32_t queues);

  // Room for one frame of `flow` (kMaxFrame bytes); finish it with commit().
  uint8_t* frame(uint64_t flow) {
    current_ = writers_[flow % writers_.size()].get();
    return current_->frame(kMaxFrame);
  }
  void commit(uint32_t len) {
    current_->commit(len, kStartUs + stats_.packets);
    ++stats_.packets;
    stats_.frame_bytes += len;
    ++stats_.by_size[bucket(len)];
    if (stats_.packets % kProgressEvery == 0) progress();
  }

  Status close();
  const FrameStats& stats() const { return stats_; }
  std::vector<std::string> paths() const;

 private:
  static constexpr uint64_t kStartUs = 1700000000ull * 1000000;  // 2023-11-14
  static constexpr uint64_t kProgressEvery = 1000000;

  static int bucket(uint32_t len) {
    return len <= 64 ? 0 : len <= 127 ? 1 : len <= 255 ? 2 : len <= 511 ? 3 : len <= 1023 ? 4 : 5;
  }
  void progress() const;

  std::vector<std::unique_ptr<PcapWriter>> writers_;
  PcapWriter* current_ = nullptr;
  FrameStats stats_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace imf::bench::synth
