#include "table/kv_table.h"

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

namespace imf::dp::table {
namespace {

constexpr unsigned kReaders = 1;  // with the writer, one thread per CPU of a 2-CPU machine

struct Qsbr : test::TestQsbr {
  Qsbr() : TestQsbr(kReaders) {}
};

// A value whose bytes can be checked on their own: "<key>|<n>|" then n % 200 copies of 'x'.
std::string value_for(const std::string& key, uint64_t n) {
  return key + "|" + std::to_string(n) + "|" + std::string(n % 200, 'x');
}
bool well_formed(const std::string& key, const Value* v) {
  if (v->len > kMaxValue) return false;
  std::string s(v->data, v->len);
  size_t a = s.find('|'), b = s.find('|', a + 1);
  if (a == std::string::npos || b == std::string::npos || s.substr(0, a) != key) return false;
  uint64_t n = std::stoull(s.substr(a + 1, b - a - 1));
  return s.size() - b - 1 == n % 200 && s.find_first_not_of('x', b + 1) == std::string::npos;
}

TEST(KvTable, SetGetReplaceDeleteAndLimits) {
  Qsbr q;
  auto t = KvTable::create("markers", 4, q.v);
  ASSERT_TRUE(t.ok()) << t.error();
  KvTable& kv = *t.value();
  EXPECT_EQ(kv.lookup("alice"), nullptr);
  ASSERT_TRUE(kv.set("alice", "verified_publisher").ok());
  const Value* v = kv.lookup("alice");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(std::string(v->data, v->len), "verified_publisher");
  ASSERT_TRUE(kv.set("alice", "").ok());  // replace, empty value allowed
  EXPECT_EQ(kv.lookup("alice")->len, 0);
  EXPECT_EQ(kv.size(), 1u);
  for (const char* k : {"b", "c", "d"}) ASSERT_TRUE(kv.set(k, "1").ok());
  auto full = kv.set("e", "1");
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.error().find("table 'markers' is full (4 rows"), std::string::npos) << full.error();
  auto long_key = kv.set(std::string(kMaxKey + 1, 'k'), "v");
  ASSERT_FALSE(long_key.ok());
  EXPECT_NE(long_key.error().find("keys are 1-96"), std::string::npos) << long_key.error();
  EXPECT_FALSE(kv.set("b", std::string(kMaxValue + 1, 'v')).ok());
  EXPECT_EQ(std::string(kv.lookup("b")->data, 1), "1");  // refused change left the row alone
  EXPECT_TRUE(kv.del("b"));
  EXPECT_FALSE(kv.del("b"));
  EXPECT_EQ(kv.lookup("b"), nullptr);
  EXPECT_EQ(kv.size(), 3u);
  EXPECT_TRUE(kv.set("e", "1").ok());  // room again
}

// Readers look up without locks while the writer replaces and deletes rows; every value a reader
// sees is whole (freed memory is poisoned, so a value freed under a reader would show).
TEST(KvTable, ReadersNeverSeeATornOrFreedValue) {
  Qsbr q;
  auto t = KvTable::create("acct", 64, q.v);
  ASSERT_TRUE(t.ok()) << t.error();
  KvTable& kv = *t.value();
  std::vector<std::string> keys;
  for (int i = 0; i < 32; ++i) keys.push_back("user" + std::to_string(i));
  for (const auto& k : keys) ASSERT_TRUE(kv.set(k, value_for(k, 0)).ok());

  std::atomic<bool> stop{false};
  std::atomic<unsigned> online{0};
  std::atomic<uint64_t> reads{0}, bad{0};
  std::vector<std::thread> readers;
  for (unsigned id = 0; id < kReaders; ++id) {
    readers.emplace_back([&, id] {
      rte_rcu_qsbr_thread_register(q.v, id);
      rte_rcu_qsbr_thread_online(q.v, id);
      online.fetch_add(1);
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (const auto& k : keys) {
          const Value* v = kv.lookup(k);
          // Hold the value a while, as a worker judging a packet would, before checking it.
          for (int spin = 0; spin < 300; ++spin) asm volatile("" ::: "memory");
          if (v && !well_formed(k, v)) bad.fetch_add(1);
          ++n;
        }
        rte_rcu_qsbr_quiescent(q.v, id);
      }
      reads.fetch_add(n);
      rte_rcu_qsbr_thread_offline(q.v, id);
      rte_rcu_qsbr_thread_unregister(q.v, id);
    });
  }
  while (online.load() < kReaders) std::this_thread::yield();
  // Writes for a bounded time: each replacement waits one grace period, whose length depends on
  // how the readers are scheduled.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  uint64_t round = 1;
  for (; round <= 2000 && std::chrono::steady_clock::now() < until; ++round) {
    const std::string& k = keys[round % keys.size()];
    if (round % 7 == 0) {
      kv.del(k);
    } else {
      ASSERT_TRUE(kv.set(k, value_for(k, round)).ok());
    }
  }
  stop.store(true);
  for (auto& r : readers) r.join();
  EXPECT_GT(round, 50u);
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(bad.load(), 0u);
}

TEST(TableSet, LoadReplacesAWholeTableUnderReadersAndNamesBadLines) {
  Qsbr q;
  TableSet set(1000, q.v);
  std::string path = ::testing::TempDir() + "/kv_snapshot_" + std::to_string(getpid()) + ".csv";
  auto write = [&](const std::string& text) {
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(text.c_str(), f);
    std::fclose(f);
  };
  write("alice,verified_publisher\nbob,\ncarol,a,b\n");
  auto n = set.load("markers", path);
  ASSERT_TRUE(n.ok()) << n.error();
  EXPECT_EQ(n.value(), 3u);
  const KvTable* t = set.find("markers");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(std::string(t->lookup("carol")->data, t->lookup("carol")->len), "a,b");  // first comma splits
  ASSERT_TRUE(set.set("markers", "dave", "x").ok());
  write("erin,1\n");
  ASSERT_EQ(set.load("markers", path).value(), 1u);  // replaces: the old rows are gone
  EXPECT_EQ(set.find("markers")->lookup("alice"), nullptr);
  EXPECT_NE(set.find("markers")->lookup("erin"), nullptr);
  write("ok,1\nno comma here\n");
  auto bad = set.load("markers", path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find(path + ":2: no ','"), std::string::npos) << bad.error();
  EXPECT_NE(set.find("markers")->lookup("erin"), nullptr);  // a failed load changes nothing
  EXPECT_EQ(set.sizes(), (std::vector<std::pair<std::string, uint32_t>>{{"markers", 1}}));
  auto missing = set.del("nope", "k");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error(), "no table 'nope'");
  std::remove(path.c_str());
}

}  // namespace
}  // namespace imf::dp::table

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new imf::test::PrivateEal("kv_table_test", 256));
  return RUN_ALL_TESTS();
}
