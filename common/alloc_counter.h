// Counts heap allocations made through malloc and friends (operator new included), for the benchmarks'
// "allocations per steady-state step" figure. The counting definitions are linked into the convoy
// binary only; elsewhere allocation_count() stays 0 and counting_enabled() is false.
#pragma once

#include <cstdint>

namespace convoy {

uint64_t allocation_count();
bool counting_enabled();

}  // namespace convoy
