// mixup's weight: lambda ~ Beta(alpha, alpha), one per global step, a pure function of (seed, step), so
// every rank mixes with the same lambda without communicating. Beta from two Gamma(alpha) draws
// (Marsaglia and Tsang, with Johnk's boost for alpha < 1) over convoy's own generator: the standard
// library's distributions differ between implementations.
#pragma once

#include <cstdint>

namespace convoy::trainer {

double mixup_lambda(uint64_t seed, int64_t step, double alpha);

}  // namespace convoy::trainer
