#include "ops/cuda/cuda_check.h"
#include "ops/cuda/elementwise.h"
#include "ops/math/elementwise.h"

namespace convoy::ops::cuda {
namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }

__global__ void sgd_kernel(float* w, float* v, const float* g, int64_t n, float lr, float m, float wd, bool nesterov,
                           float scale) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) math::sgd_momentum(w[i], v[i], g[i], lr, m, wd, nesterov, scale);
}

// A row per thread: K is a class count (10 to 1000s), so one thread's loop is short next to the step.
__global__ void xent_kernel(const float* logits, const int32_t* labels, int64_t N, int64_t K, float eps, float scale,
                            float* loss, float* grad) {
  int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n < N) loss[n] = math::softmax_xent_row(logits + n * K, K, labels[n], eps, grad + n * K, scale);
}

__global__ void dropout_kernel(const float* x, float* y, int64_t n, float p, uint64_t seed, uint64_t step) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i] * math::dropout_scale(seed, step, static_cast<uint64_t>(i), p);
}

}  // namespace

void sgd_update(cudaStream_t stream, float* w, float* v, const float* g, int64_t n, float lr, float momentum,
                float weight_decay, bool nesterov, float grad_scale) {
  if (n == 0) return;
  sgd_kernel<<<blocks_for(n), kThreads, 0, stream>>>(w, v, g, n, lr, momentum, weight_decay, nesterov, grad_scale);
  CUDA_CHECK(cudaGetLastError());
}

void softmax_cross_entropy(cudaStream_t stream, const float* logits, const int32_t* labels, int64_t N, int64_t K,
                           float smoothing, float grad_scale, float* loss, float* grad) {
  if (N == 0) return;
  xent_kernel<<<blocks_for(N), kThreads, 0, stream>>>(logits, labels, N, K, smoothing, grad_scale, loss, grad);
  CUDA_CHECK(cudaGetLastError());
}

void dropout(cudaStream_t stream, const float* x, float* y, int64_t n, float p, uint64_t seed, uint64_t step) {
  if (n == 0) return;
  dropout_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, n, p, seed, step);
  CUDA_CHECK(cudaGetLastError());
}

bool device_available() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

}  // namespace convoy::ops::cuda
