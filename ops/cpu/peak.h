// What this machine's cores can do at most, measured and on paper: fp32 FMA throughput (and bf16 dot
// products where the ISA has them), memory bandwidth, and the clock. `convoy bench peak` prints it, and
// `convoy bench train --profile` measures it in the same run to give each layer's share of it.
//
// The theoretical peak is cores x FMA units x vector lanes x 2 flops x clock. The clock is measured
// (a chain of dependent integer adds retires one per cycle on every x86 core since the Pentium Pro),
// because a VM reports no frequency; the FMA units per core are not in CPUID, so they come from a table
// of known cores (DESIGN: say where a figure comes from), overridable for a core the table lacks.
#pragma once

#include <string>

namespace convoy::ops::cpu {

struct PeakOptions {
  int threads = 1;
  double seconds = 0.25;  // per timed repeat of each loop
  int repeats = 3;        // the best repeat counts (a peak is a maximum)
  int fma_units = 0;      // per core at the loop's vector width; 0: from the table
  double ghz = 0;         // 0: measured
  size_t stream_bytes = size_t{64} << 20;  // per array of the bandwidth loops (far above any L3 here)
};

struct FmaPeak {
  bool available = false;
  std::string why_not;  // when not available: what the processor lacks
  std::string loop;     // "avx2 fma 256-bit x 12 chains", ...
  int lanes = 0;        // fp32 lanes of one vector
  double flops_per_instruction = 0;
  double measured_gflops = 0, theoretical_gflops = 0;
  double share() const { return theoretical_gflops > 0 ? measured_gflops / theoretical_gflops : 0; }
};

struct MachinePeak {
  std::string cpu;           // CPUID's brand string
  std::string core;          // the table's name for it ("AMD Zen 3", ...) or "unknown"
  int threads = 0;
  double ghz = 0;            // the clock the theoretical peak uses
  bool ghz_measured = true;  // false when given
  int fma_units = 0;
  std::string fma_units_from;  // "table: AMD Zen 3" or "--fma-units"
  FmaPeak fp32, bf16;
  double triad_gbs = 0;  // a[i] = b[i] + s * c[i]: 12 bytes an element (STREAM's count)
  double read_gbs = 0;   // a sum over one array
};

// Runs the loops on `threads` OpenMP threads at once (the threads the kernels use), a second or two.
MachinePeak measure_peak(const PeakOptions& options);

}  // namespace convoy::ops::cpu
