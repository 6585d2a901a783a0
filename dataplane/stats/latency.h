// Per-lcore latency histogram: TSC cycles from a packet's RX burst to the TX burst that sent it.
#pragma once

#include <array>
#include <cstdint>

namespace imf::dp {

// Log-linear buckets: exact below 8 cycles, then 8 buckets per power of two (at most 12.5% wide),
// so recording is a count-leading-zeros and an add. Written by the owning lcore only; read by any
// thread with relaxed loads, like Counters.
struct alignas(64) LatencyHistogram {
  static constexpr unsigned kSubBits = 3;
  static constexpr unsigned kSub = 1u << kSubBits;
  static constexpr unsigned kBuckets = (64 - kSubBits + 1) * kSub;

  std::array<uint64_t, kBuckets> counts{};

  static unsigned bucket(uint64_t cycles) {
    if (cycles < kSub) return static_cast<unsigned>(cycles);
    unsigned msb = 63u - static_cast<unsigned>(__builtin_clzll(cycles));
    unsigned shift = msb - kSubBits;
    return (shift + 1) * kSub + static_cast<unsigned>((cycles >> shift) & (kSub - 1));
  }

  // Largest cycle count that lands in bucket b (percentiles are reported as this upper edge).
  static uint64_t upper_edge(unsigned b) {
    if (b < kSub) return b;
    unsigned shift = b / kSub - 1;
    uint64_t lower = (uint64_t{kSub} + b % kSub) << shift;
    return lower + ((uint64_t{1} << shift) - 1);
  }

  void add(uint64_t cycles, uint64_t n) {
    uint64_t& slot = counts[bucket(cycles)];
    __atomic_store_n(&slot, slot + n, __ATOMIC_RELAXED);
  }
  uint64_t get(unsigned b) const { return __atomic_load_n(&counts[b], __ATOMIC_RELAXED); }
};

// Sum of several lcores' histograms, with percentiles in cycles.
struct LatencySummary {
  std::array<uint64_t, LatencyHistogram::kBuckets> counts{};
  uint64_t samples = 0;

  void merge(const LatencyHistogram& h) {
    for (unsigned b = 0; b < LatencyHistogram::kBuckets; ++b) {
      uint64_t n = h.get(b);
      counts[b] += n;
      samples += n;
    }
  }

  // Upper edge of the bucket holding quantile q (0 < q <= 1); 0 when empty.
  uint64_t quantile(double q) const {
    if (samples == 0) return 0;
    auto rank = static_cast<uint64_t>(q * static_cast<double>(samples));
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < LatencyHistogram::kBuckets; ++b) {
      seen += counts[b];
      if (seen >= rank) return LatencyHistogram::upper_edge(b);
    }
    return LatencyHistogram::upper_edge(LatencyHistogram::kBuckets - 1);
  }
};

}  // namespace imf::dp
