// imf-control's configuration file (documented in config/control.conf): `key = value` lines,
// `#` comment lines, blank lines. Also read by imfctl for the default socket path.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace imf::control {

struct ListenAddress {
  std::string host;  // numeric loopback address as given ("127.0.0.1", "::1")
  uint16_t port = 0;
  bool ipv6 = false;
};

struct ControlConfig {
  std::string socket = "/run/imf/control.sock";
  std::string group;  // empty: only root may connect
  gid_t gid = 0;      // resolved from `group`
  std::string state_dir = "/var/lib/imf";
  uint32_t keep_versions = 10;
  std::string dataplane_socket = "/run/imf/dataplane.sock";
  std::string metrics_listen;  // empty: no metrics endpoint
  ListenAddress metrics;
  uint64_t max_request_bytes = 64ull << 20;
  uint32_t resync_interval_s = 3;

  // Accounts, reports and records (docs/control-protocol.md, "Accounts, reports and records").
  std::string appliance_id;           // names the appliance in every record; default: the host name
  std::string policy_file;            // escalation policy; empty: the built-in defaults
  std::string digest_key_file;        // HMAC key (digests, pseudonyms); empty: <state_dir>/digest.key
  std::string records_dir;            // the control chain; empty: <state_dir>/records
  std::string dataplane_records_dir;  // imfd's chain; empty: <state_dir>/dataplane-records
  uint64_t records_rotate_bytes = 64ull << 20;
  uint64_t records_rotate_seconds = 86400;
  uint32_t records_retention_days = 365;  // 0: keep forever
  uint32_t records_fsync_every = 1;       // records per fsync of the control chain
};

// Fills the paths left empty with their defaults under state_dir, and appliance_id with the host
// name. Call after state_dir is final (imf-control makes it absolute first). Any thread.
void resolve_default_paths(ControlConfig* config);

inline constexpr const char* kDefaultConfigPath = "/etc/imf/control.conf";

// Parses the text of a configuration file; `source` names it in errors, which read
// "SOURCE:LINE: KEY: what is wrong" or "SOURCE:LINE: unknown key 'k' (known: ...)".
// Resolves `group` with the system's group database. Any thread.
Result<ControlConfig> parse_config(std::string_view text, const std::string& source);
Result<ControlConfig> load_config(const std::string& path);

// Parses "HOST:PORT" or "[V6]:PORT"; refuses anything but a loopback address (127.0.0.0/8,
// ::1, "localhost"). Port 0 picks a free port. Pure.
Result<ListenAddress> parse_loopback_listen(std::string_view text);

}  // namespace imf::control
