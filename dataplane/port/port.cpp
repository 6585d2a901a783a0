#include "port/port.h"

#include <rte_errno.h>

#include <cstring>

namespace imf::dp::port {

namespace {

// A key made of one repeated 16-bit word makes the Toeplitz hash symmetric in (src, dst).
constexpr uint8_t kSymmetricRssKeyWord[2] = {0x6d, 0x5a};

std::string err_text(int rc) { return std::string(rte_strerror(rc < 0 ? -rc : rc)); }

}  // namespace

Result<PortInfo> probe_port(uint16_t port_id) {
  rte_eth_dev_info dev{};
  int rc = rte_eth_dev_info_get(port_id, &dev);
  if (rc != 0) return make_error("port " + std::to_string(port_id) + ": cannot read device info: " + err_text(rc));
  PortInfo info;
  info.port_id = port_id;
  char name[RTE_ETH_NAME_MAX_LEN] = {};
  rte_eth_dev_get_name_by_port(port_id, name);
  info.name = name;
  info.max_queues = std::min(dev.max_rx_queues, dev.max_tx_queues);
  info.rss = (dev.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP)) != 0 && dev.hash_key_size > 0;
  return info;
}

Status start_port(const PortInfo& info, uint16_t queues, bool rss, rte_mempool* pool, uint16_t rx_desc,
                  uint16_t tx_desc) {
  const std::string where = "port " + std::to_string(info.port_id) + " (" + info.name + "): ";
  rte_eth_dev_info dev{};
  rte_eth_dev_info_get(info.port_id, &dev);

  rte_eth_conf conf{};
  uint8_t key[64];
  if (rss) {
    if (!info.rss) return make_error(where + "RSS requested but the device has none");
    uint8_t key_len = dev.hash_key_size ? dev.hash_key_size : 40;
    for (uint8_t i = 0; i < key_len && i < sizeof(key); ++i) key[i] = kSymmetricRssKeyWord[i & 1];
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_key = key;
    conf.rx_adv_conf.rss_conf.rss_key_len = key_len;
    conf.rx_adv_conf.rss_conf.rss_hf =
        dev.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
  }
  // Checksums verified by the NIC where it can (imfd checks the rest in software).
  conf.rxmode.offloads = dev.rx_offload_capa &
                         (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
  int rc = rte_eth_dev_configure(info.port_id, queues, queues, &conf);
  if (rc != 0) return make_error(where + "configure failed: " + err_text(rc));
  rc = rte_eth_dev_adjust_nb_rx_tx_desc(info.port_id, &rx_desc, &tx_desc);
  if (rc != 0) return make_error(where + "descriptor counts rejected: " + err_text(rc));
  int socket = rte_eth_dev_socket_id(info.port_id);
  for (uint16_t q = 0; q < queues; ++q) {
    rc = rte_eth_rx_queue_setup(info.port_id, q, rx_desc, socket, nullptr, pool);
    if (rc != 0) return make_error(where + "RX queue " + std::to_string(q) + " setup failed: " + err_text(rc));
    rc = rte_eth_tx_queue_setup(info.port_id, q, tx_desc, socket, nullptr);
    if (rc != 0) return make_error(where + "TX queue " + std::to_string(q) + " setup failed: " + err_text(rc));
  }
  rc = rte_eth_dev_start(info.port_id);
  if (rc != 0) return make_error(where + "start failed: " + err_text(rc));
  // A bump in the wire forwards frames for every MAC; some virtual devices cannot change it.
  rte_eth_promiscuous_enable(info.port_id);
  return Ok{};
}

void stop_port(uint16_t port_id) {
  rte_eth_dev_stop(port_id);
  rte_eth_dev_close(port_id);
}

}  // namespace imf::dp::port
