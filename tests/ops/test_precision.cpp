// The kernels of mixed precision on every backend: rounding to half or bf16 storage (the fp16 emulation's
// layer boundaries) against hand values, and the finiteness check the loss scaler ORs over gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/ops/test_util.h"

namespace convoy::test {
namespace {

std::vector<float> rounded(const std::vector<float>& v, ops::DType storage) {
  ops::Tensor t = device_tensor(ops::Shape{static_cast<int64_t>(v.size())}, v);
  backend().round_to(backend().context(), t, t, storage);  // in place
  return host_values(t);
}

TEST(RoundTo, HalfKeepsItsRangeAndRoundsToNearestEven) {
  const float inf = std::numeric_limits<float>::infinity();
  const float tiny = std::ldexp(1.f, -24);  // half's smallest subnormal
  const std::vector<float> in{65504.f,             // half's largest
                              65519.f,             // below the midpoint to infinity: stays 65504
                              65520.f,             // the midpoint: ties to even, which is infinity
                              -70000.f,            // overflow
                              tiny,                // the smallest subnormal survives
                              std::ldexp(1.f, -25),         // half of it: ties to even, which is 0
                              3 * std::ldexp(1.f, -26),     // above the midpoint: the smallest subnormal
                              1.f + std::ldexp(1.f, -11),   // midpoint of 1 and 1 + 2^-10: to 1 (even)
                              1.f + 3 * std::ldexp(1.f, -11),  // midpoint: to 1 + 2^-9 (even)
                              std::ldexp(1.f, -14) * 1.5f,  // a normal half
                              -0.f};
  const std::vector<float> want{65504.f, 65504.f, inf, -inf, tiny, 0.f, tiny, 1.f, 1.f + std::ldexp(1.f, -9),
                                std::ldexp(1.f, -14) * 1.5f, -0.f};
  const std::vector<float> got = rounded(in, ops::DType::f16);
  for (size_t i = 0; i < in.size(); ++i) EXPECT_EQ(got[i], want[i]) << "input " << in[i];
  EXPECT_TRUE(std::signbit(got.back()));
  EXPECT_TRUE(std::isnan(rounded({std::nanf("")}, ops::DType::f16)[0]));
}

TEST(RoundTo, Bf16KeepsEightBitsOfMantissa) {
  const std::vector<float> got = rounded({1.f + std::ldexp(1.f, -8), 1.f + 3 * std::ldexp(1.f, -8), 3e38f},
                                         ops::DType::bf16);
  EXPECT_EQ(got[0], 1.f);                          // a tie: to even
  EXPECT_EQ(got[1], 1.f + std::ldexp(1.f, -6));    // a tie: to even, upwards
  EXPECT_NEAR(got[2], 3e38f, 3e38f * 0.004f);      // bf16 has f32's range
}

TEST(RoundTo, WritesIntoAnotherTensorAndRefusesOtherTypes) {
  ops::Tensor src = device_tensor(ops::Shape{3}, {1.f + std::ldexp(1.f, -12), 2.f, 70000.f});
  ops::Tensor dst = device_tensor(ops::Shape{3}, {0.f, 0.f, 0.f});
  backend().round_to(backend().context(), src, dst, ops::DType::f16);
  EXPECT_EQ(host_values(dst), (std::vector<float>{1.f, 2.f, std::numeric_limits<float>::infinity()}));
  EXPECT_EQ(host_values(src)[2], 70000.f);  // the source is untouched
  EXPECT_THROW(backend().round_to(backend().context(), src, dst, ops::DType::f32), Error);
}

TEST(CheckFinite, OrsIntoTheFlag) {
  ops::Tensor flag = ops::Tensor::empty(ops::Shape{1}, ops::DType::i32, backend().allocator());
  backend().fill(backend().context(), flag, 0.0);
  ops::Tensor ok = device_tensor(ops::Shape{100000}, std::vector<float>(100000, 1e30f));
  backend().check_finite(backend().context(), ok, flag);
  EXPECT_EQ(host_values_as<int32_t>(flag)[0], 0);
  std::vector<float> v(100000, 0.5f);
  v[77777] = std::numeric_limits<float>::infinity();
  ops::Tensor bad = device_tensor(ops::Shape{100000}, v);
  backend().check_finite(backend().context(), bad, flag);
  EXPECT_EQ(host_values_as<int32_t>(flag)[0], 1);
  backend().check_finite(backend().context(), ok, flag);  // a later finite tensor leaves the 1
  EXPECT_EQ(host_values_as<int32_t>(flag)[0], 1);
  backend().fill(backend().context(), flag, 0.0);
  v[77777] = std::nanf("");
  ops::Tensor nan = device_tensor(ops::Shape{100000}, v);
  backend().check_finite(backend().context(), nan, flag);
  EXPECT_EQ(host_values_as<int32_t>(flag)[0], 1);
}

}  // namespace
}  // namespace convoy::test
