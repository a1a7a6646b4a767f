// The shared elementwise math (ops/math/elementwise.h) on the CPU: conversions and the per-element rules
// that the CUDA side launches unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ops/math/elementwise.h"

namespace convoy::math {
namespace {

TEST(Math, HalfConversionRoundTripsEveryCode) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t code = static_cast<uint16_t>(h);
    const float f = f16_to_f32(code);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << h;
      continue;
    }
    EXPECT_EQ(f32_to_f16(f), code) << "code " << h << " -> " << f;
  }
}

TEST(Math, HalfConversionRoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(0.1f), 0x2e66);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);                  // largest finite half
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);                  // rounds up to infinity
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);     // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -26)), 0x0000);     // below half of it: zero
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // a tie goes to the even mantissa
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(std::numeric_limits<float>::infinity()))));
}

TEST(Math, Bfloat16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie, even stays
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie, odd rounds up
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
}

TEST(Math, SgdMatchesPyTorchFormula) {
  float w = 1.0f, v = 0.5f;
  sgd_momentum(w, v, 0.2f, 0.1f, 0.9f, 0.01f, false, 2.0f);
  // d = 0.2 * 2 + 0.01 * 1 = 0.41; v = 0.45 + 0.41 = 0.86; w = 1 - 0.1 * 0.86
  EXPECT_FLOAT_EQ(v, 0.86f);
  EXPECT_FLOAT_EQ(w, 0.914f);
}

TEST(Math, DropoutKeepsAboutOneMinusP) {
  int kept = 0;
  for (uint64_t i = 0; i < 100000; ++i) kept += dropout_scale(3, 4, i, 0.3f) > 0;
  EXPECT_NEAR(kept, 70000, 700);  // > 4 sigma
  EXPECT_EQ(dropout_scale(3, 4, 17, 0.3f), dropout_scale(3, 4, 17, 0.3f));  // a pure function
}

}  // namespace
}  // namespace convoy::math
