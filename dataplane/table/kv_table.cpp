#include "table/kv_table.h"

#include <rte_errno.h>
#include <rte_jhash.h>
#include <rte_malloc.h>

#include <cstring>
#include <fstream>

namespace imf::dp::table {

namespace {

// Keys are compared as fixed kMaxKey-byte blocks, zero padded.
struct KeyBuf {
  uint8_t b[kMaxKey] = {};
  explicit KeyBuf(std::string_view k) { std::memcpy(b, k.data(), k.size() < kMaxKey ? k.size() : kMaxKey); }
};

Value* make_value(std::string_view v) {
  auto* p = static_cast<Value*>(rte_malloc("imf_table_value", sizeof(Value) + v.size(), 0));
  if (!p) return nullptr;
  p->len = static_cast<uint16_t>(v.size());
  std::memcpy(p->data, v.data(), v.size());
  return p;
}

// Poisoned before it is freed: a reader that wrongly outlived its grace period reads a length
// no value has, rather than plausible stale bytes.
void release_value(void* data) {
  static_cast<Value*>(data)->len = 0xdead;
  rte_free(data);
}

// Called by rte_hash once no reader can still see a deleted key's data.
void free_value(void*, void* data) { release_value(data); }

Status check_sizes(std::string_view key, std::string_view value) {
  if (key.empty() || key.size() > kMaxKey)
    return make_error("key of " + std::to_string(key.size()) + " bytes: keys are 1-" + std::to_string(kMaxKey));
  if (value.size() > kMaxValue)
    return make_error("value of " + std::to_string(value.size()) + " bytes: at most " + std::to_string(kMaxValue));
  return Ok{};
}

}  // namespace

Result<std::unique_ptr<KvTable>> KvTable::create(const std::string& name, uint32_t capacity, rte_rcu_qsbr* qsv) {
  static std::atomic<uint32_t> serial{0};
  // rte_hash names must be unique while both exist (a load builds the new table beside the old).
  std::string hname = "imf_t" + std::to_string(serial.fetch_add(1));
  rte_hash_parameters p{};
  p.name = hname.c_str();
  p.entries = capacity + capacity / 4 + 8;  // cuckoo hashing wants headroom
  p.key_len = kMaxKey;
  p.hash_func = rte_jhash;
  p.socket_id = SOCKET_ID_ANY;
  p.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
  rte_hash* h = rte_hash_create(&p);
  if (!h)
    return make_error("table '" + name + "': cannot create a hash of " + std::to_string(capacity) +
                      " rows: " + rte_strerror(rte_errno));
  rte_hash_rcu_config rcu{};
  rcu.v = qsv;
  rcu.mode = RTE_HASH_QSBR_MODE_SYNC;  // a delete waits one grace period, then frees
  rcu.free_key_data_func = free_value;
  if (rte_hash_rcu_qsbr_add(h, &rcu) != 0) {
    rte_hash_free(h);
    return make_error("table '" + name + "': cannot attach RCU: " + rte_strerror(rte_errno));
  }
  return std::unique_ptr<KvTable>(new KvTable(name, capacity, h, qsv));
}

KvTable::~KvTable() {
  // No reader left (the owner waited a grace period): free every value, then the hash.
  const void* key;
  void* data;
  uint32_t next = 0;
  while (rte_hash_iterate(h_, &key, &data, &next) >= 0) rte_free(data);
  rte_hash_free(h_);
}

const Value* KvTable::lookup(std::string_view key) const {
  if (key.empty() || key.size() > kMaxKey) return nullptr;
  KeyBuf k(key);
  void* data = nullptr;
  return rte_hash_lookup_data(h_, k.b, &data) >= 0 ? static_cast<const Value*>(data) : nullptr;
}

Status KvTable::set(std::string_view key, std::string_view value) {
  if (auto st = check_sizes(key, value); !st) return make_error("table '" + name_ + "': " + st.error());
  KeyBuf k(key);
  void* old = nullptr;
  bool existed = rte_hash_lookup_data(h_, k.b, &old) >= 0;
  if (!existed && size_ >= capacity_)
    return make_error("table '" + name_ + "' is full (" + std::to_string(capacity_) + " rows; see --table-capacity)");
  Value* v = make_value(value);
  if (!v) return make_error("table '" + name_ + "': out of memory for a value");
  // Publishing the new data pointer is atomic for readers; the old value may still be in use.
  if (rte_hash_add_key_data(h_, k.b, v) != 0) {
    rte_free(v);
    return make_error("table '" + name_ + "': no room for key (hash buckets full)");
  }
  if (existed) {
    rte_rcu_qsbr_synchronize(qsv_, RTE_QSBR_THRID_INVALID);
    release_value(old);
  } else {
    ++size_;
  }
  return Ok{};
}

bool KvTable::del(std::string_view key) {
  if (key.empty() || key.size() > kMaxKey) return false;
  KeyBuf k(key);
  if (rte_hash_del_key(h_, k.b) < 0) return false;  // SYNC mode: frees after a grace period
  --size_;
  return true;
}

Result<std::vector<std::pair<std::string, std::string>>> read_snapshot(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(path + ": cannot open: " + std::strerror(errno));
  std::vector<std::pair<std::string, std::string>> rows;
  std::string line;
  for (uint64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    size_t comma = line.find(',');
    if (comma == std::string::npos)
      return make_error(path + ":" + std::to_string(n) + ": no ',' between key and value");
    std::string key = line.substr(0, comma);
    std::string value = line.substr(comma + 1);
    if (auto st = check_sizes(key, value); !st) return make_error(path + ":" + std::to_string(n) + ": " + st.error());
    rows.emplace_back(std::move(key), std::move(value));
  }
  return rows;
}

TableSet::~TableSet() {
  for (auto& t : tables_) delete t.load();
}

const KvTable* TableSet::find(std::string_view table) const {
  for (const auto& t : tables_) {
    const KvTable* p = t.load(std::memory_order_acquire);
    if (p && p->name() == table) return p;
  }
  return nullptr;
}

Result<KvTable*> TableSet::get_or_create(const std::string& table) {
  for (auto& t : tables_) {
    KvTable* p = t.load(std::memory_order_relaxed);
    if (p && p->name() == table) return p;
  }
  if (count_ == kMaxTables) return make_error("too many tables (at most " + std::to_string(kMaxTables) + ")");
  auto t = KvTable::create(table, capacity_, qsv_);
  if (!t) return make_error(t.error());
  KvTable* p = t.value().release();
  tables_[count_++].store(p, std::memory_order_release);
  return p;
}

Status TableSet::set(const std::string& table, std::string_view key, std::string_view value) {
  auto t = get_or_create(table);
  if (!t) return make_error(t.error());
  return t.value()->set(key, value);
}

Result<bool> TableSet::del(const std::string& table, std::string_view key) {
  for (auto& t : tables_) {
    KvTable* p = t.load(std::memory_order_relaxed);
    if (p && p->name() == table) return p->del(key);
  }
  return make_error("no table '" + table + "'");
}

Result<uint32_t> TableSet::load(const std::string& table, const std::string& snapshot_path) {
  auto rows = read_snapshot(snapshot_path);
  if (!rows) return make_error(rows.error());
  if (rows->size() > capacity_)
    return make_error(snapshot_path + ": " + std::to_string(rows->size()) + " rows, more than --table-capacity " +
                      std::to_string(capacity_));
  auto fresh = KvTable::create(table, capacity_, qsv_);
  if (!fresh) return make_error(fresh.error());
  for (const auto& [k, v] : rows.value()) {
    if (auto st = fresh.value()->set(k, v); !st) return make_error(snapshot_path + ": " + st.error());
  }
  uint32_t n = fresh.value()->size();
  // Publish the new table in place of the old one (or in a free slot), then free the old one
  // once no worker can still be inside it.
  KvTable* next = fresh.value().release();
  for (auto& t : tables_) {
    KvTable* p = t.load(std::memory_order_relaxed);
    if (p && p->name() == table) {
      t.store(next, std::memory_order_release);
      rte_rcu_qsbr_synchronize(qsv_, RTE_QSBR_THRID_INVALID);
      delete p;
      return n;
    }
  }
  if (count_ == kMaxTables) {
    delete next;
    return make_error("too many tables (at most " + std::to_string(kMaxTables) + ")");
  }
  tables_[count_++].store(next, std::memory_order_release);
  return n;
}

std::vector<std::pair<std::string, uint32_t>> TableSet::sizes() const {
  std::vector<std::pair<std::string, uint32_t>> out;
  for (const auto& t : tables_) {
    if (const KvTable* p = t.load(std::memory_order_acquire)) out.emplace_back(p->name(), p->size());
  }
  return out;
}

}  // namespace imf::dp::table
