// The measuring loops of ops/cpu/peak.h. Each FMA loop keeps enough independent chains in registers to
// cover the FMA latency on every unit (latency 4-5 cycles x 2 units needs 8-10; the loops use 12 and 24),
// with values that stay near 1 (a = a * m + c with fixed point 1), so no denormal slows them.
#include "ops/cpu/peak.h"

#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "common/error.h"
#include "common/timer.h"

namespace convoy::ops::cpu {
namespace {

volatile float g_sink = 0;  // keeps the loops' results alive

// A dependent chain of register-to-register adds: one a cycle (an add with an immediate may be folded at
// rename on recent Intel cores; a register operand may not).
uint64_t add_chain(uint64_t chunks) {
  uint64_t x = 0, one = 1;
  for (uint64_t i = 0; i < chunks; ++i)
    asm volatile(".rept 100\n\taddq %1, %0\n\t.endr" : "+r"(x) : "r"(one));
  return x;
}
constexpr double kAddsPerChunk = 100;

__attribute__((target("avx2,fma"))) float fma_avx2(uint64_t chunks) {
  const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  __m256 a[12];
  for (auto& v : a) v = _mm256_set1_ps(1.f);
  for (uint64_t i = 0; i < chunks; ++i)
    for (int r = 0; r < 16; ++r)
#pragma GCC unroll 12
      for (auto& v : a) v = _mm256_fmadd_ps(v, m, c);
  __m256 s = a[0];
  for (int k = 1; k < 12; ++k) s = _mm256_add_ps(s, a[k]);
  return _mm256_cvtss_f32(s);
}
constexpr double kFmaAvx2PerChunk = 16 * 12;

// (GCC 12's _mm512_reduce_add_ps warns about its own uninitialised temporaries.)
__attribute__((target("avx512f"))) float sum16(__m512 v) {
  alignas(64) float f[16];
  _mm512_store_ps(f, v);
  float s = 0;
  for (float x : f) s += x;
  return s;
}

// Every chain must reach the result: the compiler drops a chain nothing reads, and a loop that counts
// 24 chains but runs 2 is latency-bound at 2 a step, which the count turns into 3x the peak.
__attribute__((target("avx512f"))) float sum_all(const __m512 (&a)[24]) {
  __m512 s = a[0];
  for (int k = 1; k < 24; ++k) s = _mm512_add_ps(s, a[k]);
  return sum16(s);
}

__attribute__((target("avx512f"))) float fma_avx512(uint64_t chunks) {
  const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
  __m512 a[24];
  for (auto& v : a) v = _mm512_set1_ps(1.f);
  for (uint64_t i = 0; i < chunks; ++i)
    for (int r = 0; r < 8; ++r)
#pragma GCC unroll 24
      for (auto& v : a) v = _mm512_fmadd_ps(v, m, c);
  return sum_all(a);
}
constexpr double kFmaAvx512PerChunk = 8 * 24;

// vdpbf16ps: 16 fp32 lanes, each adding two bf16 products. Accumulators grow by 2e-4 per instruction.
__attribute__((target("avx512f,avx512bf16"))) float dot_bf16(uint64_t chunks) {
  const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.01f), _mm512_set1_ps(0.01f));
  __m512 a[24];
  for (auto& v : a) v = _mm512_setzero_ps();
  for (uint64_t i = 0; i < chunks; ++i)
    for (int r = 0; r < 8; ++r)
#pragma GCC unroll 24
      for (auto& v : a) v = _mm512_dpbf16_ps(v, x, x);
  return sum_all(a);
}

// Runs `loop(chunks)` on every thread at once for about `seconds`, `repeats` times; returns the best
// summed rate of chunks per second over the threads.
template <typename Loop>
double chunks_per_second(int threads, double seconds, int repeats, Loop loop) {
  // A probe sizes a call to about 2 ms, so the clock is read rarely.
  uint64_t per_call = 64;
  for (;;) {
    const double t0 = now_seconds();
    g_sink = static_cast<float>(loop(per_call));
    if (now_seconds() - t0 > 2e-3 || per_call > (uint64_t{1} << 40)) break;
    per_call *= 2;
  }
  double best = 0;
  std::vector<double> rate(static_cast<size_t>(threads));
  for (int rep = 0; rep < repeats; ++rep) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
#pragma omp barrier
      uint64_t calls = 0;
      float sink = 0;
      const double t0 = now_seconds();
      double dt = 0;
      do {
        sink += static_cast<float>(loop(per_call));
        ++calls;
        dt = now_seconds() - t0;
      } while (dt < seconds);
      g_sink = sink;
      rate[static_cast<size_t>(t)] = static_cast<double>(calls * per_call) / dt;
    }
    double sum = 0;
    for (double r : rate) sum += r;
    best = std::max(best, sum);
  }
  return best;
}

struct Cpuid {
  std::string vendor, brand;
  unsigned family = 0, model = 0;
};
Cpuid read_cpuid() {
  Cpuid c;
  unsigned a, b, cx, d;
  if (__get_cpuid(0, &a, &b, &cx, &d)) {
    char v[13] = {};
    std::memcpy(v, &b, 4), std::memcpy(v + 4, &d, 4), std::memcpy(v + 8, &cx, 4);
    c.vendor = v;
  }
  if (__get_cpuid(1, &a, &b, &cx, &d)) {
    const unsigned base = (a >> 8) & 0xf, ext = (a >> 20) & 0xff;
    c.family = base == 0xf ? base + ext : base;
    c.model = ((a >> 4) & 0xf) | ((base == 0x6 || base == 0xf) ? ((a >> 12) & 0xf0) : 0);
  }
  char brand[49] = {};
  for (unsigned i = 0; i < 3; ++i)
    if (__get_cpuid(0x80000002 + i, &a, &b, &cx, &d)) {
      std::memcpy(brand + 16 * i, &a, 4), std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &cx, 4), std::memcpy(brand + 16 * i + 12, &d, 4);
    }
  c.brand = brand;
  c.brand.erase(0, c.brand.find_first_not_of(' '));
  c.brand.erase(c.brand.find_last_not_of(' ') + 1);
  return c;
}

// FMA instructions a core retires per cycle at 256 and at 512 bits (0: no such width), by core.
struct CoreTable {
  std::string name;
  int units256 = 2, units512 = 0;
};
CoreTable core_table(const Cpuid& c, bool avx512) {
  if (c.vendor == "AuthenticAMD") {
    if (c.family == 0x17) return c.model < 0x30 ? CoreTable{"AMD Zen 1", 1, 0} : CoreTable{"AMD Zen 2", 2, 0};
    if (c.family == 0x19) {
      const bool zen4 = (c.model >= 0x10 && c.model <= 0x1f) || (c.model >= 0x60 && c.model <= 0xaf);
      // Zen 4 runs a 512-bit FMA as two halves on its two 256-bit units.
      return zen4 ? CoreTable{"AMD Zen 4", 2, 1} : CoreTable{"AMD Zen 3", 2, 0};
    }
    if (c.family == 0x1a) return CoreTable{"AMD Zen 5 (server/desktop: 2 x 512-bit)", 2, 2};
  }
  if (c.vendor == "GenuineIntel" && c.family == 6)
    return avx512 ? CoreTable{"Intel with AVX-512 (2 FMA units assumed; some Xeon Silver/Bronze have 1)", 2, 2}
                  : CoreTable{"Intel with AVX2", 2, 0};
  return CoreTable{"unknown (2 FMA units assumed: give --fma-units)", 2, avx512 ? 2 : 0};
}

}  // namespace

MachinePeak measure_peak(const PeakOptions& o) {
  CONVOY_CHECK(o.threads > 0 && o.seconds > 0 && o.repeats > 0, "the peak measurement needs positive threads, "
                                                               "seconds and repeats");
  CONVOY_CHECK(o.fma_units >= 0 && o.ghz >= 0, "--fma-units and --ghz must not be negative");
  MachinePeak p;
  const Cpuid id = read_cpuid();
  p.cpu = id.brand.empty() ? id.vendor : id.brand;
  p.threads = o.threads;
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
  const CoreTable core = core_table(id, avx512);
  p.core = core.name;

  if (o.ghz > 0) {
    p.ghz = o.ghz, p.ghz_measured = false;
  } else {
    // All threads at once: the clock the loaded cores run at, not one core's boost.
    const double chunks = chunks_per_second(o.threads, o.seconds, o.repeats, add_chain);
    p.ghz = chunks * kAddsPerChunk / o.threads / 1e9;
  }
  const int units = avx512 ? core.units512 : core.units256;
  p.fma_units = o.fma_units > 0 ? o.fma_units : units;
  p.fma_units_from = o.fma_units > 0 ? "--fma-units" : "table: " + core.name;

  // One loop's figures: `per_chunk` instructions of `flops` each per call of `loop`.
  auto measure = [&](const char* name, int lanes, double flops, double per_chunk, auto loop) {
    FmaPeak f{true, "", name, lanes, flops, 0, 0};
    f.measured_gflops = chunks_per_second(o.threads, o.seconds, o.repeats, loop) * per_chunk * flops / 1e9;
    f.theoretical_gflops = o.threads * p.fma_units * flops * p.ghz;
    return f;
  };
  if (avx512)
    p.fp32 = measure("avx512f fma, 512-bit x 24 chains", 16, 32, kFmaAvx512PerChunk, fma_avx512);
  else if (avx2)
    p.fp32 = measure("avx2 fma, 256-bit x 12 chains", 8, 16, kFmaAvx2PerChunk, fma_avx2);
  else
    p.fp32.why_not = "this processor has neither AVX2 with FMA nor AVX-512";
  if (bf16) {
    // One vdpbf16ps a cycle per FMA unit assumed (Zen 4/5, Cooper Lake); AMX tiles are not measured.
    p.bf16 = measure("avx512_bf16 vdpbf16ps, 512-bit x 24 chains", 16, 64, kFmaAvx512PerChunk, dot_bf16);
  } else {
    p.bf16.why_not = avx512 ? "this processor has AVX-512 but not AVX512_BF16"
                            : "this processor has no AVX-512 BF16 (its widest vectors: " +
                                  std::string(avx2 ? "AVX2" : "SSE") + ")";
  }

  // Bandwidth: each thread first-touches and then streams its own static slice.
  const size_t n = std::max<size_t>(o.stream_bytes / sizeof(float), 1024);
  std::unique_ptr<float[]> a(new float[n]), b(new float[n]), c(new float[n]);
  const long ln = static_cast<long>(n);
#pragma omp parallel for schedule(static) num_threads(o.threads)
  for (long i = 0; i < ln; ++i) a[i] = 0.f, b[i] = 1.f, c[i] = 2.f;
  double best_triad = 1e30, best_read = 1e30;
  const float s = 0.5f;
  for (int rep = 0; rep < o.repeats + 1; ++rep) {  // the first pass warms the pages and the TLB
    double t0 = now_seconds();
#pragma omp parallel for schedule(static) num_threads(o.threads)
    for (long i = 0; i < ln; ++i) a[i] = b[i] + s * c[i];
    const double triad = now_seconds() - t0;
    float sum = 0;
    t0 = now_seconds();
    // 32 running sums, so the adds' latency does not bound the loop (the compiler makes them vectors).
#pragma omp parallel num_threads(o.threads) reduction(+ : sum)
    {
      float acc[32] = {};
      const long blocks = ln / 32;
#pragma omp for schedule(static)
      for (long blk = 0; blk < blocks; ++blk)
        for (int k = 0; k < 32; ++k) acc[k] += a[blk * 32 + k];
      for (float x : acc) sum += x;
    }
    const double read = now_seconds() - t0;
    g_sink = sum;
    if (rep > 0) best_triad = std::min(best_triad, triad), best_read = std::min(best_read, read);
  }
  p.triad_gbs = 3.0 * static_cast<double>(n * sizeof(float)) / best_triad / 1e9;
  p.read_gbs = static_cast<double>(n * sizeof(float)) / best_read / 1e9;
  return p;
}

}  // namespace convoy::ops::cpu
