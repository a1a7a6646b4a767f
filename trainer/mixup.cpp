#include "trainer/mixup.h"

#include <cmath>

#include "common/error.h"

namespace convoy::trainer {
namespace {

// splitmix64: a counter-based stream of 64-bit values.
struct Stream {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }  // in (0, 1)
  double normal() { return std::sqrt(-2.0 * std::log(uniform())) * std::cos(2.0 * M_PI * uniform()); }
};

double gamma(Stream& s, double a) {
  if (a < 1.0) return gamma(s, a + 1.0) * std::pow(s.uniform(), 1.0 / a);
  const double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = s.normal();
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = s.uniform();
    if (u < 1.0 - 0.0331 * x * x * x * x || std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}

}  // namespace

double mixup_lambda(uint64_t seed, int64_t step, double alpha) {
  CONVOY_CHECK(alpha > 0, "mixup's alpha must be positive, got " << alpha);
  Stream s{seed * 0x2545f4914f6cdd1dull ^ (static_cast<uint64_t>(step) + 0x6a09e667f3bcc909ull)};
  const double x = gamma(s, alpha), y = gamma(s, alpha);
  return x + y > 0 ? x / (x + y) : 0.5;
}

}  // namespace convoy::trainer
