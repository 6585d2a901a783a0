#include "offline.h"

#include <pcap/pcap.h>
#include <unistd.h>

namespace imf::dp {

Result<uint64_t> count_capture_packets(const std::string& path) {
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  if (!p) return make_error(path + ": cannot read capture: " + err);
  if (pcap_datalink(p) != DLT_EN10MB) {
    pcap_close(p);
    return make_error(path + ": not an Ethernet capture (link type " + std::to_string(pcap_datalink(p)) + ")");
  }
  uint64_t n = 0;
  pcap_pkthdr* hdr;
  const u_char* data;
  int rc;
  while ((rc = pcap_next_ex(p, &hdr, &data)) == 1) ++n;
  std::string why = rc == -1 ? pcap_geterr(p) : "";
  pcap_close(p);
  if (rc == -1) return make_error(path + ": capture is damaged after " + std::to_string(n) + " packets: " + why);
  return n;
}

Result<std::vector<std::string>> offline_eal_args(const std::string& argv0, uint32_t memory_mb, const std::string& in,
                                                  const std::string& out) {
  // Device arguments are comma-separated key=value pairs; a comma in a path cannot be expressed.
  if (in.find_first_of(",=") != std::string::npos || out.find_first_of(",=") != std::string::npos) {
    return make_error("capture paths must not contain ',' or '='");
  }
  return std::vector<std::string>{argv0,
                                  "--no-pci",
                                  "--no-huge",
                                  "--no-shconf",
                                  "-m",
                                  std::to_string(memory_mb),
                                  "-l",
                                  "0",
                                  "--file-prefix",
                                  "imfd-offline-" + std::to_string(getpid()),
                                  "--log-level",
                                  "*:warning",
                                  "--no-telemetry",
                                  "--vdev",
                                  "net_pcap0,rx_pcap=" + in + ",tx_pcap=" + out};
}

}  // namespace imf::dp
