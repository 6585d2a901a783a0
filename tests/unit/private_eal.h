// A private, hugepage-free EAL for unit tests of code that needs DPDK memory (rte_hash,
// rte_malloc, rte_rcu_qsbr). Each test binary registers one in its own main():
//   ::testing::AddGlobalTestEnvironment(new imf::test::PrivateEal("kv_table_test", 256));
#pragma once

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace imf::test {

class PrivateEal : public ::testing::Environment {
 public:
  PrivateEal(std::string name, unsigned memory_mb) : name_(std::move(name)), memory_mb_(memory_mb) {}

  void SetUp() override {
    // A per-process file prefix and no shared config: test binaries may run in parallel.
    std::vector<std::string> args = {name_,
                                     "--no-pci",
                                     "--no-huge",
                                     "--no-shconf",
                                     "-m",
                                     std::to_string(memory_mb_),
                                     "--file-prefix",
                                     name_ + std::to_string(getpid()),
                                     "-l",
                                     "0",
                                     "--no-telemetry",
                                     "--log-level=*:error"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    ASSERT_GE(rte_eal_init(static_cast<int>(argv.size()), argv.data()), 0);
  }
  void TearDown() override { rte_eal_cleanup(); }

 private:
  std::string name_;
  unsigned memory_mb_;
};

// A QSBR variable for `threads` reader threads (the grace periods the tables wait for), freed
// with the object. Needs the EAL above.
struct TestQsbr {
  explicit TestQsbr(unsigned threads)
      : v(static_cast<rte_rcu_qsbr*>(rte_zmalloc("test_qsbr", rte_rcu_qsbr_get_memsize(threads), 64))) {
    EXPECT_EQ(rte_rcu_qsbr_init(v, threads), 0);
  }
  ~TestQsbr() { rte_free(v); }
  TestQsbr(const TestQsbr&) = delete;
  TestQsbr& operator=(const TestQsbr&) = delete;
  rte_rcu_qsbr* v;
};

}  // namespace imf::test
