// What the CUDA kernel files share (ops/cuda/*.cu only): grid-stride launches, fixed-order block sums,
// element access for f32/f16/bf16 storage, and the dtype dispatch of the public entry points.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/elementwise.h"

namespace convoy::ops::cuda {
namespace {

// Grid-stride loops over at most this many blocks: enough to fill a GPU, few enough to launch cheaply.
constexpr int64_t kMaxBlocks = 4096;

int blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 1 ? 1 : b > kMaxBlocks ? kMaxBlocks : b);
}

#define CONVOY_FOR(i, n) \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <typename F>
__global__ void map_kernel(int64_t n, F f) {
  CONVOY_FOR(i, n) f(i);
}

// Launches f(i) for i in [0, n) on the stream.
template <typename F>
void launch(cudaStream_t stream, int64_t n, F f) {
  if (n <= 0) return;
  map_kernel<<<blocks_for(n), kThreads, 0, stream>>>(n, f);
  CUDA_CHECK(cudaGetLastError());
}

// ReLU that keeps NaN (as oneDNN and PyTorch do): a diverged value must reach the non-finite check.
__device__ __forceinline__ float relu(float x) { return x > 0.f || isnan(x) ? x : 0.f; }

// A fixed-order block sum of kThreads values in shared memory (thread 0 gets the total).
template <typename T>
__device__ T block_sum(T v) {
  __shared__ T buf[kThreads];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  return buf[0];
}

// Element access for f32, f16 and bf16 storage: load as f32, round once on store.
__device__ __forceinline__ float ld(float v) { return v; }
__device__ __forceinline__ float ld(__half v) { return __half2float(v); }
__device__ __forceinline__ float ld(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T>
__device__ __forceinline__ T st(float v);
template <>
__device__ __forceinline__ float st<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half st<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 st<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

}  // namespace

// The public entry points: the element type from the dtype, then the typed kernel.
#define CONVOY_BY_DTYPE(t, what, CALL)                                                             \
  switch (t) {                                                                                     \
    case Elem::f32: { using T = float; CALL; return; }                                             \
    case Elem::f16: { using T = __half; CALL; return; }                                            \
    case Elem::bf16: { using T = __nv_bfloat16; CALL; return; }                                    \
  }                                                                                                \
  CONVOY_FAIL(what << ": element type " << static_cast<int>(t) << " is not f32, f16 or bf16")

// Casts of the entry points' untyped pointers to the element type T of CONVOY_BY_DTYPE.
#define P(x) static_cast<T*>(x)
#define C(x) static_cast<const T*>(x)

}  // namespace convoy::ops::cuda
