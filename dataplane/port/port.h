// Port bring-up: queues, symmetric RSS where the device has it, promiscuous mode.
// Setup thread only.
#pragma once

#include <rte_ethdev.h>
#include <rte_mempool.h>

#include <cstdint>
#include <string>

#include "common/result.h"

namespace imf::dp::port {

struct PortInfo {
  uint16_t port_id;
  std::string name;
  uint16_t max_queues;  // min of the device's RX and TX queue limits
  bool rss;             // RSS on IP/TCP/UDP available
};

Result<PortInfo> probe_port(uint16_t port_id);

// Configures and starts `port_id` with `queues` RX/TX queue pairs. With `rss` it enables RSS with
// a symmetric key, so both directions of a connection hash to the same queue index on both ports
// and thus to the same worker lcore; without it, several queues must arrive already split by flow.
// Errors name the port and the step that failed. Setup thread only.
Status start_port(const PortInfo& info, uint16_t queues, bool rss, rte_mempool* pool, uint16_t rx_desc,
                  uint16_t tx_desc);

void stop_port(uint16_t port_id);

}  // namespace imf::dp::port
