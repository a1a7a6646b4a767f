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
  dropout(nullptr, dx, dy, n, 0.3f, 7, 11);
  auto y = to_host(dy, n);
  for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(y[i], math::dropout_scale(7, 11, i, 0.3f));
  cudaFree(dx), cudaFree(dy);
}

}  // namespace
}  // namespace convoy::ops::cuda
