#include "capture.h"

#include <cstdio>

namespace imf::bench::synth {

Result<std::unique_ptr<Capture>> Capture::create(const std::string& prefix, uint32_t queues) {
  std::unique_ptr<Capture> c(new Capture());
  for (uint32_t q = 0; q < queues; ++q) {
    std::string path = queues == 1 ? prefix + ".pcap" : prefix + ".q" + std::to_string(q) + ".pcap";
    auto w = PcapWriter::create(path);
    if (!w) return make_error(w.error());
    c->writers_.push_back(std::move(w).value());
  }
  return c;
}

Status Capture::close() {
  Status result = Ok{};
  for (auto& w : writers_) {
    if (Status s = w->close(); !s && result) result = s;
  }
  return result;
}

std::vector<std::string> Capture::paths() const {
  std::vector<std::string> out;
  for (const auto& w : writers_) out.push_back(w->path());
  return out;
}

void Capture::progress() const {
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "imf-synth: %llu packets, %.1f s, %.2f Mpps\n", static_cast<unsigned long long>(stats_.packets),
               s, s > 0 ? static_cast<double>(stats_.packets) / s / 1e6 : 0.0);
}

}  // namespace imf::bench::synth
