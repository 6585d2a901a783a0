#include "policy/account_table.h"

#include <gtest/gtest.h>
#include <rte_malloc.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "private_eal.h"

namespace imf::dp::policy {
namespace {

using imf::policy::AccountRow;

constexpr unsigned kReaders = 1;  // with the writer, one thread per CPU of a 2-CPU machine

struct Qsbr : test::TestQsbr {
  Qsbr() : TestQsbr(kReaders) {}
};

std::unique_ptr<AccountTable> make_table(uint32_t capacity, rte_rcu_qsbr* v) {
  auto t = AccountTable::create(capacity, v, imf::policy::EscalationPolicy{});
  EXPECT_TRUE(t.ok()) << t.error();
  return t.ok() ? std::move(t.value()) : nullptr;
}

std::string temp_path(const char* name) {
  return ::testing::TempDir() + "/" + name + "_" + std::to_string(getpid()) + ".csv";
}
void write_file(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs(text.c_str(), f);
  std::fclose(f);
}

size_t heap_bytes() {
  size_t total = 0;
  for (int s = 0; s < RTE_MAX_NUMA_NODES; ++s) {
    rte_malloc_socket_stats st{};
    if (rte_malloc_get_socket_stats(s, &st) == 0) total += st.heap_allocsz_bytes;
  }
  return total;
}

TEST(AccountTable, SetGetDelete) {
  Qsbr q;
  auto t = make_table(4, q.v);
  AccountTable& at = *t;
  EXPECT_EQ(at.lookup(account_key("alice")), -1);
  EXPECT_FALSE(at.get("alice").has_value());
  uint64_t e0 = at.epoch();
  AccountRow alice{"alice", {"press", "verified"}, AccountState::kRestricted, 1767225600, {5, 60}};
  ASSERT_TRUE(at.set(alice).ok());
  EXPECT_GT(at.epoch(), e0);  // an insert: a cached "absent" is stale
  EXPECT_EQ(at.get("alice"), alice);
  int32_t pos = at.lookup(account_key("alice"));
  ASSERT_GE(pos, 0);
  AccountEntry& e = at.entry(pos);
  EXPECT_EQ(measure_state(e.measure.load()), AccountState::kRestricted);
  EXPECT_EQ(unpack_rate(e.rate.load()), (Rate{5, 60}));

  // An update keeps the position, the rate-limiter state and the epoch.
  e.tat_ns = 12345;
  uint64_t e1 = at.epoch();
  alice.state = AccountState::kWarned;
  alice.markers = {"press"};
  alice.rate = {};
  ASSERT_TRUE(at.set(alice).ok());
  EXPECT_EQ(at.epoch(), e1);
  EXPECT_EQ(at.lookup(account_key("alice")), pos);
  EXPECT_EQ(e.tat_ns.load(), 12345u);
  EXPECT_EQ(at.get("alice"), alice);
  EXPECT_EQ(at.size(), 1u);

  // Workers changed the state: get() reports the live entry.
  e.measure = pack_measure(AccountState::kNone, 0);
  EXPECT_EQ(at.get("alice")->state, AccountState::kNone);

  for (const char* n : {"b", "c", "d"}) ASSERT_TRUE(at.set({n, {}, AccountState::kNone, 0, {}}).ok());
  auto full = at.set({"e", {}, AccountState::kNone, 0, {}});
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error(), "account table is full (4 accounts)");
  EXPECT_FALSE(at.set({"bad,name", {}, AccountState::kNone, 0, {}}).ok());

  uint64_t e2 = at.epoch();
  EXPECT_TRUE(at.del("alice"));
  EXPECT_GT(at.epoch(), e2);
  EXPECT_FALSE(at.del("alice"));
  EXPECT_EQ(at.lookup(account_key("alice")), -1);
  EXPECT_FALSE(at.get("alice").has_value());
  EXPECT_EQ(at.size(), 3u);
  EXPECT_TRUE(at.set({"e", {}, AccountState::kNone, 0, {}}).ok());  // room again
  EXPECT_EQ(at.entry(at.lookup(account_key("e"))).tat_ns.load(), 0u);
}

TEST(AccountTable, SetMeasure) {
  Qsbr q;
  auto t = make_table(2, q.v);
  uint64_t warned = pack_measure(AccountState::kWarned, 100);
  EXPECT_FALSE(t->set_measure("x", warned, 0));  // absent and expected is not none
  EXPECT_TRUE(t->set_measure("x", 0, warned));   // inserted
  EXPECT_EQ(t->get("x"), (AccountRow{"x", {}, AccountState::kWarned, 100, {}}));
  EXPECT_FALSE(t->set_measure("x", 0, 0));  // changed meanwhile
  uint64_t e = t->epoch();
  EXPECT_TRUE(t->set_measure("x", warned, pack_measure(AccountState::kRestricted, 0)));
  EXPECT_EQ(t->epoch(), e);
  EXPECT_EQ(t->get("x")->state, AccountState::kRestricted);
  EXPECT_TRUE(t->set_measure("y", 0, warned));
  EXPECT_FALSE(t->set_measure("z", 0, warned));  // full
}

TEST(AccountTable, MarkersMapToBitsAndBack) {
  Qsbr q;
  auto t = make_table(100, q.v);
  ASSERT_TRUE(t->set({"a", {"press", "verified"}, AccountState::kNone, 0, {}}).ok());
  ASSERT_TRUE(t->set({"b", {"bot", "press"}, AccountState::kNone, 0, {}}).ok());
  const MarkerRegistry& m = t->markers();
  EXPECT_EQ(m.names(), (std::vector<std::string>{"press", "verified", "bot"}));  // first use assigns
  EXPECT_EQ(t->entry(t->lookup(account_key("a"))).markers.load(), 0b011u);
  EXPECT_EQ(t->entry(t->lookup(account_key("b"))).markers.load(), 0b101u);
  EXPECT_EQ(m.names_of(0b110), (std::vector<std::string>{"verified", "bot"}));
  EXPECT_EQ(m.bit_of("bot"), 2);
  EXPECT_EQ(m.bit_of("nope"), -1);

  std::vector<std::string> many;
  for (int i = 3; i < 64; ++i) many.push_back("m" + std::to_string(i));
  ASSERT_TRUE(t->set({"c", many, AccountState::kNone, 0, {}}).ok());
  EXPECT_EQ(m.size(), 64u);
  EXPECT_EQ(t->entry(t->lookup(account_key("c"))).markers.load(), ~uint64_t{7});
  auto over = t->set({"d", {"press", "one-too-many", "zzz"}, AccountState::kNone, 0, {}});
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error(), "marker limit of 64 reached: cannot add 'one-too-many'");
  EXPECT_FALSE(t->get("d").has_value());
  EXPECT_EQ(m.size(), 64u);
  // Known names still work; bits never move.
  ASSERT_TRUE(t->set({"d", {"bot"}, AccountState::kNone, 0, {}}).ok());
  EXPECT_EQ(t->get("d")->markers, std::vector<std::string>{"bot"});

  MarkerRegistry r;
  EXPECT_FALSE(r.mask_of({"Bad Name"}).ok());
  EXPECT_EQ(r.size(), 0u);
  EXPECT_EQ(r.mask_of({"x", "y", "x"}).value(), 0b11u);
  EXPECT_FALSE(r.adopt({"y"}));
  EXPECT_TRUE(r.adopt({"x", "y", "z"}));
  EXPECT_EQ(r.bit_of("z"), 2);
}

TEST(AccountTable, LoadReplacesEverythingOrNothing) {
  Qsbr q;
  auto t = make_table(3, q.v);
  ASSERT_TRUE(t->set({"old", {"press"}, AccountState::kNone, 0, {}}).ok());
  std::string path = temp_path("accounts");
  write_file(path, "alice,verified;press,restricted,1767225600,5/1m\n\nbob,,,,\r\ncarol,,shutdown,,\n");
  uint64_t e = t->epoch();
  auto n = t->load(path);
  ASSERT_TRUE(n.ok()) << n.error();
  EXPECT_EQ(n.value(), 3u);
  EXPECT_GT(t->epoch(), e);
  EXPECT_EQ(t->size(), 3u);
  EXPECT_FALSE(t->get("old").has_value());
  EXPECT_EQ(t->get("alice"),
            (AccountRow{"alice", {"press", "verified"}, AccountState::kRestricted, 1767225600, {5, 60}}));
  EXPECT_EQ(t->get("carol")->state, AccountState::kShutdown);
  EXPECT_EQ(t->markers().names(), (std::vector<std::string>{"press", "verified"}));
  // Writers work on the loaded table, and a second load goes back to the first generation.
  ASSERT_TRUE(t->del("bob"));
  ASSERT_TRUE(t->set({"dave", {}, AccountState::kWarned, 0, {}}).ok());
  write_file(path, "erin,,,,\n");
  ASSERT_EQ(t->load(path).value(), 1u);
  EXPECT_FALSE(t->get("dave").has_value());
  EXPECT_TRUE(t->get("erin").has_value());

  struct Case {
    const char* text;
    std::string error;
  } bad[] = {
      {"frank,,,,\nbad row\n", path + ":2: expected 5 columns"},
      {"frank,,,,\n\nfrank,,warned,,\n", path + ":3: account 'frank' is on an earlier line too"},
      {"a,,,,\nb,,,,\nc,,,,\nd,,,,\n", path + ":4: more than the table's capacity of 3 accounts"},
      {"g,new-marker,,,\nh,,banned,,\n", path + ":2: state: unknown 'banned'"},
  };
  for (const auto& c : bad) {
    write_file(path, c.text);
    uint64_t before = t->epoch();
    auto r = t->load(path);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().rfind(c.error, 0), 0u) << r.error();
    EXPECT_EQ(t->epoch(), before);  // nothing changed
    EXPECT_EQ(t->size(), 1u);
    EXPECT_TRUE(t->get("erin").has_value());
    EXPECT_FALSE(t->get("frank").has_value());
    EXPECT_EQ(t->markers().bit_of("new-marker"), -1);  // the failed load registered no marker
  }
  std::remove(path.c_str());
  auto missing = t->load(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().rfind(path + ": cannot open", 0), 0u) << missing.error();
}

// A worker caches (position, epoch) per account and checks every entry it uses belongs to that
// account (rate.messages = index + 1, or 0 for the instant after an insert) while the writer
// deletes, re-inserts (reusing slots) and bulk-loads.
TEST(AccountTable, ReloadKeepsARestrictedAccountsSpentRate) {
  Qsbr q;
  auto t = make_table(8, q.v);
  std::string path = temp_path("rate_reload");
  write_file(path, "rita,,restricted,,2/1h\n");
  ASSERT_TRUE(t->load(path).ok());
  const uint64_t now = 1767225600ull * 1000000000ull;
  auto take = [&] {
    int32_t pos = t->lookup(account_key("rita"));
    EXPECT_GE(pos, 0);
    return rate_take(t->entry(pos).tat_ns, now, imf::policy::Rate{2, 3600});
  };
  EXPECT_TRUE(take());
  EXPECT_TRUE(take());
  EXPECT_FALSE(take());
  ASSERT_TRUE(t->load(path).ok());  // e.g. imf-control restarting and loading its snapshot
  EXPECT_FALSE(take());             // still spent: a reload is not a fresh bucket
}

TEST(AccountTable, ReadersCachePositionsAcrossDeletesAndLoads) {
  Qsbr q;
  constexpr int kAccounts = 48;
  auto t = make_table(kAccounts, q.v);  // 68 slots: deleted positions are reused quickly
  auto name = [](int i) { return "user" + std::to_string(i); };
  auto row = [&](int i) { return AccountRow{name(i), {}, AccountState::kRestricted, 0, {uint32_t(i) + 1, 60}}; };
  std::string csv;
  for (int i = 0; i < kAccounts; i += 2) csv += imf::policy::format_account_row(row(i)) + "\n";
  std::string path = temp_path("churn");
  write_file(path, csv);
  ASSERT_TRUE(t->load(path).ok());

  std::atomic<bool> stop{false};
  std::atomic<unsigned> online{0};
  std::atomic<uint64_t> uses{0}, bad{0};
  std::thread reader([&] {
    rte_rcu_qsbr_thread_register(q.v, 0);
    rte_rcu_qsbr_thread_online(q.v, 0);
    online.fetch_add(1);
    struct Cached {
      AccountKey key;
      int32_t pos = -1;
      uint64_t epoch = ~uint64_t{0};
    };
    std::vector<Cached> conns(kAccounts);
    for (int i = 0; i < kAccounts; ++i) conns[i].key = account_key(name(i));
    uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < kAccounts; ++i) {
        Cached& c = conns[i];
        uint64_t e = t->epoch();
        if (e != c.epoch) {
          c.pos = t->lookup(c.key);
          c.epoch = e;
        }
        if (c.pos < 0) continue;
        uint32_t m = unpack_rate(t->entry(c.pos).rate.load(std::memory_order_relaxed)).messages;
        for (int spin = 0; spin < 200; ++spin) asm volatile("" ::: "memory");  // hold it a while
        if (m != 0 && m != uint32_t(i) + 1) bad.fetch_add(1);
        ++n;
      }
      rte_rcu_qsbr_quiescent(q.v, 0);
    }
    uses.fetch_add(n);
    rte_rcu_qsbr_thread_offline(q.v, 0);
    rte_rcu_qsbr_thread_unregister(q.v, 0);
  });
  while (online.load() < kReaders) std::this_thread::yield();
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  int round = 0;
  for (; round < 3000 && std::chrono::steady_clock::now() < until; ++round) {
    int i = round % kAccounts;
    if (round % 97 == 0) {
      ASSERT_TRUE(t->load(path).ok());
    } else if (t->get(name(i))) {
      t->del(name(i));
    } else {
      ASSERT_TRUE(t->set(row(i)).ok());
    }
  }
  stop.store(true);
  reader.join();
  std::remove(path.c_str());
  EXPECT_GT(round, 50);
  EXPECT_GT(uses.load(), 0u);
  EXPECT_EQ(bad.load(), 0u);
}

TEST(AccountTable, MillionAccounts) {
  Qsbr q;
  constexpr uint32_t kN = 1'000'000;
  size_t heap_before = heap_bytes();
  auto t = make_table(kN, q.v);
  size_t measured = heap_bytes() - heap_before;
  size_t reported = t->memory_bytes();
  // memory_bytes() is computed from rte_hash's layout; check it against what the heap handed out.
  EXPECT_NEAR(static_cast<double>(reported), static_cast<double>(measured), measured * 0.01);

  std::vector<AccountKey> keys;
  keys.reserve(kN);
  auto t0 = std::chrono::steady_clock::now();
  for (uint32_t i = 0; i < kN; ++i) {
    std::string n = "account-" + std::to_string(i) + "@example.org";
    ASSERT_TRUE(t->set({n, {}, i % 10 ? AccountState::kNone : AccountState::kWarned, 0, {}}).ok()) << i;
    keys.push_back(account_key(n));
  }
  auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(t->size(), kN);
  uint64_t found = 0, warned = 0;
  for (uint32_t i = 0; i < kN; ++i) {
    int32_t pos = t->lookup(keys[i]);
    found += pos >= 0;
    warned += measure_state(t->entry(pos).measure.load(std::memory_order_relaxed)) == AccountState::kWarned;
  }
  auto t2 = std::chrono::steady_clock::now();
  std::vector<AccountKey> absent;
  absent.reserve(kN);
  for (uint32_t i = 0; i < kN; ++i) absent.push_back(account_key("nobody-" + std::to_string(i)));
  auto t3 = std::chrono::steady_clock::now();
  uint64_t misses = 0;
  for (const auto& k : absent) misses += t->lookup(k) < 0;
  auto t4 = std::chrono::steady_clock::now();
  EXPECT_EQ(found, kN);
  EXPECT_EQ(warned, kN / 10);
  EXPECT_EQ(misses, kN);
  auto ns = [](auto d) { return std::chrono::duration<double, std::nano>(d).count(); };
  std::printf("[ accounts ] %u accounts: memory_bytes %zu (%.1f MiB, %.0f B/account; heap measured %zu)\n", kN,
              reported, reported / 1048576.0, double(reported) / kN, measured);
  std::printf("[ accounts ] set %.0f ns/account (SHA-256 included), lookup+entry %.1f ns hit, lookup %.1f ns miss\n",
              ns(t1 - t0) / kN, ns(t2 - t1) / kN, ns(t4 - t3) / kN);

  // The same accounts as a snapshot, loaded beside the live table and swapped in.
  std::string path = temp_path("million");
  {
    FILE* f = std::fopen(path.c_str(), "w");
    for (uint32_t i = 0; i < kN; ++i) std::fprintf(f, "account-%u@example.org,,%s,,\n", i, i % 10 ? "" : "warned");
    std::fclose(f);
  }
  auto t5 = std::chrono::steady_clock::now();
  auto loaded = t->load(path);
  auto t6 = std::chrono::steady_clock::now();
  std::remove(path.c_str());
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_EQ(loaded.value(), kN);
  EXPECT_EQ(t->get("account-999990@example.org")->state, AccountState::kWarned);
  EXPECT_EQ(t->memory_bytes(), reported);
  std::printf("[ accounts ] load of %u rows: %.0f ms\n", kN, ns(t6 - t5) / 1e6);
}

}  // namespace
}  // namespace imf::dp::policy

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new imf::test::PrivateEal("account_table_test", 2048));
  return RUN_ALL_TESTS();
}
