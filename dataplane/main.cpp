// imfd: EAL init, rule installation, port setup, lcore launch, clean stop.
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_rcu_qsbr.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <optional>
#include <thread>

#include "agent/agent.h"
#include "agent/installer.h"
#include "match/rule_generation.h"
#include "offline.h"
#include "options.h"
#include "policy/account_table.h"
#include "port/port.h"
#include "record/event_writer.h"
#include "records/chain.h"
#include "report.h"
#include "rules/artifact.h"
#include "rules/rule_parser.h"
#include "table/kv_table.h"
#include "worker.h"

namespace {

using namespace imf;
using namespace imf::dp;

constexpr uint16_t kRxDesc = 1024;
constexpr uint16_t kTxDesc = 1024;
constexpr uint32_t kEventRingSize = 8192;

// Set from the signal handler, read by every worker; lock-free atomic, so async-signal-safe.
std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true, std::memory_order_relaxed); }

void count_tx_drops(rte_mbuf** unsent, uint16_t n, void* counters) {
  for (uint16_t i = 0; i < n; ++i) rte_pktmbuf_free(unsent[i]);
  static_cast<Counters*>(counters)->add(Counter::tx_dropped, n);
}

int fail(const std::string& what) {
  std::fprintf(stderr, "imfd: %s\n", what.c_str());
  return 1;
}

// Builds one worker's context: flow table, per-flow state, its first rule-set engine, rings,
// TX buffers.
Result<std::unique_ptr<LcoreCtx>> make_worker(unsigned lcore, uint16_t queue, uint16_t n_ports, const Options& opt,
                                              agent::RuleInstaller& installer, const ServiceMap& services,
                                              rte_mempool* pool, const inspect::InspectConfig& icfg) {
  auto c = std::make_unique<LcoreCtx>();
  c->lcore_id = lcore;
  c->queue = queue;
  c->n_ports = n_ports;
  for (uint16_t p = 0; p < n_ports; ++p) c->peer[p] = n_ports == 1 ? p : (p ^ 1);
  c->pool = pool;
  c->services = &services;
  if (services.detect) c->undetected_by_port.reset(new uint32_t[65536]());
  c->sides_on_one_port = opt.sides_on_one_port;
  c->min_ttl = static_cast<uint8_t>(opt.min_ttl);
  c->verify_checksums = !opt.skip_checksums;
  c->aging_ticks = rte_get_tsc_hz() / 10000;  // 100 us
  c->stop = &g_stop;

  // Flows move in their LRU list at most once a second: a lookup rarely writes to other flows'
  // entries, and aging is late by at most that second.
  inspect::FlowClassMap classes(icfg.timeouts);
  auto flows = flow::FlowTable::create(opt.flows_per_lcore, classes.classes(rte_get_tsc_hz(), opt.flows_per_lcore),
                                       rte_get_tsc_hz());
  if (!flows) return make_error(flows.error());
  c->flows = std::move(flows.value());
  c->flow_state.reset(new inspect::FlowState[opt.flows_per_lcore]);
  auto engine = installer.first_engine();
  if (!engine) return make_error(engine.error());
  c->engine.store(engine.value());
  c->version.store(installer.version());
  c->inspector =
      std::make_unique<inspect::Inspector>(icfg, *engine.value()->matcher, *engine.value()->streams, c->counters);
  if (!opt.skip_defrag) {
    defrag::Config dc;
    dc.name = "imf_df" + std::to_string(lcore);
    dc.max_datagrams = opt.frag_datagrams;
    dc.timeout_ticks = rte_get_tsc_hz() * opt.frag_timeout_ms / 1000;
    dc.socket = static_cast<int>(rte_lcore_to_socket_id(lcore));
    auto reassembler = defrag::Reassembler::create(dc, c->counters);
    if (!reassembler) return make_error(reassembler.error());
    c->defrag = std::move(reassembler.value());
  }
  auto ring = record::EventRing::create("imf_events_" + std::to_string(lcore), kEventRingSize,
                                        static_cast<int>(rte_lcore_to_socket_id(lcore)));
  if (!ring) return make_error(ring.error());
  c->events = std::make_unique<record::EventRing>(ring.value());
  for (uint16_t p = 0; p < n_ports; ++p) {
    auto* buf = static_cast<rte_eth_dev_tx_buffer*>(
        rte_zmalloc_socket("tx_buffer", RTE_ETH_TX_BUFFER_SIZE(kBurst), 0, rte_eth_dev_socket_id(p)));
    if (!buf) return make_error("cannot allocate TX buffer");
    rte_eth_tx_buffer_init(buf, kBurst);
    rte_eth_tx_buffer_set_err_callback(buf, count_tx_drops, &c->counters);
    c->tx[p] = buf;
  }
  return c;
}

// The rule set to start with: the control process's active version in --state-dir when there is
// one (the dataplane starts from persisted state alone), else --rules compiled here as version 0.
Result<rules::RuleSetArtifact> initial_rules(const Options& opt) {
  if (!opt.state_dir.empty()) {
    std::string active_path = opt.state_dir + "/rules/active";
    std::ifstream active(active_path);
    uint64_t version = 0;
    if (active >> version) {
      auto a = rules::read_artifact(opt.state_dir + "/rules/" + std::to_string(version) + ".imfrules");
      if (!a) return make_error(active_path + " names version " + std::to_string(version) + ": " + a.error());
      return a;
    }
    if (opt.rules_path.empty()) return make_error(active_path + ": no active rule set yet, and no --rules given");
  }
  auto set = rules::load_rules_file(opt.rules_path);
  if (!set) return make_error(set.error());
  auto compiled = rules::compile_rules(set.value());
  if (!compiled) return make_error(compiled.error());
  rules::RuleSetArtifact a;
  a.source = opt.rules_path;
  a.compiled = std::move(compiled.value());
  return a;
}

// Policy, digest key and records chain of the dataplane, from the options.
struct PolicySetup {
  imf::policy::EscalationPolicy escalation;
  std::optional<records::HmacKeyState> digest_key;
  std::unique_ptr<records::ChainWriter> chain;
};

Result<PolicySetup> setup_policy(const Options& opt) {
  PolicySetup p;
  if (!opt.policy_path.empty()) {
    auto pol = imf::policy::load_policy_file(opt.policy_path);
    if (!pol) return make_error(pol.error());
    p.escalation = pol.value();
  }
  std::string key_path = opt.digest_key_path;
  if (key_path.empty() && !opt.state_dir.empty()) key_path = opt.state_dir + "/digest.key";
  if (!key_path.empty()) {
    auto key = records::load_or_create_key(key_path);
    if (!key) return make_error(key.error());
    p.digest_key = records::prepare_hmac(key.value());
  }
  if (!opt.records_dir.empty()) {
    records::ChainConfig cc;
    cc.dir = opt.records_dir;
    cc.source = "dataplane";
    cc.appliance = opt.appliance_id;
    if (cc.appliance.empty()) {
      char host[256] = {};
      gethostname(host, sizeof(host) - 1);
      cc.appliance = host;
    }
    cc.rotate_bytes = uint64_t{opt.records_rotate_mb} << 20;
    cc.retention_seconds = uint64_t{opt.records_retention_days} * 86400;
    cc.fsync_every = opt.records_fsync_every;
    auto chain = records::ChainWriter::open(cc);
    if (!chain) return make_error(chain.error());
    p.chain = std::move(chain.value());
  }
  return p;
}

// What is decoded on which ports, for the agent's status (and through it imf-control's):
// {"mqtt":{"tcp":[1883],"udp":[]},...,"detect":false}.
std::string protocols_json(const Options& opt) {
  auto list = [](const std::vector<uint16_t>& ports) {
    std::string s = "[";
    for (uint16_t p : ports) s += (s.size() > 1 ? "," : "") + std::to_string(p);
    return s + "]";
  };
  std::string none = "[]";
  return "{\"mqtt\":{\"tcp\":" + list(opt.mqtt_ports) + ",\"udp\":" + none +
         "},\"xmpp\":{\"tcp\":" + list(opt.xmpp_ports) + ",\"udp\":" + none +
         "},\"sip\":{\"tcp\":" + list(opt.sip_ports) + ",\"udp\":" + list(opt.sip_ports) +
         "},\"irc\":{\"tcp\":" + list(opt.irc_ports) + ",\"udp\":" + none +
         "},\"detect\":" + (opt.detect_protocols ? "true" : "false") + "}";
}

// Sets *eal_up once EAL is initialized, so main() cleans up only what exists.
int run(int argc, char** argv, bool* eal_up) {
  // --- EAL: from the command line, or built for offline mode.
  std::vector<std::string> eal_owned;
  std::vector<char*> eal_argv;
  uint64_t expected_packets = 0;
  Result<Options> parsed = make_error("unparsed");
  if (wants_offline(argc, argv)) {
    parsed = parse_options(argc, argv);
    if (!parsed) return fail(parsed.error());
    auto n = count_capture_packets(parsed->read_pcap);
    if (!n) return fail(n.error());
    expected_packets = n.value();
    // 512 MiB for flows and rules, plus ~128 bytes per account-table slot.
    uint32_t memory_mb = 512 + parsed->accounts / 8192;
    auto args = offline_eal_args(argv[0], memory_mb, parsed->read_pcap, parsed->write_pcap);
    if (!args) return fail(args.error());
    eal_owned = std::move(args.value());
    for (std::string& s : eal_owned) eal_argv.push_back(s.data());
    eal_argv.push_back(nullptr);
    if (rte_eal_init(static_cast<int>(eal_owned.size()), eal_argv.data()) < 0)
      return fail(std::string("EAL init failed: ") + rte_strerror(rte_errno));
    *eal_up = true;
  } else {
    int consumed = rte_eal_init(argc, argv);
    if (consumed < 0) return fail(std::string("EAL init failed: ") + rte_strerror(rte_errno));
    *eal_up = true;
    argv[consumed] = argv[0];
    parsed = parse_options(argc - consumed, argv + consumed);
    if (!parsed) return fail(parsed.error());
  }
  const Options& opt = parsed.value();

  // --- Accounts: grace periods for their memory need the workers' QSBR variable, one slot per
  // possible worker.
  unsigned max_workers = std::max(1u, rte_lcore_count() - 1);
  size_t qsv_bytes = rte_rcu_qsbr_get_memsize(max_workers);
  auto* qsv = static_cast<rte_rcu_qsbr*>(rte_zmalloc("imf_qsbr", qsv_bytes, RTE_CACHE_LINE_SIZE));
  if (!qsv || rte_rcu_qsbr_init(qsv, max_workers) != 0) return fail("cannot set up RCU for the workers");
  auto pol = setup_policy(opt);
  if (!pol) return fail(pol.error());
  auto accounts_r = dp::policy::AccountTable::create(opt.accounts, qsv, pol->escalation);
  if (!accounts_r) return fail(accounts_r.error());
  dp::policy::AccountTable& accounts = *accounts_r.value();
  if (!opt.accounts_path.empty()) {
    auto rows = accounts.load(opt.accounts_path);
    if (!rows) return fail(rows.error());
  }
  spdlog::info("accounts: {} of capacity {}, {} MiB", accounts.size(), accounts.capacity(),
               accounts.memory_bytes() >> 20);

  // --- Rules: the persisted active version, or a rule file compiled here.
  auto t0 = std::chrono::steady_clock::now();
  auto initial = initial_rules(opt);
  if (!initial) return fail(initial.error());
  agent::RuleInstaller installer(
      opt.flows_per_lcore, size_t{opt.rules_memory_mb} << 20,
      [&accounts](const std::vector<std::string>& names) { return accounts.markers().mask_of(names); });
  if (auto st = installer.start(initial->compiled, initial->version); !st) return fail(st.error());
  const match::RuleGeneration& first_gen = installer.current();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("rules: version {}, {} rules from {} ready in {} ms; database {} bytes, {} bytes per stream",
               initial->version, first_gen.rules.size(), initial->source, ms, first_gen.db_size, first_gen.stream_size);

  // --- Ports and workers.
  uint16_t n_ports = rte_eth_dev_count_avail();
  if (n_ports == 0) return fail("no ports: give a PCI device or --vdev (see README)");
  if (n_ports > kMaxPorts || (n_ports > 1 && n_ports % 2)) {
    return fail("need 1 port (offline/reflect) or an even number of ports up to " + std::to_string(kMaxPorts) +
                "; have " + std::to_string(n_ports));
  }
  std::vector<unsigned> lcores;
  unsigned lcore;
  RTE_LCORE_FOREACH_WORKER(lcore) lcores.push_back(lcore);
  bool main_works = lcores.empty();
  if (main_works) lcores.push_back(rte_get_main_lcore());

  uint16_t queues = static_cast<uint16_t>(lcores.size());
  std::vector<port::PortInfo> infos;
  for (uint16_t p = 0; p < n_ports; ++p) {
    auto info = port::probe_port(p);
    if (!info) return fail(info.error());
    queues = std::min<uint16_t>(queues, info->max_queues);
    if (!info->rss && !opt.prebalanced_queues) queues = 1;
    infos.push_back(info.value());
  }
  if (queues < lcores.size()) {
    spdlog::warn("{} worker lcores but the ports allow {} queue(s): using {} worker(s)", lcores.size(), queues, queues);
    lcores.resize(queues);
  }

  // Descriptors on every queue, a burst in flight each way, and the fragments a worker may hold
  // for reassembly.
  uint32_t held_fragments = opt.skip_defrag ? 0 : opt.frag_datagrams * defrag::kMaxFragments;
  uint32_t n_mbufs =
      opt.mbufs ? opt.mbufs : n_ports * queues * (kRxDesc + kTxDesc + 2 * kBurst) + queues * held_fragments + 4096;
  rte_mempool* pool = rte_pktmbuf_pool_create("imf_mbufs", n_mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                              static_cast<int>(rte_socket_id()));
  if (!pool) return fail(std::string("cannot create mbuf pool: ") + rte_strerror(rte_errno));

  ServiceMap services;
  for (uint16_t p : opt.mqtt_ports) services.add_tcp(p, proto::Protocol::kMqtt);
  for (uint16_t p : opt.xmpp_ports) services.add_tcp(p, proto::Protocol::kXmpp);
  for (uint16_t p : opt.irc_ports) services.add_tcp(p, proto::Protocol::kIrc);
  for (uint16_t p : opt.sip_ports) {
    services.add_tcp(p, proto::Protocol::kSip);
    services.add_udp(p, proto::Protocol::kSip);
  }
  services.detect = opt.detect_protocols;

  table::TableSet tables(opt.table_capacity, qsv);
  inspect::InspectConfig icfg;
  icfg.midstream = opt.midstream;
  icfg.timeouts = opt.timeouts;
  icfg.tcp.validate = !opt.skip_tcp_validation;
  icfg.tcp.retain_cap = opt.tcp_retain_kb << 10;
  icfg.retain_store_bytes = size_t{opt.tcp_retain_mb} << 20;
  icfg.decoder_pairs = opt.decoder_states;
  icfg.accounts = &accounts;
  icfg.digest_key = pol->digest_key ? &*pol->digest_key : nullptr;

  std::vector<std::unique_ptr<LcoreCtx>> workers;
  std::vector<LcoreCtx*> worker_ptrs;
  for (uint16_t q = 0; q < queues; ++q) {  // lcores was cut to `queues` above
    auto w = make_worker(lcores[q], q, n_ports, opt, installer, services, pool, icfg);
    if (!w) return fail(w.error());
    worker_ptrs.push_back(w.value().get());
    workers.push_back(std::move(w.value()));
    workers.back()->stop_after_rx = expected_packets;
    workers.back()->qsv = qsv;
    workers.back()->qsv_id = q;
  }
  if (opt.offline) {
    // Offline, time is the capture's: net_pcap stamps each packet with it.
    int offset;
    uint64_t flag;
    if (rte_mbuf_dyn_rx_timestamp_register(&offset, &flag) != 0) return fail("cannot register the RX timestamp field");
    for (auto& w : workers) {
      w->capture_time = true;
      w->timestamp_offset = offset;
      w->timestamp_flag = flag;
    }
  }
  RunInfo run_info;
  run_info.flows_per_lcore = opt.flows_per_lcore;
  installer.attach(worker_ptrs);
  run_info.flow_bytes = sizeof(inspect::FlowState) + 2 * first_gen.stream_size;
  run_info.flow_table_bytes = workers[0]->flows->memory_bytes();
  run_info.db_bytes = first_gen.db_size;
  run_info.stream_bytes = first_gen.stream_size;
  run_info.mbufs = n_mbufs;
  run_info.tsc_hz = rte_get_tsc_hz();
  size_t per_flow = run_info.flow_bytes;
  spdlog::info(
      "workers: {} lcore(s), {} queue(s) per port; {} flows per lcore, {} bytes per flow "
      "({} MiB per lcore with the flow table)",
      lcores.size(), queues, opt.flows_per_lcore, per_flow,
      (workers[0]->flows->memory_bytes() + per_flow * opt.flows_per_lcore) >> 20);

  for (const port::PortInfo& info : infos) {
    bool rss = queues > 1 && info.rss;
    auto st = port::start_port(info, queues, rss, pool, kRxDesc, kTxDesc);
    if (!st) return fail(st.error());
    spdlog::info("port {} ({}): started, {} queue(s), {}", info.port_id, info.name, queues,
                 rss ? "symmetric RSS" : (queues > 1 ? "queues prebalanced" : "RSS off"));
  }

  // --- Events writer (a control thread) and signals.
  timespec rt;
  clock_gettime(CLOCK_REALTIME, &rt);
  record::Clock clock{rte_rdtsc(), int64_t{rt.tv_sec} * 1000000000 + rt.tv_nsec, rte_get_tsc_hz()};
  std::vector<record::EventRing*> rings;
  for (auto& w : workers) rings.push_back(w->events.get());
  for (auto& w : workers) w->clock = clock;
  record::WriterOutputs outputs;
  outputs.events_path = opt.events_path;
  outputs.chain = std::move(pol->chain);
  outputs.accounts = &accounts;
  if (pol->escalation.enabled) outputs.escalator = std::make_unique<dp::policy::Escalator>(pol->escalation);
  outputs.events_lost = [&worker_ptrs] {
    uint64_t n = 0;
    for (const LcoreCtx* w : worker_ptrs) n += w->counters.get(Counter::events_lost);
    return n;
  };
  auto writer = record::EventWriter::open(std::move(outputs), rings, clock);
  if (!writer) return fail(writer.error());
  writer.value()->start();
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // A peer that hangs up (imf-control killed mid-request) must not take imfd with it.
  std::signal(SIGPIPE, SIG_IGN);

  // --- Launch, then supervise until a signal or, offline, the end of the input.
  auto started = std::chrono::steady_clock::now();
  auto last_stats = started;
  auto print_stats_when_due = [&] {
    auto now = std::chrono::steady_clock::now();
    if (opt.duration_sec && now - started >= std::chrono::seconds(opt.duration_sec)) g_stop.store(true);
    if (!opt.stats_interval_sec || now - last_stats < std::chrono::seconds(opt.stats_interval_sec)) return;
    last_stats = now;
    spdlog::info("stats: {}", format_stats_line(collect_report(worker_ptrs, n_ports, 0)));
  };
  for (auto& w : workers) {
    if (!main_works) rte_eal_remote_launch(worker_main, w.get(), w->lcore_id);
  }
  // The agent starts with the workers: from here on, rule sets and tables change only through it.
  std::unique_ptr<agent::Agent> agent_srv;
  if (!opt.agent_socket.empty()) {
    auto a = agent::Agent::listen(
        opt.agent_socket, installer, tables, accounts,
        [&] {
          return format_summary_json(collect_report(worker_ptrs, n_ports, installer.current().rules.size()), run_info,
                                     installer.current().rules);
        },
        protocols_json(opt));
    if (!a) {
      g_stop.store(true);
      if (!main_works) rte_eal_mp_wait_lcore();
      return fail(a.error());
    }
    agent_srv = std::move(a.value());
    agent_srv->start();
    spdlog::info("agent: listening on {}", opt.agent_socket);
  }
  if (main_works) {
    // A single lcore runs the loop itself; a helper thread ends an offline run stuck on a
    // capture the PMD could not fully read, and serves --stats-interval.
    std::thread supervisor([&] {
      uint64_t last_rx = 0;
      int idle = 0;
      while (!workers[0]->finished.load(std::memory_order_acquire) && !g_stop.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        uint64_t rx = workers[0]->counters.get(Counter::rx_packets);
        idle = rx == last_rx ? idle + 1 : 0;
        last_rx = rx;
        if (expected_packets && idle >= 30) {
          spdlog::warn("offline: input stopped after {} of {} packets", rx, expected_packets);
          g_stop.store(true);
        }
        print_stats_when_due();
      }
    });
    worker_main(workers[0].get());
    supervisor.join();
  } else {
    while (!g_stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      print_stats_when_due();
    }
    rte_eal_mp_wait_lcore();
  }
  if (agent_srv) agent_srv->stop();
  writer.value()->stop();

  // --- Final report, then release the ports (net_pcap flushes its output file on close).
  const std::vector<rules::RuleMeta>& final_rules = installer.current().rules;
  Report report = collect_report(worker_ptrs, n_ports, final_rules.size());
  std::fputs(format_summary(report, final_rules).c_str(), stdout);
  std::fflush(stdout);
  int rc = 0;
  if (!opt.summary_json_path.empty()) {
    std::ofstream out(opt.summary_json_path, std::ios::trunc);
    out << format_summary_json(report, run_info, final_rules);
    if (!out) rc = fail("cannot write " + opt.summary_json_path);
  }
  for (uint16_t p = 0; p < n_ports; ++p) port::stop_port(p);
  for (auto& w : workers) {
    for (uint16_t p = 0; p < n_ports; ++p) rte_free(w->tx[p]);
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_default_logger(spdlog::stderr_logger_mt("imfd"));
  spdlog::set_pattern("imfd: %^%l%$: %v");
  bool eal_up = false;
  int rc = run(argc, argv, &eal_up);
  if (eal_up) {
    // Offline runs use a private, per-process runtime directory; leave nothing behind.
    std::string runtime_dir = wants_offline(argc, argv) ? rte_eal_get_runtime_dir() : "";
    rte_eal_cleanup();
    if (!runtime_dir.empty()) rmdir(runtime_dir.c_str());
  }
  return rc;
}
