// A fixed PRNG and the few distributions imf-synth needs, written out so that the same seed gives
// byte-identical output with any standard library (std:: distributions are implementation-defined).
#pragma once

#include <cmath>
#include <cstdint>

namespace imf::bench::synth {

// SplitMix64 finalizer: a stateless 64-bit mix, for per-flow values derived from (seed, index).
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// xoshiro256** seeded through SplitMix64. Not thread-safe; one per generator.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& w : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      w = mix64(seed);
    }
  }

  uint64_t next() {
    uint64_t r = rotl(s_[1] * 5, 7) * 9;
    uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }

  // Uniform in [0, n); n > 0. Multiply-high (Lemire) without the rejection step: the bias is below
  // n / 2^64, far under anything a benchmark can see.
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64); }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  bool chance(double p) { return uniform() < p; }

  // Standard normal deviate (Box-Muller; the second value is dropped to keep the state simple).
  double normal() {
    double u1 = 1.0 - uniform();  // (0, 1]: log() stays finite
    double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace imf::bench::synth
