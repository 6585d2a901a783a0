// Accounts on the fast path: name -> live AccountEntry for 10M+ accounts, lock-free lookups.
//
// An rte_hash in lock-free read/write-concurrency mode maps a 128-bit key (a hash of the account
// name) to a position; a flat array of AccountEntry is indexed by that position, so there is no
// per-entry allocation and workers update entries' atomics in place. Writers (the agent thread and
// imfd's record thread) serialize on an internal mutex. Memory a worker may still use is reused
// only after an rte_rcu_qsbr grace period: a deleted position is returned to the hash's free list
// after one, and a bulk load builds a whole new table, publishes it, and frees the old one after one.
//
// Lookup results may be cached per connection together with epoch(), which increases whenever a
// cached result may have become wrong: a position invalid (del, load) or an absent account present
// (insert). A worker does, once per use:
//
//   uint64_t e = table.epoch();                       // before the lookup, never after
//   if (e != conn.epoch) { conn.pos = table.lookup(conn.key); conn.epoch = e; }
//   if (conn.pos >= 0) judge_message(table.entry(conn.pos), ...);
//
// and uses the entry only until its next quiescent-state report.
#pragma once

#include <rte_hash.h>
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "policy/markers.h"
#include "policy/measures.h"
#include "policy/policy_config.h"

namespace imf::dp::policy {

struct AccountKey {
  uint8_t b[16];
};

// The first 128 bits of SHA-256 of the name. About 60 ns (bench/accounts): once per connection, not per
// packet. Any thread.
AccountKey account_key(std::string_view account);

class AccountTable {
 public:
  // Largest capacity; positions keep two bits free for the generation.
  static constexpr uint32_t kMaxCapacity = 1u << 28;

  // capacity: accounts it must hold (1..kMaxCapacity). qsv: the workers' QSBR variable, which must
  // outlive the table. policy: what workers judge by (policy()); fixed for the table's life. Errors: bad capacity, out
  // of memory (rte_malloc; the message says how much was wanted).
  static Result<std::unique_ptr<AccountTable>> create(uint32_t capacity, rte_rcu_qsbr* qsv,
                                                      const imf::policy::EscalationPolicy& policy);
  // No reader may still use the table.
  ~AccountTable();
  AccountTable(const AccountTable&) = delete;
  AccountTable& operator=(const AccountTable&) = delete;

  // Any registered lcore, lock-free: the account's position, -1 when absent.
  int32_t lookup(const AccountKey& k) const;
  // Any registered lcore, lock-free: the entry at a position lookup() returned, valid until the
  // caller's next quiescent-state report, or longer while epoch() is unchanged.
  AccountEntry& entry(int32_t pos) const { return gens_[pos >> kGenShift].entries[pos & kPosMask]; }
  // Any thread. Acquire: a reader that sees a new epoch also sees the change that caused it.
  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  const imf::policy::EscalationPolicy& policy() const { return policy_; }

  // Writers (any thread; serialized internally). Upsert: markers, state/until and rate replace the
  // entry's; an existing entry keeps its tat_ns. Inserting bumps the epoch; a worker that finds the
  // new key before the bump may read its entry as zero (state none) for that moment.
  // Errors: a bad account name, a marker over the 64-name limit, the table full.
  Status set(const imf::policy::AccountRow& row);
  // Removes the account and bumps the epoch; waits one grace period. False if absent.
  bool del(std::string_view account);
  // The live entry as a row (state may have been changed by workers). nullopt if absent.
  std::optional<imf::policy::AccountRow> get(std::string_view account) const;
  // Sets only the measure word (escalation, lapse): CAS from `expected`; false if it changed
  // meanwhile. When the account is absent and expected's state is none, inserts it (no markers)
  // with `desired` (bumping the epoch); false if the table is full.
  bool set_measure(std::string_view account, uint64_t expected, uint64_t desired);
  // Replaces every account with a CSV snapshot (policy::parse_account_row per non-empty line).
  // Returns the number of rows. Errors "FILE:LINE: ..." (bad row, account twice, more than
  // capacity); on any error nothing changes. On success bumps the epoch and frees the old table
  // after a grace period. Holds twice the table's memory while it builds; other writers are blocked
  // only while the new table is published, and what they write meanwhile goes to the table being
  // replaced. Concurrent loads serialize.
  Result<uint32_t> load(const std::string& csv_path);

  uint32_t size() const { return size_.load(std::memory_order_relaxed); }
  uint32_t capacity() const { return capacity_; }
  const MarkerRegistry& markers() const { return markers_; }
  MarkerRegistry& markers() { return markers_; }
  // Bytes of the live table: the rte_hash (buckets, key store, free-slot ring) and the entry array.
  size_t memory_bytes() const;

 private:
  static constexpr int kGenShift = 30;
  static constexpr int32_t kPosMask = (1 << kGenShift) - 1;

  // One generation. A load builds the other one; fields do not change while it is published.
  struct Gen {
    rte_hash* hash = nullptr;
    AccountEntry* entries = nullptr;
    uint32_t slots = 0;  // hash entries = array length (positions run below it)
  };

  AccountTable(uint32_t capacity, rte_rcu_qsbr* qsv, const imf::policy::EscalationPolicy& policy)
      : capacity_(capacity), qsv_(qsv), policy_(policy) {}
  Status build(Gen& g);
  static void destroy(Gen& g);
  // Writer helpers; mu_ held.
  Result<int32_t> insert(const AccountKey& k);

  const uint32_t capacity_;
  rte_rcu_qsbr* const qsv_;
  const imf::policy::EscalationPolicy policy_;
  mutable std::mutex mu_;  // writers
  std::mutex load_mu_;     // loads, which own the unpublished generation
  Gen gens_[2];
  // Index of the published generation. Release/acquire: a reader that sees it sees the Gen filled.
  std::atomic<uint32_t> cur_{0};
  std::atomic<uint64_t> epoch_{0};
  std::atomic<uint32_t> size_{0};
  MarkerRegistry markers_;
};

}  // namespace imf::dp::policy
