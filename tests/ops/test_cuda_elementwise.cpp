// The CUDA launches of the shared elementwise math against the same math on the CPU. Skipped where no
// GPU is present, which is every machine of this project so far: these tests have never run.
#include <gtest/gtest.h>

#include <vector>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/elementwise.h"
#include "ops/math/elementwise.h"

namespace convoy::ops::cuda {
namespace {

template <typename T>
T* to_device(const std::vector<T>& h) {
  T* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, h.size() * sizeof(T)));
  CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

template <typename T>
std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> h(n);
  CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

TEST(CudaElementwise, SgdUpdateEqualsTheCpuMath) {
  if (!device_available()) GTEST_SKIP() << "no CUDA device on this machine";
  const int64_t n = 1000;
  std::vector<float> w(n), v(n), g(n);
  for (int64_t i = 0; i < n; ++i) w[i] = 0.01f * i, v[i] = 0.5f - 0.001f * i, g[i] = 0.3f - 0.0007f * i;
  float *dw = to_device(w), *dv = to_device(v), *dg = to_device(g);
  sgd_update(nullptr, dw, dv, dg, n, 0.1f, 0.9f, 1e-4f, true, 0.5f);
  CUDA_CHECK(cudaDeviceSynchronize());
  auto gw = to_host(dw, n), gv = to_host(dv, n);
  for (int64_t i = 0; i < n; ++i) {
    math::sgd_momentum(w[i], v[i], g[i], 0.1f, 0.9f, 1e-4f, true, 0.5f);
    EXPECT_FLOAT_EQ(gw[i], w[i]);
    EXPECT_FLOAT_EQ(gv[i], v[i]);
  }
  cudaFree(dw), cudaFree(dv), cudaFree(dg);
}

TEST(CudaElementwise, DropoutEqualsTheCpuMath) {
  if (!device_available()) GTEST_SKIP() << "no CUDA device on this machine";
  const int64_t n = 4096;
  std::vector<float> x(n, 1.f);
  float* dx = to_device(x);
  float* dy = to_device(x);
  dropout_forward(nullptr, Elem::f32, dx, dy, n, 0.3f, 7, 11);
  auto y = to_host(dy, n);
  for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(y[i], math::dropout_scale(7, 11, i, 0.3f));
  cudaFree(dx), cudaFree(dy);
}

TEST(CudaElementwise, CastsRoundAsTheCpuMath) {
  if (!device_available()) GTEST_SKIP() << "no CUDA device on this machine";
  std::vector<float> x{0.f, 1.f, -2.5f, 1.00390625f, 65504.f, 70000.f, 1e-8f, 3.14159265f};
  float* dx = to_device(x);
  std::vector<uint16_t> zeros(x.size());
  uint16_t* dh = to_device(zeros);
  for (bool bf16 : {false, true}) {
    cast_to_half(nullptr, dx, dh, static_cast<int64_t>(x.size()), bf16);
    auto h = to_host(dh, x.size());
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(h[i], bf16 ? math::f32_to_bf16(x[i]) : math::f32_to_f16(x[i])) << i;
  }
  cudaFree(dx), cudaFree(dh);
}

TEST(CudaElementwise, SumOfSquaresIsTheSameEveryRun) {
  if (!device_available()) GTEST_SKIP() << "no CUDA device on this machine";
  const int64_t n = 1 << 20;
  std::vector<float> x(n);
  double expect = 0;
  for (int64_t i = 0; i < n; ++i) x[i] = 0.001f * static_cast<float>(i % 977) - 0.4f, expect += double(x[i]) * x[i];
  float* dx = to_device(x);
  std::vector<double> zeros(kReduceBlocks + 1);
  double* scratch = to_device(zeros);
  sum_squares(nullptr, dx, n, scratch, scratch + kReduceBlocks);
  const double first = to_host(scratch + kReduceBlocks, 1)[0];
  EXPECT_NEAR(first, expect, 1e-9 * expect);
  for (int r = 0; r < 3; ++r) {
    sum_squares(nullptr, dx, n, scratch, scratch + kReduceBlocks);
    EXPECT_EQ(to_host(scratch + kReduceBlocks, 1)[0], first);
  }
  cudaFree(dx), cudaFree(scratch);
}

}  // namespace
}  // namespace convoy::ops::cuda
