// imf-accountbench: what the account table (dataplane/policy/account_table.h) costs at the scale
// operators run it: memory and bulk-load time (accounts.load) for N accounts, the lookup a worker
// does when it first meets a connection (cache-cold and cache-warm, hits and misses),
// account_key(), judge_message() per message, and single-row upserts (set()). The table is built
// in a private in-process EAL exactly as imfd builds it. See bench/README.md.
#include <getopt.h>
#include <rte_eal.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "policy/account_table.h"
#include "rng.h"

namespace imf::bench::accounts {
namespace {

using dp::policy::AccountEntry;
using dp::policy::AccountKey;
using dp::policy::AccountTable;
using imf::policy::AccountRow;
using imf::policy::AccountState;
using synth::Rng;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kHotSet = 1000;  // accounts of the cache-warm lookups
constexpr uint64_t kSetExisting = 100000;
constexpr uint64_t kSetNew = 10000;
constexpr uint64_t kKeyNames = 1000000;  // names account_key() hashes, at most
constexpr int kMarkerNames = 40;

const char* usage() {
  return "usage: imf-accountbench [options]\n"
         "  --accounts N   accounts to bulk-load (default 10000000)\n"
         "  --lookups M    lookups per cold measurement, and ops of the others (default 10000000)\n"
         "  --seed S       seed of the generated accounts and samples (default 1)\n"
         "  --huge         run EAL on hugepages when enough are free (default: --no-huge, 4 KiB pages)\n"
         "  --dir DIR      where the temporary CSV goes (default $TMPDIR or /tmp)\n"
         "  --json FILE    also write every figure as one JSON object\n"
         "Exit status: 0 ok, 1 error or a failed check (a loaded account not found), 2 usage.\n";
}

struct Options {
  uint64_t accounts = 10000000;
  uint64_t lookups = 10000000;
  uint64_t seed = 1;
  bool huge = false;
  std::string dir;
  std::string json;
  std::string command;
};

bool parse_count(const char* s, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno || end == s || *end || *s == '-') return false;
  *out = v;
  return true;
}

Result<Options> parse_options(int argc, char** argv) {
  enum : int { kAccounts = 1000, kLookups, kSeed, kHuge, kDir, kJson, kHelp };
  static const option kLong[] = {
      {"accounts", required_argument, nullptr, kAccounts},
      {"lookups", required_argument, nullptr, kLookups},
      {"seed", required_argument, nullptr, kSeed},
      {"huge", no_argument, nullptr, kHuge},
      {"dir", required_argument, nullptr, kDir},
      {"json", required_argument, nullptr, kJson},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };
  Options o;
  for (int i = 0; i < argc; ++i) o.command += (i ? " " : "") + std::string(argv[i]);
  const char* tmp = std::getenv("TMPDIR");
  o.dir = tmp && *tmp ? tmp : "/tmp";
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "", kLong, nullptr)) != -1) {
    switch (c) {
      case kAccounts:
        if (!parse_count(optarg, &o.accounts)) return make_error("--accounts: not a count");
        break;
      case kLookups:
        if (!parse_count(optarg, &o.lookups)) return make_error("--lookups: not a count");
        break;
      case kSeed:
        if (!parse_count(optarg, &o.seed)) return make_error("--seed: not a number");
        break;
      case kHuge: o.huge = true; break;
      case kDir: o.dir = optarg; break;
      case kJson: o.json = optarg; break;
      case kHelp: return make_error("");
      default: return make_error(std::string("unknown option or missing value: ") + argv[optind - 1]);
    }
  }
  if (optind < argc) return make_error(std::string("unexpected argument: ") + argv[optind]);
  // Room for the inserts and the three judge_message entries below the table's limit.
  if (o.accounts < kHotSet || o.accounts > AccountTable::kMaxCapacity - kSetNew - 16)
    return make_error("--accounts: must be " + std::to_string(kHotSet) + "-" +
                      std::to_string(AccountTable::kMaxCapacity - kSetNew - 16));
  if (o.lookups < kHotSet) return make_error("--lookups: must be at least " + std::to_string(kHotSet));
  return o;
}

// --- Environment

void progress(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void progress(const char* fmt, ...) {
  static const Clock::time_point start = Clock::now();
  std::fprintf(stderr, "[%6.1f s] ", std::chrono::duration<double>(Clock::now() - start).count());
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A "Key: value kB" line of a /proc file, in bytes; 0 if absent.
uint64_t proc_kb(const char* path, const char* key) {
  std::ifstream in(path);
  std::string line;
  size_t n = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':')
      return std::strtoull(&line[n + 1], nullptr, 10);
  }
  return 0;
}
// Resident memory including hugepages, which VmRSS leaves out (with --huge EAL maps all of -m at
// start, so then it says little about the table).
uint64_t rss_bytes() {
  return (proc_kb("/proc/self/status", "VmRSS") + proc_kb("/proc/self/status", "HugetlbPages")) << 10;
}
uint64_t peak_rss_bytes() {
  return (proc_kb("/proc/self/status", "VmHWM") + proc_kb("/proc/self/status", "HugetlbPages")) << 10;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      return colon == std::string::npos ? "?" : line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "?";
}

// EAL on 4 KiB pages unless --huge and enough hugepages are free: production runs on hugepages,
// and a cold lookup's TLB misses differ, so the report says which it measured.
Result<bool> start_eal(const Options& o) {
  uint64_t mb = o.accounts * 256 / (1 << 20) + 512;  // a generation is ~100 B/account; load holds two
  uint64_t huge_free_mb = proc_kb("/proc/meminfo", "HugePages_Free") * proc_kb("/proc/meminfo", "Hugepagesize") >> 10;
  bool huge = o.huge && huge_free_mb >= mb;
  if (o.huge && !huge)
    progress("only %" PRIu64 " MiB of hugepages free, %" PRIu64 " needed: running on 4 KiB pages", huge_free_mb, mb);
  // --in-memory on hugepages: no hugetlbfs mount needed (memfd), nothing left behind.
  std::vector<std::string> args = {"imf-accountbench", "--no-pci", "--no-shconf", "--no-telemetry",
                                   "--log-level=error"};
  args.insert(args.end(),
              {"-l", "0", "-m", std::to_string(mb), "--file-prefix", "accbench" + std::to_string(getpid())});
  args.push_back(huge ? "--in-memory" : "--no-huge");
  std::vector<char*> argv;
  argv.reserve(args.size());
  for (std::string& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0)
    return make_error("EAL init failed with -m " + std::to_string(mb) + (huge ? " on hugepages" : " --no-huge"));
  return huge;
}

uint64_t heap_bytes() {
  uint64_t total = 0;
  for (int s = 0; s < RTE_MAX_NUMA_NODES; ++s) {
    rte_malloc_socket_stats st{};
    if (rte_malloc_get_socket_stats(s, &st) == 0) total += st.heap_allocsz_bytes;
  }
  return total;
}

// --- Accounts

std::string account_name(const char* prefix, uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s-%08" PRIu64, prefix, i);
  return buf;
}

// A plausible account: ~10% carry 1-3 of 40 markers, ~1% are under a measure
// (warned, restricted or suspended; half indefinite, half lapsing within a week; half of the
// restricted ones at a rate of their own).
AccountRow make_row(std::string name, Rng& rng, int64_t now_s) {
  AccountRow r;
  r.account = std::move(name);
  if (rng.chance(0.10)) {
    size_t n = 1 + rng.below(3);
    while (r.markers.size() < n) {
      char m[16];
      std::snprintf(m, sizeof m, "marker-%02d", static_cast<int>(rng.below(kMarkerNames)));
      if (std::find(r.markers.begin(), r.markers.end(), m) == r.markers.end()) r.markers.push_back(m);
    }
    std::sort(r.markers.begin(), r.markers.end());
  }
  if (rng.chance(0.01)) {
    r.state = static_cast<AccountState>(1 + rng.below(3));
    r.until_s = rng.chance(0.5) ? 0 : now_s + 3600 + static_cast<int64_t>(rng.below(uint64_t{7} * 86400));
    if (r.state == AccountState::kRestricted && rng.chance(0.5)) r.rate = {5, 60};
  }
  return r;
}

struct CsvFile {
  std::string path;
  uint64_t bytes = 0;
  double seconds = 0;
  ~CsvFile() {
    if (!path.empty()) std::remove(path.c_str());
  }
};

Status write_csv(const Options& o, int64_t now_s, CsvFile* csv) {
  csv->path = o.dir + "/imf-accountbench-" + std::to_string(getpid()) + ".csv";
  auto t0 = Clock::now();
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(csv->path.c_str(), "w"), std::fclose);
  if (!f) return make_error(csv->path + ": cannot create: " + std::strerror(errno));
  Rng rng(o.seed);
  std::string line;
  for (uint64_t i = 0; i < o.accounts; ++i) {
    line = imf::policy::format_account_row(make_row(account_name("user", i), rng, now_s));
    line += '\n';
    if (std::fwrite(line.data(), 1, line.size(), f.get()) != line.size())
      return make_error(csv->path + ": write error: " + std::strerror(errno));
    csv->bytes += line.size();
  }
  if (std::fclose(f.release()) != 0) return make_error(csv->path + ": write error: " + std::strerror(errno));
  csv->seconds = seconds_since(t0);
  return Ok{};
}

// Keys of `count` names prefix-(lo + uniform [0, span)), in random order. Computed before timing:
// a worker hashes the name once per connection, which account_key_ns measures on its own.
std::vector<AccountKey> sample_keys(const char* prefix, uint64_t count, uint64_t lo, uint64_t span, Rng& rng) {
  std::vector<AccountKey> keys;
  keys.reserve(count);
  for (uint64_t i = 0; i < count; ++i)
    keys.push_back(dp::policy::account_key(account_name(prefix, lo + rng.below(span))));
  return keys;
}

// --- Measurements

// Stores a result where the compiler must assume it is read, so the measured loop is kept.
template <typename T>
void keep(T v) {
  asm volatile("" : : "r"(v) : "memory");
}

// keys[0..n) looked up `reps` times in order, reading each found entry's measure word: what a
// worker does on a connection's first message after computing its key. Returns ns per lookup, or
// an error if any key was not found (hits) or found (misses).
//
// Independent lookups let the CPU overlap the cache misses of consecutive ones: the cost of
// lookups back to back. Chained (hits only) makes the next key's address depend on this entry's
// measure word, through its top bits, which are 0 (a state <= 4) but not known to the compiler, so
// a lookup starts only once the previous one has finished: its latency, as when a worker meets one
// new connection among packets of others. Misses cannot be chained this way: a miss is a
// predicted branch, not a value, so the CPU runs ahead just as it would in the worker.
template <bool kChained>
Result<double> time_lookups(const AccountTable& t, const std::vector<AccountKey>& keys, size_t n, uint64_t reps,
                            bool hits) {
  uint64_t found = 0;
  uint64_t sink = 0;
  auto t0 = Clock::now();
  for (uint64_t r = 0; r < reps; ++r) {
    size_t dep = 0;
    for (size_t j = 0; j < n; ++j) {
      int32_t pos = t.lookup(keys[j + dep]);
      uint64_t m = pos >= 0 ? t.entry(pos).measure.load(std::memory_order_relaxed) : 0;
      found += pos >= 0;
      sink += m;
      if constexpr (kChained) dep = m >> 62;
    }
  }
  double s = seconds_since(t0);
  keep(sink);
  uint64_t want = hits ? n * reps : 0;
  if (found != want)
    return make_error("lookups found " + std::to_string(found) + " of " + std::to_string(n * reps) +
                      " keys, expected " + std::to_string(want));
  return s * 1e9 / static_cast<double>(n * reps);
}

struct Figures {
  uint64_t rows = 0;
  double load_seconds = 0;
  uint64_t table_bytes = 0, heap_bytes = 0;
  uint64_t rss_eal = 0, rss_empty = 0, rss_loaded = 0, rss_peak = 0;
  double lookup_ns[2][2] = {};  // [cold, warm][hit, miss], independent
  double chained_ns[2] = {};    // [cold, warm], hits
  double key_ns = 0;
  double judge_none_ns = 0, judge_pass_ns = 0, judge_drop_ns = 0;
  double set_existing_ns = 0, set_insert_ns = 0;
};

Status measure_lookups(const Options& o, const AccountTable& t, Rng& rng, Figures* f) {
  progress("computing %" PRIu64 " keys of present and %" PRIu64 " of absent accounts", o.lookups, o.lookups);
  std::vector<AccountKey> sets[2] = {sample_keys("user", o.lookups, 0, o.accounts, rng),
                                     sample_keys("user", o.lookups, o.accounts, o.accounts, rng)};
  for (int warm = 0; warm < 2; ++warm) {
    // Cold: every key once over the whole table, in random order. Warm: the first kHotSet keys
    // again and again, so their buckets, key slots and entries stay in cache.
    size_t n = warm ? kHotSet : o.lookups;
    uint64_t reps = warm ? o.lookups / kHotSet : 1;
    for (int miss = 0; miss < 2; ++miss) {
      progress("lookups: %s %s", warm ? "warm" : "cold", miss ? "misses" : "hits");
      auto ns = time_lookups<false>(t, sets[miss], n, reps, !miss);
      if (!ns) return make_error(ns.error());
      f->lookup_ns[warm][miss] = ns.value();
      if (miss) continue;
      auto chained = time_lookups<true>(t, sets[miss], n, reps, true);
      if (!chained) return make_error(chained.error());
      f->chained_ns[warm] = chained.value();
    }
  }
  return Ok{};
}

void measure_account_key(const Options& o, Rng& rng, Figures* f) {
  progress("account_key");
  std::vector<std::string> names;
  for (uint64_t i = 0; i < std::min(o.lookups, kKeyNames); ++i)
    names.push_back(account_name("user", rng.below(o.accounts)));
  uint8_t sink = 0;
  auto t0 = Clock::now();
  for (const std::string& n : names) sink ^= dp::policy::account_key(n).b[0];
  f->key_ns = seconds_since(t0) * 1e9 / static_cast<double>(names.size());
  keep(sink);
}

// judge_message() on one entry, `ops` messages 1 us apart in simulated time. The entry stays in
// cache, as it does for a connection's later messages.
double time_judge(AccountTable& t, const std::string& account, uint64_t ops, int64_t now_ns, uint64_t* passed) {
  AccountEntry& e = t.entry(t.lookup(dp::policy::account_key(account)));
  uint64_t pass = 0;
  auto t0 = Clock::now();
  for (uint64_t i = 0; i < ops; ++i) {
    auto a = dp::policy::judge_message(e, now_ns + static_cast<int64_t>(i) * 1000, t.policy(), nullptr);
    pass += a == dp::policy::MessageAction::kPass;
  }
  double ns = seconds_since(t0) * 1e9 / static_cast<double>(ops);
  if (passed) *passed = pass;
  return ns;
}

Status measure_judge(const Options& o, AccountTable& t, int64_t now_ns, Figures* f) {
  progress("judge_message");
  // none: the common case. pass: restricted at 1/us, every message within the rate (a CAS on
  // tat_ns each). drop: restricted at the policy's 10/1m, every message after the tenth over it.
  AccountRow none{"bench-none", {}, AccountState::kNone, 0, {}};
  AccountRow pass{"bench-restricted-pass", {}, AccountState::kRestricted, 0, {1000000, 1}};
  AccountRow drop{"bench-restricted-drop", {}, AccountState::kRestricted, 0, {}};
  for (const AccountRow* r : {&none, &pass, &drop}) {
    if (auto st = t.set(*r); !st) return make_error(st.error());
  }
  f->judge_none_ns = time_judge(t, none.account, o.lookups, now_ns, nullptr);
  uint64_t passed[2] = {};
  f->judge_pass_ns = time_judge(t, pass.account, o.lookups, now_ns, &passed[0]);
  f->judge_drop_ns = time_judge(t, drop.account, o.lookups, now_ns, &passed[1]);
  // Over the rate: the first 10 pass, then one per 6 s of simulated time.
  if (passed[0] != o.lookups || passed[1] > 11 + o.lookups / 6000000)
    return make_error("judge_message: " + std::to_string(passed[0]) + " passed within the rate, " +
                      std::to_string(passed[1]) + " over it, of " + std::to_string(o.lookups));
  return Ok{};
}

Status measure_set(const Options& o, AccountTable& t, Rng& rng, int64_t now_s, Figures* f) {
  progress("set(): %" PRIu64 " updates, %" PRIu64 " inserts", kSetExisting, kSetNew);
  std::vector<AccountRow> existing, fresh;
  for (uint64_t i = 0; i < kSetExisting; ++i)
    existing.push_back(make_row(account_name("user", rng.below(o.accounts)), rng, now_s));
  for (uint64_t i = 0; i < kSetNew; ++i) fresh.push_back(make_row(account_name("new", i), rng, now_s));
  double* out[2] = {&f->set_existing_ns, &f->set_insert_ns};
  const std::vector<AccountRow>* rows[2] = {&existing, &fresh};
  for (int k = 0; k < 2; ++k) {
    auto t0 = Clock::now();
    for (const AccountRow& r : *rows[k]) {
      if (auto st = t.set(r); !st) return make_error(r.account + ": " + st.error());
    }
    *out[k] = seconds_since(t0) * 1e9 / static_cast<double>(rows[k]->size());
  }
  return Ok{};
}

// --- Report

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// One JSON object under construction: `"key": value` pairs in insertion order.
class Json {
 public:
  Json& raw(const char* key, const std::string& v) {
    body_ += (body_.empty() ? "" : ", ") + json_string(key) + ": " + v;
    return *this;
  }
  Json& add(const char* key, double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return raw(key, buf);
  }
  Json& add(const char* key, uint64_t v) { return raw(key, std::to_string(v)); }
  Json& add(const char* key, const std::string& v) { return raw(key, json_string(v)); }
  Json& add(const char* key, const Json& v) { return raw(key, v.str()); }
  std::string str() const { return "{" + body_ + "}"; }

 private:
  std::string body_;
};

std::string to_json(const Options& o, bool huge, const CsvFile& csv, const Figures& f) {
  const double n = static_cast<double>(o.accounts);
  Json lookups;
  lookups.add("cold_hit", f.lookup_ns[0][0])
      .add("cold_miss", f.lookup_ns[0][1])
      .add("cold_hit_chained", f.chained_ns[0])
      .add("warm_hit", f.lookup_ns[1][0])
      .add("warm_miss", f.lookup_ns[1][1])
      .add("warm_hit_chained", f.chained_ns[1])
      .add("cold_warm_ratio_hit", f.lookup_ns[0][0] / f.lookup_ns[1][0])
      .add("cold_warm_ratio_miss", f.lookup_ns[0][1] / f.lookup_ns[1][1])
      .add("cold_warm_ratio_hit_chained", f.chained_ns[0] / f.chained_ns[1]);
  Json j;
  j.add("accounts", o.accounts)
      .add("lookups", o.lookups)
      .add("hot_set", kHotSet)
      .add("seed", o.seed)
      .add("pages", std::string(huge ? "hugepages" : "4k"))
      .add("cpu", cpu_model())
      .add("cpus", static_cast<uint64_t>(sysconf(_SC_NPROCESSORS_ONLN)))
      .add("command", o.command)
      .add("csv", Json().add("bytes", csv.bytes).add("write_seconds", csv.seconds))
      .add("load", Json()
                       .add("rows", f.rows)
                       .add("wall_ms", f.load_seconds * 1e3)
                       .add("rows_per_sec", n / f.load_seconds)
                       .add("ns_per_row", f.load_seconds * 1e9 / n))
      .add("memory", Json()
                         .add("table_bytes", f.table_bytes)
                         .add("bytes_per_account", static_cast<double>(f.table_bytes) / n)
                         .add("capacity", o.accounts + kSetNew + 16)
                         .add("heap_alloc_bytes", f.heap_bytes)
                         .add("rss_after_eal", f.rss_eal)
                         .add("rss_empty_table", f.rss_empty)
                         .add("rss_after_load", f.rss_loaded)
                         .add("rss_peak_load", f.rss_peak))
      .add("lookup_ns", lookups)
      .add("account_key_ns", f.key_ns)
      .add("judge_message_ns", Json()
                                   .add("none", f.judge_none_ns)
                                   .add("restricted_pass", f.judge_pass_ns)
                                   .add("restricted_drop", f.judge_drop_ns))
      .add("set_ns", Json()
                         .add("existing", f.set_existing_ns)
                         .add("insert", f.set_insert_ns)
                         .add("existing_ops", kSetExisting)
                         .add("insert_ops", kSetNew));
  return j.str() + "\n";
}

void print_table(const Options& o, bool huge, const CsvFile& csv, const Figures& f) {
  const double n = static_cast<double>(o.accounts);
  const double mib = 1 << 20;
  std::printf("account table: %" PRIu64 " accounts, %s pages, %s\n\n", o.accounts, huge ? "huge" : "4 KiB",
              cpu_model().c_str());
  std::printf("bulk load      %.0f ms  %.0f rows/s  (CSV %.0f MiB)\n", f.load_seconds * 1e3, n / f.load_seconds,
              static_cast<double>(csv.bytes) / mib);
  std::printf(
      "memory         %.1f MiB  %.1f B/account  (RSS %.0f MiB empty table, %.0f MiB loaded, %.0f MiB peak during "
      "load)\n\n",
      static_cast<double>(f.table_bytes) / mib, static_cast<double>(f.table_bytes) / n,
      static_cast<double>(f.rss_empty) / mib, static_cast<double>(f.rss_loaded) / mib,
      static_cast<double>(f.rss_peak) / mib);
  std::printf("lookup + measure word, ns/op   hit   miss   hit chained\n");
  const char* rows[2] = {"cold (random)", "warm (1,000 accounts)"};
  for (int w = 0; w < 2; ++w)
    std::printf("  %-24s %7.1f %6.1f %13.1f\n", rows[w], f.lookup_ns[w][0], f.lookup_ns[w][1], f.chained_ns[w]);
  std::printf("  %-24s %6.1fx %5.1fx %12.1fx\n\n", "cold/warm", f.lookup_ns[0][0] / f.lookup_ns[1][0],
              f.lookup_ns[0][1] / f.lookup_ns[1][1], f.chained_ns[0] / f.chained_ns[1]);
  std::printf("account_key    %.1f ns\n", f.key_ns);
  std::printf("judge_message  %.1f ns none, %.1f ns restricted within rate, %.1f ns restricted over rate\n",
              f.judge_none_ns, f.judge_pass_ns, f.judge_drop_ns);
  std::printf("set()          %.0f ns update, %.0f ns insert\n", f.set_existing_ns, f.set_insert_ns);
}

int run(const Options& o) {
  auto fail = [](const std::string& what) {
    std::fprintf(stderr, "imf-accountbench: %s\n", what.c_str());
    return 1;
  };
  Result<bool> huge = start_eal(o);
  if (!huge) return fail(huge.error());
  Figures f;
  f.rss_eal = rss_bytes();
  const int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const int64_t now_s = now_ns / 1000000000;
  int rc = 0;
  {
    // No reader registers, so grace periods (load, del) end at once.
    std::unique_ptr<rte_rcu_qsbr, void (*)(void*)> qsv(
        static_cast<rte_rcu_qsbr*>(rte_zmalloc("accbench_qsbr", rte_rcu_qsbr_get_memsize(1), RTE_CACHE_LINE_SIZE)),
        rte_free);
    if (!qsv || rte_rcu_qsbr_init(qsv.get(), 1) != 0) return fail("cannot allocate the QSBR variable");
    auto table = AccountTable::create(static_cast<uint32_t>(o.accounts + kSetNew + 16), qsv.get(),
                                      imf::policy::EscalationPolicy{});
    if (!table) return fail(table.error());
    AccountTable& t = *table.value();
    f.rss_empty = rss_bytes();

    CsvFile csv;
    progress("writing %" PRIu64 " accounts to %s/", o.accounts, o.dir.c_str());
    if (auto st = write_csv(o, now_s, &csv); !st) return fail(st.error());
    progress("loading %.0f MiB of CSV (written in %.1f s)", static_cast<double>(csv.bytes) / (1 << 20), csv.seconds);
    auto t0 = Clock::now();
    Result<uint32_t> rows = t.load(csv.path);
    f.load_seconds = seconds_since(t0);
    std::remove(csv.path.c_str());  // now, not at exit: up to 200 MB, and an interrupted run would leave it
    csv.path.clear();
    if (!rows) return fail(rows.error());
    f.rows = rows.value();
    if (f.rows != o.accounts)
      return fail("loaded " + std::to_string(f.rows) + " rows of " + std::to_string(o.accounts));
    f.table_bytes = t.memory_bytes();
    f.heap_bytes = heap_bytes();
    f.rss_loaded = rss_bytes();
    f.rss_peak = peak_rss_bytes();  // the load's peak: both generations

    Rng rng(o.seed ^ 0x5eed);  // samples independent of the rows' contents
    Status st = measure_lookups(o, t, rng, &f);
    if (st) measure_account_key(o, rng, &f);
    if (st) st = measure_judge(o, t, now_ns, &f);
    if (st) st = measure_set(o, t, rng, now_s, &f);
    if (!st) return fail(st.error());

    print_table(o, huge.value(), csv, f);
    if (!o.json.empty()) {
      std::ofstream out(o.json, std::ios::trunc);
      out << to_json(o, huge.value(), csv, f);
      out.close();
      if (!out) rc = fail("cannot write " + o.json);
    }
  }
  rte_eal_cleanup();
  return rc;
}

}  // namespace
}  // namespace imf::bench::accounts

int main(int argc, char** argv) {
  imf::Result<imf::bench::accounts::Options> o = imf::bench::accounts::parse_options(argc, argv);
  if (!o) {
    if (!o.error().empty()) std::fprintf(stderr, "imf-accountbench: %s\n", o.error().c_str());
    std::fputs(imf::bench::accounts::usage(), o.error().empty() ? stdout : stderr);
    return o.error().empty() ? 0 : 2;
  }
  return imf::bench::accounts::run(o.value());
}
