#include "policy/account_table.h"

#include <openssl/sha.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_ring_elem.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <new>

namespace imf::dp::policy {

using imf::policy::AccountRow;

namespace {

// Keys are already uniform (SHA-256 bits): their first 32 bits are the hash rte_hash wants.
uint32_t key_hash(const void* key, uint32_t, uint32_t) {
  uint32_t h;
  std::memcpy(&h, key, sizeof h);
  return h;
}

// rte_hash layout in DPDK 22.11 (rte_cuckoo_hash.c), for memory_bytes(): 64-byte buckets of 8,
// key slots of align16(8-byte data pointer + key), a ring of free slot indices, and about 1.5 KiB
// of small allocations (the rte_hash itself, its change counter, malloc headers). The test checks
// the sum against the heap's own count.
size_t hash_bytes(uint32_t slots) {
  constexpr size_t kSmall = 1536;
  size_t buckets = size_t{rte_align32pow2(slots)} / 8 * 64;
  size_t keys = size_t{32} * (slots + 1);
  ssize_t ring = rte_ring_get_memsize_elem(sizeof(uint32_t), rte_align32pow2(slots + 1));
  return buckets + keys + (ring > 0 ? static_cast<size_t>(ring) : 0) + kSmall;
}

void clear(AccountEntry& e) {
  e.markers.store(0, std::memory_order_relaxed);
  e.measure.store(0, std::memory_order_relaxed);
  e.rate.store(0, std::memory_order_relaxed);
  e.tat_ns.store(0, std::memory_order_relaxed);
}

void fill(AccountEntry& e, uint64_t markers, const AccountRow& row) {
  e.markers.store(markers, std::memory_order_relaxed);
  e.measure.store(pack_measure(row.state, row.until_s), std::memory_order_relaxed);
  e.rate.store(pack_rate(row.rate), std::memory_order_relaxed);
}

}  // namespace

// The low-level SHA-256 calls (deprecated in OpenSSL 3) neither allocate nor lock; the one-shot
// SHA256() goes through EVP, which does both, and this runs on a worker at each CONNECT.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
AccountKey account_key(std::string_view account) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, account.data(), account.size());
  SHA256_Final(md, &ctx);
  AccountKey k;
  std::memcpy(k.b, md, sizeof k.b);
  return k;
}
#pragma GCC diagnostic pop

Result<std::unique_ptr<AccountTable>> AccountTable::create(uint32_t capacity, rte_rcu_qsbr* qsv,
                                                           const imf::policy::EscalationPolicy& policy) {
  if (capacity == 0 || capacity > kMaxCapacity)
    return make_error("account capacity " + std::to_string(capacity) + ": must be 1-" + std::to_string(kMaxCapacity));
  std::unique_ptr<AccountTable> t(new AccountTable(capacity, qsv, policy));
  if (auto st = t->build(t->gens_[0]); !st) return make_error(st.error());
  return t;
}

AccountTable::~AccountTable() {
  destroy(gens_[0]);
  destroy(gens_[1]);
}

Status AccountTable::build(Gen& g) {
  static std::atomic<uint32_t> serial{0};
  // Cuckoo hashing wants headroom; rte_hash names must be unique while both generations exist.
  uint32_t slots = capacity_ + capacity_ / 4 + 8;
  std::string name = "imf_acct" + std::to_string(serial.fetch_add(1));
  rte_hash_parameters p{};
  p.name = name.c_str();
  p.entries = slots;
  p.key_len = sizeof(AccountKey);
  p.hash_func = key_hash;
  p.socket_id = SOCKET_ID_ANY;
  // Lock-free readers; with no internal RCU, deleted slots are not freed until we say so
  // (free_key_with_position after our own grace period, once the epoch has moved).
  p.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
  g.hash = rte_hash_create(&p);
  if (!g.hash)
    return make_error("accounts: cannot create a hash of " + std::to_string(slots) + " slots (" +
                      std::to_string(hash_bytes(slots) >> 20) + " MiB): " + rte_strerror(rte_errno));
  size_t bytes = size_t{slots} * sizeof(AccountEntry);
  g.entries = static_cast<AccountEntry*>(rte_malloc_socket("imf_accounts", bytes, RTE_CACHE_LINE_SIZE, SOCKET_ID_ANY));
  if (!g.entries) {
    rte_hash_free(g.hash);
    g.hash = nullptr;
    return make_error("accounts: out of memory for " + std::to_string(slots) + " entries (" +
                      std::to_string(bytes >> 20) + " MiB)");
  }
  for (uint32_t i = 0; i < slots; ++i) new (&g.entries[i]) AccountEntry{};
  g.slots = slots;
  return Ok{};
}

void AccountTable::destroy(Gen& g) {
  rte_hash_free(g.hash);
  rte_free(g.entries);  // AccountEntry is trivially destructible
  g = Gen{};
}

int32_t AccountTable::lookup(const AccountKey& k) const {
  uint32_t c = cur_.load(std::memory_order_acquire);
  int32_t pos = rte_hash_lookup(gens_[c].hash, k.b);
  return pos < 0 ? -1 : pos | static_cast<int32_t>(c << kGenShift);
}

Result<int32_t> AccountTable::insert(const AccountKey& k) {
  if (size() >= capacity_) return make_error("account table is full (" + std::to_string(capacity_) + " accounts)");
  int32_t pos = rte_hash_add_key(gens_[cur_.load(std::memory_order_relaxed)].hash, k.b);
  if (pos < 0) return make_error("account table: no room for the key (hash buckets full)");
  size_.fetch_add(1, std::memory_order_relaxed);
  return pos;
}

Status AccountTable::set(const AccountRow& row) {
  if (auto st = imf::policy::check_account_name(row.account); !st) return make_error(st.error());
  auto mask = markers_.mask_of(row.markers);
  if (!mask) return make_error(mask.error());
  AccountKey k = account_key(row.account);
  std::lock_guard lock(mu_);
  uint32_t c = cur_.load(std::memory_order_relaxed);
  int32_t pos = rte_hash_lookup(gens_[c].hash, k.b);
  bool fresh = pos < 0;
  if (fresh) {
    auto added = insert(k);
    if (!added) return make_error(added.error());
    pos = added.value();
  }
  fill(gens_[c].entries[pos], mask.value(), row);
  // A worker that cached "absent" looks up again; one that sees the new epoch sees the fields.
  if (fresh) epoch_.fetch_add(1, std::memory_order_release);
  return Ok{};
}

bool AccountTable::del(std::string_view account) {
  AccountKey k = account_key(account);
  std::lock_guard lock(mu_);
  const Gen& g = gens_[cur_.load(std::memory_order_relaxed)];
  int32_t pos = rte_hash_del_key(g.hash, k.b);
  if (pos < 0) return false;
  size_.fetch_sub(1, std::memory_order_relaxed);
  // After the key left the buckets, before the slot can be reused: a worker that sees the new
  // epoch (acquire) no longer finds the key; one that cached the position re-looks it up at its
  // next use, and the grace period below covers any use in progress.
  epoch_.fetch_add(1, std::memory_order_release);
  rte_rcu_qsbr_synchronize(qsv_, RTE_QSBR_THRID_INVALID);
  clear(g.entries[pos]);  // the next account given this slot starts from zero
  rte_hash_free_key_with_position(g.hash, pos);
  return true;
}

std::optional<AccountRow> AccountTable::get(std::string_view account) const {
  AccountKey k = account_key(account);
  std::lock_guard lock(mu_);
  const Gen& g = gens_[cur_.load(std::memory_order_relaxed)];
  int32_t pos = rte_hash_lookup(g.hash, k.b);
  if (pos < 0) return std::nullopt;
  const AccountEntry& e = g.entries[pos];
  AccountRow r;
  r.account = account;
  r.markers = markers_.names_of(e.markers.load(std::memory_order_relaxed));
  uint64_t m = e.measure.load(std::memory_order_relaxed);
  r.state = measure_state(m);
  r.until_s = measure_until(m);
  r.rate = unpack_rate(e.rate.load(std::memory_order_relaxed));
  return r;
}

bool AccountTable::set_measure(std::string_view account, uint64_t expected, uint64_t desired) {
  AccountKey k = account_key(account);
  std::lock_guard lock(mu_);
  const Gen& g = gens_[cur_.load(std::memory_order_relaxed)];
  int32_t pos = rte_hash_lookup(g.hash, k.b);
  if (pos < 0) {
    if (measure_state(expected) != AccountState::kNone) return false;
    auto added = insert(k);
    if (!added) return false;
    g.entries[added.value()].measure.store(desired, std::memory_order_relaxed);
    epoch_.fetch_add(1, std::memory_order_release);  // as in set()
    return true;
  }
  // Relaxed: workers CAS the same word (lapses); the word stands alone.
  return g.entries[pos].measure.compare_exchange_strong(expected, desired, std::memory_order_relaxed);
}

Result<uint32_t> AccountTable::load(const std::string& csv_path) {
  std::lock_guard load_lock(load_mu_);
  std::ifstream in(csv_path);
  if (!in) return make_error(csv_path + ": cannot open: " + std::strerror(errno));
  // The unpublished generation is free: the previous load waited out its grace period.
  uint32_t old = cur_.load(std::memory_order_relaxed);
  Gen& g = gens_[old ^ 1];
  if (auto st = build(g); !st) return make_error(st.error());
  // New marker names go to a candidate registry, adopted only if the load succeeds.
  MarkerRegistry candidate(markers_.names());
  auto fail = [&](uint64_t line, const std::string& what) -> Error {
    destroy(g);
    return make_error(csv_path + ":" + std::to_string(line) + ": " + what);
  };
  uint32_t rows = 0;
  std::string line;
  for (uint64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line == "\r") continue;
    auto row = imf::policy::parse_account_row(line);
    if (!row) return fail(n, row.error());
    auto mask = candidate.mask_of(row->markers);
    if (!mask) return fail(n, mask.error());
    AccountKey k = account_key(row->account);
    if (rte_hash_lookup(g.hash, k.b) >= 0) return fail(n, "account '" + row->account + "' is on an earlier line too");
    if (rows == capacity_)
      return fail(n, "more than the table's capacity of " + std::to_string(capacity_) + " accounts");
    int32_t pos = rte_hash_add_key(g.hash, k.b);
    if (pos < 0) return fail(n, "no room for the key (hash buckets full)");
    fill(g.entries[pos], mask.value(), row.value());
    // A reload must not refill a restricted account's bucket: carry its state over. Messages
    // judged between this copy and the swap below are not charged (a load takes seconds at most).
    if (row->state == imf::policy::AccountState::kRestricted && gens_[old].hash) {
      if (int32_t live = rte_hash_lookup(gens_[old].hash, k.b); live >= 0)
        g.entries[pos].tat_ns.store(gens_[old].entries[live].tat_ns.load(std::memory_order_relaxed),
                                    std::memory_order_relaxed);
    }
    ++rows;
  }
  if (in.bad()) {
    destroy(g);
    return make_error(csv_path + ": read error: " + std::strerror(errno));
  }
  {
    std::lock_guard lock(mu_);
    if (!markers_.adopt(candidate.names())) {
      destroy(g);
      return make_error(csv_path + ": marker names were added while it loaded; load it again");
    }
    // Publish, then bump the epoch (so a worker that sees the new epoch looks up in the new table).
    cur_.store(old ^ 1, std::memory_order_release);
    size_.store(rows, std::memory_order_relaxed);
    epoch_.fetch_add(1, std::memory_order_release);
  }
  rte_rcu_qsbr_synchronize(qsv_, RTE_QSBR_THRID_INVALID);
  destroy(gens_[old]);
  return rows;
}

size_t AccountTable::memory_bytes() const {
  std::lock_guard lock(mu_);
  const Gen& g = gens_[cur_.load(std::memory_order_relaxed)];
  return hash_bytes(g.slots) + size_t{g.slots} * sizeof(AccountEntry);
}

}  // namespace imf::dp::policy
