// Named key -> value tables the control process fills (account markers and states, next issue),
// read by worker lcores without locks.
//
// Each table is a DPDK rte_hash in lock-free read/write-concurrency mode: one writer (the agent
// thread) adds and deletes while workers look up. Memory a reader may still hold (a deleted key
// slot, a replaced value, a whole replaced table) is freed only after an rte_rcu_qsbr grace
// period: every worker reports a quiescent state once per loop iteration.
#pragma once

#include <rte_hash.h>
#include <rte_rcu_qsbr.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/table_limits.h"

namespace imf::dp::table {

inline constexpr uint32_t kMaxKey = kTableMaxKey;
inline constexpr uint32_t kMaxValue = kTableMaxValue;
inline constexpr uint32_t kMaxTables = 16;

struct Value {
  uint16_t len;
  char data[];
};

// One table. Writer calls: one thread at a time (the agent). lookup(): any registered lcore.
class KvTable {
 public:
  // capacity: rows it must hold. qsv: the workers' QSBR variable. Errors name the table.
  static Result<std::unique_ptr<KvTable>> create(const std::string& name, uint32_t capacity, rte_rcu_qsbr* qsv);
  ~KvTable();
  KvTable(const KvTable&) = delete;
  KvTable& operator=(const KvTable&) = delete;

  // Lock-free; the result stays valid until the caller's next quiescent-state report.
  const Value* lookup(std::string_view key) const;

  // Writer only. set() replaces an existing value; the old one is freed after a grace period.
  Status set(std::string_view key, std::string_view value);
  bool del(std::string_view key);
  uint32_t size() const { return size_; }
  const std::string& name() const { return name_; }
  uint32_t capacity() const { return capacity_; }

 private:
  KvTable(std::string name, uint32_t capacity, rte_hash* h, rte_rcu_qsbr* qsv)
      : name_(std::move(name)), capacity_(capacity), h_(h), qsv_(qsv) {}

  std::string name_;
  uint32_t capacity_;
  rte_hash* h_;
  rte_rcu_qsbr* qsv_;
  uint32_t size_ = 0;
};

// Reads a snapshot file as the control process writes it (one `key,value` per line; the first
// comma separates). Errors name the file and line.
Result<std::vector<std::pair<std::string, std::string>>> read_snapshot(const std::string& path);

// Up to kMaxTables tables by name. Workers hold no pointer across quiescent states, so a whole
// table can be replaced (load) by publishing a new one and freeing the old after a grace period.
class TableSet {
 public:
  TableSet(uint32_t capacity, rte_rcu_qsbr* qsv) : capacity_(capacity), qsv_(qsv) {}
  ~TableSet();

  // Writer only (agent thread).
  Status set(const std::string& table, std::string_view key, std::string_view value);
  Result<bool> del(const std::string& table, std::string_view key);
  Result<uint32_t> load(const std::string& table, const std::string& snapshot_path);  // replaces all rows
  std::vector<std::pair<std::string, uint32_t>> sizes() const;

  // Any registered lcore (and the writer).
  const KvTable* find(std::string_view table) const;

 private:
  Result<KvTable*> get_or_create(const std::string& table);

  uint32_t capacity_;
  rte_rcu_qsbr* qsv_;
  std::array<std::atomic<KvTable*>, kMaxTables> tables_{};
  uint32_t count_ = 0;
};

}  // namespace imf::dp::table
