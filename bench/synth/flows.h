// Addresses of synthesized flows, derived from the flow index alone so no table is needed:
// clients 10.1.x.y (50,000 addresses) on ephemeral ports, servers 10.2.0.1-8. Distinct for every
// index below 2^32.
#pragma once

#include <cstdint>

#include "frame.h"

namespace imf::bench::synth {

struct FlowEnds {
  uint32_t client_ip;
  uint32_t server_ip;
  uint16_t client_port;
  uint16_t server_port;

  // Source and destination as seen by a packet of direction `dir` (0 client -> server).
  L4Addr addr(int dir) const {
    return dir == 0 ? L4Addr{client_ip, server_ip, client_port, server_port, true}
                    : L4Addr{server_ip, client_ip, server_port, client_port, false};
  }
};

inline FlowEnds flow_ends(uint64_t flow, uint16_t server_port) {
  uint32_t server = static_cast<uint32_t>(flow % 8);
  uint64_t rest = flow / 8;
  auto host = static_cast<uint32_t>(rest % 50000);
  uint64_t round = rest / 50000;  // below 28000 for any 32-bit index: ports stay distinct per host
  FlowEnds e;
  e.client_ip = (10u << 24) | (1u << 16) | ((host / 250) << 8) | (host % 250 + 1);
  e.server_ip = (10u << 24) | (2u << 16) | (server + 1);
  e.client_port = static_cast<uint16_t>(32768 + (round * 7919 + host * 13) % 28000);
  e.server_port = server_port;
  return e;
}

}  // namespace imf::bench::synth
