#include "options.h"

#include <getopt.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

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

// A comma-separated list of ports 1-65535; empty: none.
Result<std::vector<uint16_t>> parse_port_list(const char* option, std::string_view list) {
  std::vector<uint16_t> ports;
  for (size_t pos = 0; !list.empty() && pos <= list.size();) {
    size_t comma = std::min(list.find(',', pos), list.size());
    std::string item(list.substr(pos, comma - pos));
    uint32_t port;
    if (!parse_u32(item.c_str(), 1, 65535, &port))
      return make_error(std::string(option) + ": '" + item + "' is not a port number 1-65535");
    ports.push_back(static_cast<uint16_t>(port));
    pos = comma + 1;
  }
  return ports;
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
         "  --xmpp-ports LIST       TCP server ports decoded as XMPP client-to-server (default 5222)\n"
         "  --sip-ports LIST        UDP and TCP server ports decoded as SIP (default 5060)\n"
         "  --irc-ports LIST        TCP server ports decoded as IRC (default 6667)\n"
         "                          (an empty LIST turns a protocol off)\n"
         "  --detect-protocols      TCP connections to other ports: decoded as the protocol their\n"
         "                          client's first bytes open; the others pass, counted per port\n"
         "  --decoder-states N      XMPP, SIP and IRC connections one worker decodes at once\n"
         "                          (default 16384; about 1.7 KiB each)\n"
         "  --flows N               flow-table capacity per worker lcore (default 65536)\n"
         "  --flow-idle SEC         idle time before an established flow is aged out, at least\n"
         "                          (MQTT: longer when 1.5 x its keep-alive is; default 3600)\n"
         "  --handshake-timeout SEC half-open connections aged out after SEC (default 30)\n"
         "  --close-timeout SEC     closed connections (RST, FIN both ways) kept SEC (default 30)\n"
         "  --midstream reset|drop|pass  data of connections first seen without a handshake:\n"
         "                          RST both ends (default), drop it, or pass it uninspected\n"
         "  --min-ttl N             raise the TTL/hop limit of forwarded inspected packets to N\n"
         "                          (default 32; 0 leaves TTLs alone)\n"
         "  --tcp-retain-kb N       unacknowledged inspected bytes one direction may hold (default 256)\n"
         "  --tcp-retain-mb N       ... and one worker lcore in all (default 64)\n"
         "  --frag-datagrams N      fragmented datagrams pending reassembly per worker (default 1024)\n"
         "  --frag-timeout-ms N     an incomplete datagram is dropped after N ms (default 5000)\n"
         "  --measure-without LIST  bench only: switch off stages (checksums, tcp-validation,\n"
         "                          defrag) to measure their cost; each reopens an evasion\n"
         "  --stats-interval SEC    print counters every SEC seconds (default off)\n"
         "  --duration SEC          stop after SEC seconds (default: run until SIGINT/SIGTERM)\n"
         "  --mbufs N               packet buffers in the pool (default: sized for the queues; a\n"
         "                          net_pcap port with infinite_rx=1 also holds its whole capture)\n"
         "  --prebalanced-queues    one queue per worker even on ports without RSS: each RX queue\n"
         "                          must already carry whole flows (net_pcap with one rx_pcap each)\n"
         "  --sides-on-one-port     both directions of a connection arrive on the same port (a\n"
         "                          capture replayed into one port): turns off the check that\n"
         "                          each side's packets arrive on that side's port\n"
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
    kXmppPorts,
    kSipPorts,
    kIrcPorts,
    kDetect,
    kDecoderStates,
    kFlows,
    kFlowIdle,
    kHandshakeTimeout,
    kCloseTimeout,
    kMidstream,
    kMinTtl,
    kTcpRetainKb,
    kTcpRetainMb,
    kFragDatagrams,
    kFragTimeout,
    kMeasureWithout,
    kStats,
    kDuration,
    kMbufs,
    kPrebalanced,
    kSidesOnOnePort,
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
      {"xmpp-ports", required_argument, nullptr, kXmppPorts},
      {"sip-ports", required_argument, nullptr, kSipPorts},
      {"irc-ports", required_argument, nullptr, kIrcPorts},
      {"detect-protocols", no_argument, nullptr, kDetect},
      {"decoder-states", required_argument, nullptr, kDecoderStates},
      {"flows", required_argument, nullptr, kFlows},
      {"flow-idle", required_argument, nullptr, kFlowIdle},
      {"handshake-timeout", required_argument, nullptr, kHandshakeTimeout},
      {"close-timeout", required_argument, nullptr, kCloseTimeout},
      {"midstream", required_argument, nullptr, kMidstream},
      {"min-ttl", required_argument, nullptr, kMinTtl},
      {"tcp-retain-kb", required_argument, nullptr, kTcpRetainKb},
      {"tcp-retain-mb", required_argument, nullptr, kTcpRetainMb},
      {"frag-datagrams", required_argument, nullptr, kFragDatagrams},
      {"frag-timeout-ms", required_argument, nullptr, kFragTimeout},
      {"measure-without", required_argument, nullptr, kMeasureWithout},
      {"stats-interval", required_argument, nullptr, kStats},
      {"duration", required_argument, nullptr, kDuration},
      {"mbufs", required_argument, nullptr, kMbufs},
      {"prebalanced-queues", no_argument, nullptr, kPrebalanced},
      {"sides-on-one-port", no_argument, nullptr, kSidesOnOnePort},
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
      case kMqttPorts:
      case kXmppPorts:
      case kSipPorts:
      case kIrcPorts: {
        std::vector<uint16_t>& ports = c == kMqttPorts   ? o.mqtt_ports
                                       : c == kXmppPorts ? o.xmpp_ports
                                       : c == kSipPorts  ? o.sip_ports
                                                         : o.irc_ports;
        const char* name = c == kMqttPorts   ? "--mqtt-ports"
                           : c == kXmppPorts ? "--xmpp-ports"
                           : c == kSipPorts  ? "--sip-ports"
                                             : "--irc-ports";
        auto parsed = parse_port_list(name, optarg);
        if (!parsed) return make_error(parsed.error());
        ports = std::move(parsed.value());
        break;
      }
      case kDetect: o.detect_protocols = true; break;
      case kDecoderStates:
        if (!parse_u32(optarg, 16, 1u << 24, &o.decoder_states))
          return make_error(std::string("--decoder-states: '") + optarg + "' is not a number 16-16777216");
        break;
      case kFlows:
        if (!parse_u32(optarg, 2, 1u << 30, &o.flows_per_lcore))
          return make_error(std::string("--flows: '") + optarg + "' is not a number 2-1073741824");
        break;
      case kFlowIdle:
        if (!parse_u32(optarg, 1, 86400 * 7, &o.timeouts.idle_s))
          return make_error(std::string("--flow-idle: '") + optarg + "' is not a number of seconds 1-604800");
        break;
      case kHandshakeTimeout:
        if (!parse_u32(optarg, 1, 3600, &o.timeouts.handshake_s))
          return make_error(std::string("--handshake-timeout: '") + optarg + "' is not a number of seconds 1-3600");
        break;
      case kCloseTimeout:
        if (!parse_u32(optarg, 1, 3600, &o.timeouts.close_s))
          return make_error(std::string("--close-timeout: '") + optarg + "' is not a number of seconds 1-3600");
        break;
      case kMidstream:
        if (std::strcmp(optarg, "reset") == 0) {
          o.midstream = inspect::MidstreamPolicy::kReset;
        } else if (std::strcmp(optarg, "drop") == 0) {
          o.midstream = inspect::MidstreamPolicy::kDrop;
        } else if (std::strcmp(optarg, "pass") == 0) {
          o.midstream = inspect::MidstreamPolicy::kPass;
        } else {
          return make_error(std::string("--midstream: '") + optarg + "' is not 'reset', 'drop' or 'pass'");
        }
        break;
      case kMinTtl:
        if (!parse_u32(optarg, 0, 255, &o.min_ttl))
          return make_error(std::string("--min-ttl: '") + optarg + "' is not a TTL 0-255");
        break;
      case kTcpRetainKb:
        if (!parse_u32(optarg, 4, 1u << 20, &o.tcp_retain_kb))
          return make_error(std::string("--tcp-retain-kb: '") + optarg + "' is not a number of KiB 4-1048576");
        break;
      case kTcpRetainMb:
        if (!parse_u32(optarg, 1, 1u << 16, &o.tcp_retain_mb))
          return make_error(std::string("--tcp-retain-mb: '") + optarg + "' is not a number of MiB 1-65536");
        break;
      case kFragDatagrams:
        if (!parse_u32(optarg, 16, 1u << 20, &o.frag_datagrams))
          return make_error(std::string("--frag-datagrams: '") + optarg + "' is not a number 16-1048576");
        break;
      case kFragTimeout:
        if (!parse_u32(optarg, 1, 60000, &o.frag_timeout_ms))
          return make_error(std::string("--frag-timeout-ms: '") + optarg + "' is not a number of ms 1-60000");
        break;
      case kMeasureWithout: {
        std::string list = optarg;
        for (size_t pos = 0; pos <= list.size();) {
          size_t comma = std::min(list.find(',', pos), list.size());
          std::string stage = list.substr(pos, comma - pos);
          if (stage == "checksums") {
            o.skip_checksums = true;
          } else if (stage == "tcp-validation") {
            o.skip_tcp_validation = true;
          } else if (stage == "defrag") {
            o.skip_defrag = true;
          } else {
            return make_error("--measure-without: '" + stage + "' is not checksums, tcp-validation or defrag");
          }
          pos = comma + 1;
        }
        break;
      }
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
      case kSidesOnOnePort: o.sides_on_one_port = true; break;
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
  // One protocol per port (SIP's ports are both TCP and UDP; the others TCP).
  std::array<const char*, 65536> owner{};
  const std::pair<const char*, const std::vector<uint16_t>*> lists[] = {
      {"mqtt", &o.mqtt_ports}, {"xmpp", &o.xmpp_ports}, {"sip", &o.sip_ports}, {"irc", &o.irc_ports}};
  for (const auto& [name, ports] : lists) {
    for (uint16_t port : *ports) {
      if (owner[port] && std::strcmp(owner[port], name) != 0)
        return make_error("port " + std::to_string(port) + " is given to both " + owner[port] + " and " + name);
      owner[port] = name;
    }
  }
  if (o.rules_path.empty() && o.state_dir.empty()) return make_error("--rules FILE or --state-dir DIR is required");
  if (o.offline && !o.agent_socket.empty()) return make_error("--agent-socket is for inline mode");
  if (o.offline && (o.read_pcap.empty() || o.write_pcap.empty()))
    return make_error("--offline needs -r IN.pcap and -w OUT.pcap");
  if (!o.offline && (!o.read_pcap.empty() || !o.write_pcap.empty())) return make_error("-r/-w are for --offline mode");
  return o;
}

}  // namespace imf::dp
