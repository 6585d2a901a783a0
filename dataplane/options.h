// imfd's own command line (after EAL's, or all of it in offline mode). See docs/interfaces.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "inspect/inspector.h"

namespace imf::dp {

struct Options {
  std::string rules_path;
  std::string events_path = "-";
  std::string summary_json_path;
  // Server ports per protocol (proto::Protocol order): MQTT, XMPP and IRC on TCP, SIP on both.
  std::vector<uint16_t> mqtt_ports{1883};
  std::vector<uint16_t> xmpp_ports{5222};
  std::vector<uint16_t> sip_ports{5060};
  std::vector<uint16_t> irc_ports{6667};
  bool detect_protocols = false;    // other TCP ports: decoded as their first client bytes say
  uint32_t decoder_states = 16384;  // XMPP, SIP and IRC connections decoded at once per worker
  uint32_t flows_per_lcore = 65536;
  inspect::FlowTimeouts timeouts;  // --flow-idle, --handshake-timeout, --close-timeout
  inspect::MidstreamPolicy midstream = inspect::MidstreamPolicy::kReset;
  uint32_t min_ttl = 32;           // 0: TTLs left alone
  uint32_t tcp_retain_kb = 256;    // per direction
  uint32_t tcp_retain_mb = 64;     // per worker lcore
  uint32_t frag_datagrams = 1024;  // pending per worker lcore
  uint32_t frag_timeout_ms = 5000;
  // Stages switched off to measure their cost (bench/ only: each reopens what it closes).
  bool skip_checksums = false;
  bool skip_tcp_validation = false;
  bool skip_defrag = false;
  uint32_t stats_interval_sec = 0;
  uint32_t duration_sec = 0;  // 0: until a signal
  uint32_t mbufs = 0;         // 0: sized for the queues
  bool prebalanced_queues = false;
  bool sides_on_one_port = false;  // a capture replayed into one port carries both sides
  std::string agent_socket;        // empty: no agent
  std::string state_dir;           // the control process's state directory
  uint32_t table_capacity = 1u << 20;
  uint32_t rules_memory_mb = 0;  // 0: no limit
  // accounts and records
  uint32_t accounts = 1u << 20;      // account-table capacity
  std::string accounts_path;         // account rows to start with (CSV); empty: none
  std::string policy_path;           // escalation policy; empty: built-in defaults
  std::string digest_key_path;       // HMAC key for message digests; empty: <state-dir>/digest.key or none
  std::string records_dir;           // the dataplane's records chain; empty: none
  std::string appliance_id;          // empty: the host name
  uint32_t records_fsync_every = 0;  // 0: on the one-second timer only
  uint32_t records_rotate_mb = 64;
  uint32_t records_retention_days = 365;
  // offline mode
  bool offline = false;
  std::string read_pcap;
  std::string write_pcap;
};

// Parses imfd options (argv[0] is the program name). Errors name the offending option.
Result<Options> parse_options(int argc, char** argv);

// Splits argv at the first "--": returns true if --offline appears anywhere.
bool wants_offline(int argc, char** argv);

const char* usage();

}  // namespace imf::dp
