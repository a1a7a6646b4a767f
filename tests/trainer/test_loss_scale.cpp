// The dynamic loss scaler's schedule (trainer/loss_scale.h) and the precision choices (trainer/precision.h).
#include <gtest/gtest.h>

#include "ops/backend.h"
#include "trainer/loss_scale.h"
#include "trainer/precision.h"

namespace convoy::trainer {
namespace {

TEST(LossScaler, HalvesOnOverflowDoublesAfterTheWindowAndStaysInItsRange) {
  LossScaler s(LossScaleOptions{65536, 3, 16777216, 1});
  EXPECT_EQ(s.scale(), 65536);
  EXPECT_TRUE(s.update(true));
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 16384);
  EXPECT_EQ(s.skipped(), 2);
  s.update(false), s.update(false);
  EXPECT_EQ(s.scale(), 16384);  // 2 clean steps of a window of 3
  EXPECT_TRUE(s.update(true));  // an overflow restarts the count
  EXPECT_EQ(s.scale(), 8192);
  s.update(false), s.update(false), s.update(false);
  EXPECT_EQ(s.scale(), 16384);  // 3 clean steps in a row: doubled
  EXPECT_EQ(s.state().clean, 0);
  for (int i = 0; i < 3 * 20; ++i) s.update(false);
  EXPECT_EQ(s.scale(), 16777216);  // never above 2^24
  EXPECT_EQ(s.skipped(), 3);
}

TEST(LossScaler, AnOverflowAtTheSmallestScaleIsADivergedRun) {
  LossScaler s(LossScaleOptions{2, 2000, 16777216, 1});
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 1);
  EXPECT_FALSE(s.update(true));  // cannot go lower: the gradients are non-finite for another reason
  EXPECT_EQ(s.scale(), 1);
}

TEST(LossScaler, DefaultsAreTheRecipesAndStateRestoresExactly) {
  LossScaler a(LossScaleOptions{});
  EXPECT_EQ(a.scale(), 65536);  // 2^16
  for (int i = 0; i < 1999; ++i) a.update(false);
  EXPECT_EQ(a.scale(), 65536);
  a.update(false);
  EXPECT_EQ(a.scale(), 131072);  // after 2,000 clean steps
  a.update(true), a.update(false);
  LossScaler b(LossScaleOptions{});
  b.restore(a.state());
  for (int i = 0; i < 5000; ++i) {
    const bool overflow = i % 1234 == 7;
    a.update(overflow), b.update(overflow);
    ASSERT_EQ(a.scale(), b.scale()) << "step " << i;
  }
  EXPECT_EQ(a.skipped(), b.skipped());
  EXPECT_THROW(b.restore(LossScaler::State{1e9, 0, 0}), Error);  // above 2^24
  EXPECT_THROW(LossScaler(LossScaleOptions{0.5, 2000, 16777216, 1}), Error);
}

TEST(Precision, Fp16EmulatesOnTheCpuAndBf16IsNativeOrNamesTheProcessor) {
  auto cpu = ops::make_backend("cpu", 1);
  const PrecisionPlan fp32 = plan_precision("fp32", *cpu);
  EXPECT_EQ(fp32.emulated, ops::DType::f32);
  EXPECT_EQ(fp32.compute, ops::DType::f32);
  EXPECT_FALSE(fp32.loss_scaling);
  const PrecisionPlan fp16 = plan_precision("fp16", *cpu);
  EXPECT_EQ(fp16.emulated, ops::DType::f16);
  EXPECT_EQ(fp16.compute, ops::DType::f32);
  EXPECT_TRUE(fp16.loss_scaling);
  if (ops::cpu_has_bf16()) {
    const PrecisionPlan bf16 = plan_precision("bf16", *cpu);
    EXPECT_EQ(bf16.compute, ops::DType::bf16);
    EXPECT_EQ(bf16.emulated, ops::DType::f32);
    EXPECT_FALSE(bf16.loss_scaling);  // bf16 has fp32's range
    EXPECT_NE(bf16.describe.find(ops::cpu_isa()), std::string::npos) << bf16.describe;
  } else {
    try {
      plan_precision("bf16", *cpu);
      FAIL() << "bf16 was accepted on a processor without bf16 arithmetic (" << ops::cpu_isa() << ")";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("oneDNN ISA " + ops::cpu_isa()), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(plan_precision("fp8", *cpu), Error);
}

TEST(Precision, AutoIsBf16WhereTheProcessorHasItAndFp32ElsewhereAndSaysWhich) {
  auto cpu = ops::make_backend("cpu", 1);
  const PrecisionPlan a = plan_precision("auto", *cpu);
  EXPECT_EQ(a.compute, ops::cpu_has_bf16() ? ops::DType::bf16 : ops::DType::f32);
  EXPECT_EQ(a.emulated, ops::DType::f32);  // never the (slow) fp16 emulation
  EXPECT_FALSE(a.loss_scaling);
  EXPECT_EQ(a.describe.rfind("auto: ", 0), 0u) << a.describe;
  EXPECT_NE(a.describe.find(ops::cpu_isa()), std::string::npos) << a.describe;  // the reason, either way
}

}  // namespace
}  // namespace convoy::trainer
