// The machine-peak measurement (ops/cpu/peak.h): what it reports must be consistent with the processor
// and with its own arithmetic; how fast the machine is, is not a test's business.
#include <gtest/gtest.h>

#include "ops/backend.h"
#include "ops/cpu/peak.h"

namespace convoy::ops::cpu {
namespace {

PeakOptions quick() {
  PeakOptions o;
  o.threads = 1, o.seconds = 0.03, o.repeats = 1, o.stream_bytes = size_t{8} << 20;
  return o;
}

TEST(MachinePeak, ReportsTheLoopsThisProcessorHasAndRefusesTheOthersSaying) {
  const MachinePeak p = measure_peak(quick());
  EXPECT_FALSE(p.cpu.empty());
  EXPECT_GT(p.ghz, 0.2);  // a measured clock, not a default
  EXPECT_TRUE(p.ghz_measured);
  ASSERT_TRUE(p.fp32.available) << p.fp32.why_not;  // oneDNN's kernels need AVX2 at least: so do these loops
  EXPECT_GT(p.fp32.measured_gflops, 0);
  // A loop faster than cores x units x lanes x clock would count flops it did not do (the bug this guards
  // against read 2-3x). 1.5x, not 1.25x: with other processes on the cores (a parallel build, ctest -j2)
  // the clock is measured low now and then, and a quick measurement went past 1.25x that way.
  EXPECT_LT(p.fp32.measured_gflops, 1.5 * p.fp32.theoretical_gflops) << p.fp32.loop;
  // bf16 is measured exactly where oneDNN runs bf16 kernels (AVX-512 BF16), and refused with a reason.
  EXPECT_EQ(p.bf16.available, cpu_has_bf16()) << p.bf16.why_not;
  if (!p.bf16.available) EXPECT_NE(p.bf16.why_not.find("BF16"), std::string::npos) << p.bf16.why_not;
  if (p.bf16.available) EXPECT_LT(p.bf16.measured_gflops, 1.5 * p.bf16.theoretical_gflops);
  EXPECT_GT(p.triad_gbs, 0);
  EXPECT_GT(p.read_gbs, 0);
}

TEST(MachinePeak, AGivenClockAndUnitCountMakeTheTheoreticalPeak) {
  PeakOptions o = quick();
  o.threads = 2, o.ghz = 2.5, o.fma_units = 1;
  const MachinePeak p = measure_peak(o);
  EXPECT_FALSE(p.ghz_measured);
  EXPECT_EQ(p.fma_units_from, "--fma-units");
  EXPECT_DOUBLE_EQ(p.fp32.theoretical_gflops, 2 * 1 * p.fp32.flops_per_instruction * 2.5);
  EXPECT_EQ(p.fp32.flops_per_instruction, 2.0 * p.fp32.lanes);
  o.ghz = -1;
  EXPECT_THROW(measure_peak(o), Error);
}

}  // namespace
}  // namespace convoy::ops::cpu
