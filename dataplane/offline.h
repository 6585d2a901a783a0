// Offline mode (like `suricata -r`): a capture file in, a capture file out, via DPDK's net_pcap.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace imf::dp {

// Counts the packets in a capture file, so the run knows when the input has been judged.
Result<uint64_t> count_capture_packets(const std::string& path);

// EAL arguments for an offline run: one lcore, no PCI, no hugepages, one net_pcap port reading
// `in` and writing `out`; forwarded packets and generated resets all go to `out`.
Result<std::vector<std::string>> offline_eal_args(const std::string& argv0, uint32_t memory_mb, const std::string& in,
                                                  const std::string& out);

}  // namespace imf::dp
