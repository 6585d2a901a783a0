// AccountIndex: the account store's in-memory map, account name -> a 24-byte value, built for
// 10 million rows and more. A std::unordered_map costs ~120 bytes and five or six cache misses
// per row at that size (10M-row bulk load: ~11 s in lookups alone; restart replay: ~30 s); this
// costs ~70 bytes and about three misses:
//
//   slots_  open addressing, linear probing, power-of-two size, at most 70% full: each slot holds
//           a 32-bit hash and the row's index + 1 (0 = empty). Erase shifts later slots back, so
//           there are no tombstones.
//   rows_   the rows: key position in the arena + length, and the value; freed rows are reused.
//   arena   the key bytes, in 4 MiB chunks (never moved, so growing copies nothing). An erased
//           key's bytes stay until compact_keys() rebuilds the arena.
//
// Not thread-safe: the owner (AccountStore) locks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace imf::control {

template <typename Value>
class AccountIndex {
  static_assert(std::is_trivially_copyable_v<Value>);

 public:
  size_t size() const { return size_; }

  Value* find(std::string_view key) {
    size_t i = locate(key, hash32(key));
    return slots_.empty() || slots_[i] == 0 ? nullptr : &rows_[row_of(slots_[i])].value;
  }
  const Value* find(std::string_view key) const { return const_cast<AccountIndex*>(this)->find(key); }

  // The row of `key`, inserted with `value` when absent: {its value, whether inserted}. The
  // pointer is valid until the next insertion.
  std::pair<Value*, bool> try_emplace(std::string_view key, const Value& value) {
    if ((size_ + 1) * 10 > slots_.size() * 7) grow(slots_.empty() ? 16 : slots_.size() * 2);
    uint32_t h = hash32(key);
    size_t i = locate(key, h);
    if (slots_[i] != 0) return {&rows_[row_of(slots_[i])].value, false};
    uint32_t r;
    if (!free_rows_.empty()) {
      r = free_rows_.back();
      free_rows_.pop_back();
    } else {
      r = static_cast<uint32_t>(rows_.size());
      rows_.emplace_back();
    }
    rows_[r].key = store_key(key);
    rows_[r].value = value;
    slots_[i] = (static_cast<uint64_t>(h) << 32) | (static_cast<uint64_t>(r) + 1);
    ++size_;
    return {&rows_[r].value, true};
  }

  bool erase(std::string_view key) {
    if (slots_.empty()) return false;
    size_t i = locate(key, hash32(key));
    if (slots_[i] == 0) return false;
    uint32_t r = row_of(slots_[i]);
    garbage_bytes_ += key_len(rows_[r].key);
    rows_[r].key = 0;  // length 0: free
    free_rows_.push_back(r);
    --size_;
    // Backward-shift deletion: move later entries of the probe run into the hole when their home
    // slot is not after it, so lookups never meet a gap inside a run.
    size_t mask = slots_.size() - 1;
    size_t hole = i;
    for (size_t j = (i + 1) & mask; slots_[j] != 0; j = (j + 1) & mask) {
      size_t home = (slots_[j] >> 32) & mask;
      bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
      if (movable) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = 0;
    return true;
  }

  // Room for `n` rows without growing.
  void reserve(size_t n) {
    size_t want = 16;
    while (want * 7 < n * 10) want *= 2;
    if (want > slots_.size()) grow(want);
    rows_.reserve(n);
  }

  // fn(key, value) for every row, in row order (insertion order until rows are reused).
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (const Row& row : rows_) {
      if (key_len(row.key) != 0) fn(key_view(row.key), row.value);
    }
  }

  void clear() { *this = AccountIndex(); }
  void swap(AccountIndex& o) noexcept {
    std::swap(slots_, o.slots_);
    std::swap(rows_, o.rows_);
    std::swap(free_rows_, o.free_rows_);
    std::swap(chunks_, o.chunks_);
    std::swap(chunk_used_, o.chunk_used_);
    std::swap(size_, o.size_);
    std::swap(garbage_bytes_, o.garbage_bytes_);
  }

  // Bytes held (allocated capacity of the tables and chunks).
  size_t memory_bytes() const {
    return slots_.capacity() * sizeof(uint64_t) + rows_.capacity() * sizeof(Row) +
           free_rows_.capacity() * sizeof(uint32_t) + chunks_.size() * kChunk;
  }
  size_t garbage_bytes() const { return garbage_bytes_; }

  // Rebuilds the arena without the bytes of erased keys (and the rows without holes).
  void compact_keys() {
    AccountIndex fresh;
    fresh.reserve(size_);
    for_each([&](std::string_view k, const Value& v) { fresh.try_emplace(k, v); });
    swap(fresh);
  }

 private:
  static constexpr size_t kChunk = 4u << 20;
  static constexpr int kLenBits = 8;  // keys are at most 255 bytes (accounts: 96)

  struct Row {
    uint64_t key = 0;  // arena position << 8 | length; length 0: a free row
    Value value{};
  };

  static uint32_t hash32(std::string_view key) {
    uint64_t h = std::hash<std::string_view>{}(key);
    return static_cast<uint32_t>(h ^ (h >> 32));
  }
  static uint32_t row_of(uint64_t slot) { return static_cast<uint32_t>(slot) - 1; }
  static size_t key_len(uint64_t k) { return k & ((1u << kLenBits) - 1); }
  std::string_view key_view(uint64_t k) const {
    uint64_t pos = k >> kLenBits;
    return {chunks_[pos / kChunk].get() + pos % kChunk, key_len(k)};
  }

  uint64_t store_key(std::string_view key) {
    if (chunks_.empty() || chunk_used_ + key.size() > kChunk) {
      chunks_.push_back(std::unique_ptr<char[]>(new char[kChunk]));  // not zeroed: pages are touched as keys fill them
      chunk_used_ = 0;
    }
    uint64_t pos = (chunks_.size() - 1) * kChunk + chunk_used_;
    std::copy(key.begin(), key.end(), chunks_.back().get() + chunk_used_);
    chunk_used_ += key.size();
    return pos << kLenBits | key.size();
  }

  // The slot holding `key`, or the empty slot where it would go. slots_ must not be empty unless
  // the caller only tests the result against an empty table.
  size_t locate(std::string_view key, uint32_t h) const {
    if (slots_.empty()) return 0;
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      uint64_t s = slots_[i];
      if (s == 0) return i;
      if (static_cast<uint32_t>(s >> 32) == h && key_view(rows_[row_of(s)].key) == key) return i;
    }
  }

  void grow(size_t capacity) {
    std::vector<uint64_t> old;
    old.swap(slots_);
    slots_.assign(capacity, 0);
    size_t mask = capacity - 1;
    for (uint64_t s : old) {
      if (s == 0) continue;
      size_t i = (s >> 32) & mask;
      while (slots_[i] != 0) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }

  std::vector<uint64_t> slots_;
  std::vector<Row> rows_;
  std::vector<uint32_t> free_rows_;
  std::vector<std::unique_ptr<char[]>> chunks_;
  size_t chunk_used_ = 0;
  size_t size_ = 0;
  size_t garbage_bytes_ = 0;
};

}  // namespace imf::control
