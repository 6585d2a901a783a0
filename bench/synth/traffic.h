// The traffic subcommand: loads the corpus and triggers, streams the capture and message log of
// one profile, and writes the summary JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace imf::bench::synth {

enum class Profile : uint8_t { kMixed, kFull, kSmall };

struct TrafficOptions {
  Profile profile = Profile::kMixed;
  uint64_t flows = 0;
  uint64_t messages = 0;
  double match_fraction = 0;
  std::string triggers;             // required when match_fraction > 0 (mixed, full)
  std::vector<std::string> corpus;  // files or directories (mixed, full)
  uint64_t seed = 1;
  std::string out;  // prefix of PREFIX.pcap / PREFIX.q<i>.pcap, PREFIX.mlog, PREFIX.json
  uint32_t queues = 1;
  uint16_t mqtt_port = 1883;
  uint32_t fragment = 0;  // mixed, full: IPv4 fragments of at most this many payload bytes (0: none)
};

const char* profile_name(Profile p);

// Writes all outputs; errors name the file or argument at fault.
Status run_traffic(const TrafficOptions& o);

}  // namespace imf::bench::synth
