#include "options.h"

#include <getopt.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace imf::dp {

namespace {

bool parse_u32(const char* s, uint32_t lo, uint32_t hi, uint32_t* out) {
  errno = 0;
  char* end = nullptr;
  unsigned long v = std::strtoul(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

}  // namespace

const char* usage() {
  return "usage: imfd [EAL options] -- --rules FILE [options]\n"
         "       imfd --offline -r IN.pcap -w OUT.pcap --rules FILE [options]\n"
         "options:\n"
         "  --rules FILE            rule file (config/rules/README.md)\n"
         "  --events FILE           verdict events as JSON lines (default: stdout)\n"
         "  --summary-json FILE     final counters as JSON\n"
         "  --mqtt-ports LIST       TCP server ports decoded as MQTT (default 1883)\n"
         "  --flows N               flow-table capacity per worker lcore (default 65536)\n"
         "  --flow-idle SEC         idle time before a flow is aged out (default 300)\n"
         "  --ooo drop|bypass       segments ahead of sequence: drop (default) or stop inspecting\n"
         "  --stats-interval SEC    print counters every SEC seconds (default off)\n"
         "  --duration SEC          stop after SEC seconds (default: run until SIGINT/SIGTERM)\n"
         "  --mbufs N               packet buffers in the pool (default: sized for the queues; a\n"
         "                          net_pcap port with infinite_rx=1 also holds its whole capture)\n"
         "  --prebalanced-queues    one queue per worker even on ports without RSS: each RX queue\n"
         "                          must already carry whole flows (net_pcap with one rx_pcap each)\n"
         "  --agent-socket PATH     serve the control process (install rule sets, status, stats)\n"
         "  --state-dir DIR         start from the control process's active rule set in DIR\n"
         "  --table-capacity N      rows per table the control process may load (default 1048576)\n"
         "  --rules-memory-mb N     memory the rule sets may hold at once, a swap's two versions\n"
         "                          included; larger versions are refused (default 0: no limit)\n"
         "  --accounts N            account-table capacity (default 1048576)\n"
         "  --accounts-file FILE    account rows to start with (control/policy/README.md)\n"
         "  --policy FILE           escalation policy (control/policy/README.md; default built in)\n"
         "  --digest-key FILE       HMAC key of message digests, created if missing (default\n"
         "                          <state-dir>/digest.key; without either, no digests)\n"
         "  --records-dir DIR       write the records chain (source \"dataplane\") into DIR\n"
         "  --appliance-id ID       the records' appliance id (default: host name)\n"
         "  --records-fsync-every N fsync the chain every N records (default 0: once a second)\n"
         "  --records-rotate-mb N   start a new records file after N MiB (default 64)\n"
         "  --records-retention-days N  delete records files older than N days (default 365, 0 keeps all)\n"
         "  --offline -r IN -w OUT  read a capture, write the forwarded packets to a capture\n";
}

bool wants_offline(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--offline") == 0) return true;
  }
  return false;
}

Result<Options> parse_options(int argc, char** argv) {
  enum : int {
    kRules = 1000,
    kEvents,
    kSummary,
    kMqttPorts,
    kFlows,
    kFlowIdle,
    kOoo,
    kStats,
    kDuration,
    kMbufs,
    kPrebalanced,
    kAgent,
    kStateDir,
    kTableCapacity,
    kRulesMemory,
    kAccounts,
    kAccountsFile,
    kPolicy,
    kDigestKey,
    kRecordsDir,
    kApplianceId,
    kRecordsFsync,
    kRecordsRotate,
    kRecordsRetention,
    kOffline,
    kHelp
  };
  static const option kLong[] = {
      {"rules", required_argument, nullptr, kRules},
      {"events", required_argument, nullptr, kEvents},
      {"summary-json", required_argument, nullptr, kSummary},
      {"mqtt-ports", required_argument, nullptr, kMqttPorts},
      {"flows", required_argument, nullptr, kFlows},
      {"flow-idle", required_argument, nullptr, kFlowIdle},
      {"ooo", required_argument, nullptr, kOoo},
      {"stats-interval", required_argument, nullptr, kStats},
      {"duration", required_argument, nullptr, kDuration},
      {"mbufs", required_argument, nullptr, kMbufs},
      {"prebalanced-queues", no_argument, nullptr, kPrebalanced},
      {"agent-socket", required_argument, nullptr, kAgent},
      {"state-dir", required_argument, nullptr, kStateDir},
      {"table-capacity", required_argument, nullptr, kTableCapacity},
      {"rules-memory-mb", required_argument, nullptr, kRulesMemory},
      {"accounts", required_argument, nullptr, kAccounts},
      {"accounts-file", required_argument, nullptr, kAccountsFile},
      {"policy", required_argument, nullptr, kPolicy},
      {"digest-key", required_argument, nullptr, kDigestKey},
      {"records-dir", required_argument, nullptr, kRecordsDir},
      {"appliance-id", required_argument, nullptr, kApplianceId},
      {"records-fsync-every", required_argument, nullptr, kRecordsFsync},
      {"records-rotate-mb", required_argument, nullptr, kRecordsRotate},
      {"records-retention-days", required_argument, nullptr, kRecordsRetention},
      {"offline", no_argument, nullptr, kOffline},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };
  Options o;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":r:w:", kLong, nullptr)) != -1) {
    switch (c) {
      case kRules: o.rules_path = optarg; break;
      case kEvents: o.events_path = optarg; break;
      case kSummary: o.summary_json_path = optarg; break;
      case kMqttPorts: {
        o.mqtt_ports.clear();
        std::string list = optarg;
        size_t pos = 0;
        while (pos <= list.size()) {
          size_t comma = list.find(',', pos);
          std::string item = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
          uint32_t port;
          if (!parse_u32(item.c_str(), 1, 65535, &port)) {
            return make_error("--mqtt-ports: '" + item + "' is not a port number 1-65535");
          }
          o.mqtt_ports.push_back(static_cast<uint16_t>(port));
          if (comma == std::string::npos) break;
          pos = comma + 1;
        }
        break;
      }
      case kFlows:
        if (!parse_u32(optarg, 2, 1u << 30, &o.flows_per_lcore))
          return make_error(std::string("--flows: '") + optarg + "' is not a number 2-1073741824");
        break;
      case kFlowIdle:
        if (!parse_u32(optarg, 1, 86400 * 7, &o.flow_idle_sec))
          return make_error(std::string("--flow-idle: '") + optarg + "' is not a number of seconds 1-604800");
        break;
      case kOoo:
        if (std::strcmp(optarg, "drop") == 0) {
          o.ooo = inspect::OooPolicy::kDrop;
        } else if (std::strcmp(optarg, "bypass") == 0) {
          o.ooo = inspect::OooPolicy::kBypass;
        } else {
          return make_error(std::string("--ooo: '") + optarg + "' is not 'drop' or 'bypass'");
        }
        break;
      case kStats:
        if (!parse_u32(optarg, 0, 86400, &o.stats_interval_sec))
          return make_error(std::string("--stats-interval: '") + optarg + "' is not a number of seconds");
        break;
      case kDuration:
        if (!parse_u32(optarg, 1, 86400 * 365, &o.duration_sec))
          return make_error(std::string("--duration: '") + optarg + "' is not a number of seconds 1-31536000");
        break;
      case kMbufs:
        if (!parse_u32(optarg, 1024, 1u << 30, &o.mbufs))
          return make_error(std::string("--mbufs: '") + optarg + "' is not a number 1024-1073741824");
        break;
      case kPrebalanced: o.prebalanced_queues = true; break;
      case kAgent: o.agent_socket = optarg; break;
      case kStateDir: o.state_dir = optarg; break;
      case kRulesMemory:
        if (!parse_u32(optarg, 0, 1u << 22, &o.rules_memory_mb))
          return make_error(std::string("--rules-memory-mb: '") + optarg + "' is not a number of MiB 0-4194304");
        break;
      case kTableCapacity:
        if (!parse_u32(optarg, 16, 1u << 28, &o.table_capacity))
          return make_error(std::string("--table-capacity: '") + optarg + "' is not a number 16-268435456");
        break;
      case kAccounts:
        if (!parse_u32(optarg, 16, 1u << 28, &o.accounts))
          return make_error(std::string("--accounts: '") + optarg + "' is not a number 16-268435456");
        break;
      case kAccountsFile: o.accounts_path = optarg; break;
      case kPolicy: o.policy_path = optarg; break;
      case kDigestKey: o.digest_key_path = optarg; break;
      case kRecordsDir: o.records_dir = optarg; break;
      case kApplianceId: o.appliance_id = optarg; break;
      case kRecordsFsync:
        if (!parse_u32(optarg, 0, 1u << 20, &o.records_fsync_every))
          return make_error(std::string("--records-fsync-every: '") + optarg + "' is not a number 0-1048576");
        break;
      case kRecordsRotate:
        if (!parse_u32(optarg, 1, 1u << 20, &o.records_rotate_mb))
          return make_error(std::string("--records-rotate-mb: '") + optarg + "' is not a number of MiB 1-1048576");
        break;
      case kRecordsRetention:
        if (!parse_u32(optarg, 0, 36500, &o.records_retention_days))
          return make_error(std::string("--records-retention-days: '") + optarg + "' is not a number of days 0-36500");
        break;
      case kOffline: o.offline = true; break;
      case 'r': o.read_pcap = optarg; break;
      case 'w': o.write_pcap = optarg; break;
      case kHelp: return make_error(usage());
      case ':': return make_error(std::string("option '") + argv[optind - 1] + "' needs a value");
      default: return make_error(std::string("unknown option '") + argv[optind - 1] + "'\n" + usage());
    }
  }
  if (optind < argc) return make_error(std::string("unexpected argument '") + argv[optind] + "'");
  if (o.rules_path.empty() && o.state_dir.empty()) return make_error("--rules FILE or --state-dir DIR is required");
  if (o.offline && !o.agent_socket.empty()) return make_error("--agent-socket is for inline mode");
  if (o.offline && (o.read_pcap.empty() || o.write_pcap.empty()))
    return make_error("--offline needs -r IN.pcap and -w OUT.pcap");
  if (!o.offline && (!o.read_pcap.empty() || !o.write_pcap.empty())) return make_error("-r/-w are for --offline mode");
  return o;
}

}  // namespace imf::dp
