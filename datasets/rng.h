// Counter-based random streams. A stream is a pure function of (seed, epoch, index), so every sample's
// augmentation is the same whichever thread draws it, and every rank computes the same permutation.
// The distributions are written out here (not <random>'s, whose algorithms differ between standard
// libraries) so that the same seed gives the same batch on every platform.
#pragma once

#include <cmath>
#include <cstdint>

namespace convoy::datasets {

// SplitMix64's finalizer: a bijective 64-bit mix.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Domain tags keep the sampler's permutation streams and the per-sample augmentation streams apart.
enum class Stream : uint64_t { permutation = 0x5045524dull, shard_order = 0x53484f52ull, sample = 0x53414d50ull };

// xoshiro256**: small state, fast, good statistics.
class Rng {
 public:
  Rng(uint64_t seed, Stream stream, uint64_t epoch, uint64_t index) {
    uint64_t s = mix64(seed ^ mix64(static_cast<uint64_t>(stream)));
    s = mix64(s ^ mix64(epoch + 0x1234567ull));
    s = mix64(s ^ mix64(index + 0x89abcdefull));
    for (uint64_t& w : s_) {
      s += 0x9e3779b97f4a7c15ull;
      w = mix64(s);
    }
  }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

  // Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject). n > 0.
  uint64_t below(uint64_t n) {
    __uint128_t m = static_cast<__uint128_t>(next()) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<__uint128_t>(next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

  // Uniform integer in [lo, hi] (inclusive), lo <= hi.
  int64_t between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
  }

  // Standard normal (Box-Muller; one value per call, the second is dropped to keep the stream simple).
  double normal() {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace convoy::datasets
