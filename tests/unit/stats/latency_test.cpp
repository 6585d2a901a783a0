#include "stats/latency.h"

#include <gtest/gtest.h>

namespace imf::dp {
namespace {

TEST(LatencyHistogram, EveryValueLandsInABucketWhoseEdgesHoldIt) {
  for (uint64_t v : {0ull, 1ull, 7ull, 8ull, 9ull, 15ull, 16ull, 17ull, 100ull, 1000ull, 123456789ull, ~0ull}) {
    unsigned b = LatencyHistogram::bucket(v);
    ASSERT_LT(b, LatencyHistogram::kBuckets) << v;
    EXPECT_LE(v, LatencyHistogram::upper_edge(b)) << v;
    if (b > 0) {
      EXPECT_GT(v, LatencyHistogram::upper_edge(b - 1)) << v;
    }
  }
}

TEST(LatencyHistogram, BucketsAreAtMostOneEighthWide) {
  for (unsigned b = LatencyHistogram::kSub; b + 1 < LatencyHistogram::kBuckets; ++b) {
    uint64_t lo = LatencyHistogram::upper_edge(b - 1) + 1;
    uint64_t hi = LatencyHistogram::upper_edge(b);
    EXPECT_LE(hi - lo + 1, lo / 8 + 1) << b;
  }
}

TEST(LatencySummary, QuantilesOfMergedLcores) {
  LatencyHistogram a, b;
  a.add(100, 90);   // 90 packets at 100 cycles
  b.add(5000, 9);   // 9 at 5000
  b.add(70000, 1);  // 1 at 70000
  LatencySummary s;
  s.merge(a);
  s.merge(b);
  EXPECT_EQ(s.samples, 100u);
  EXPECT_EQ(s.quantile(0.5), LatencyHistogram::upper_edge(LatencyHistogram::bucket(100)));
  EXPECT_EQ(s.quantile(0.9), LatencyHistogram::upper_edge(LatencyHistogram::bucket(100)));
  EXPECT_EQ(s.quantile(0.99), LatencyHistogram::upper_edge(LatencyHistogram::bucket(5000)));
  EXPECT_EQ(s.quantile(1.0), LatencyHistogram::upper_edge(LatencyHistogram::bucket(70000)));
  EXPECT_EQ(LatencySummary{}.quantile(0.5), 0u);
}

}  // namespace
}  // namespace imf::dp
