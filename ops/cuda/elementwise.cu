#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/elementwise.h"
#include "ops/math/elementwise.h"
#include "ops/math/window.h"

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

__global__ void sum_squares_partial(const float* x, int64_t n, double* partials) {
  double s = 0;
  CONVOY_FOR(i, n) s += static_cast<double>(x[i]) * x[i];
  s = block_sum(s);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

__global__ void sum_partials(const double* partials, int count, double* out) {
  double s = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
  s = block_sum(s);
  if (threadIdx.x == 0) out[0] = s;
}

// One thread per row: K is a class count (10 to 1000s), short next to the step.
__global__ void xent_rows(const float* logits, const int32_t* labels, int64_t N, int64_t K, XentTerms t, float* rows,
                          float* grad) {
  CONVOY_FOR(n, N) {
    const int32_t y = labels[n], y2 = labels[N - 1 - n];
    if (y < 0 || y >= K || y2 < 0 || y2 >= K) {
      rows[n] = NAN;
      for (int64_t k = 0; k < K; ++k) grad[n * K + k] = 0.f;
    } else {
      rows[n] = math::soft_xent_row(logits + n * K, K, y, y2, t.mix_lambda, t.smoothing,
                                    t.teacher ? t.teacher + n * K : nullptr, t.temperature, grad + n * K, t.grad_scale);
    }
  }
}

// One block: loss_sum += weight * mean(rows) in a fixed order, nonfinite = !isfinite(that).
__global__ void xent_total(const float* rows, int64_t N, float weight, double* loss_sum, int32_t* nonfinite) {
  double s = 0;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) s += rows[i];
  s = block_sum(s);
  if (threadIdx.x == 0) {
    const double mean = weight * s / static_cast<double>(N);
    loss_sum[0] += mean;
    if (!isfinite(mean)) nonfinite[0] = 1;
  }
}

__global__ void xent_eval_rows(const float* logits, const int32_t* labels, const uint8_t* valid, int64_t N, int64_t K,
                               float* rows) {
  CONVOY_FOR(n, N) {
    const int32_t y = labels[n];
    float loss = 0.f, top1 = 0.f, top5 = 0.f;
    if (valid[n]) {
      if (y < 0 || y >= K) {
        loss = NAN;
      } else {
        loss = math::softmax_xent_row(logits + n * K, K, y, 0.f, nullptr, 0.f);
        const int64_t r = math::label_rank(logits + n * K, K, y);
        top1 = r < 1 ? 1.f : 0.f;
        top5 = r < 5 ? 1.f : 0.f;
      }
    }
    rows[n] = loss, rows[N + n] = top1, rows[2 * N + n] = top5;
  }
}

__global__ void xent_eval_total(const float* rows, int64_t N, double* sums) {
  for (int j = 0; j < 3; ++j) {
    double s = 0;
    for (int64_t i = threadIdx.x; i < N; i += blockDim.x) s += rows[j * N + i];
    s = block_sum(s);
    if (threadIdx.x == 0) sums[j] += s;
    __syncthreads();
  }
}

}  // namespace

template <typename T>
void fill(cudaStream_t stream, T* p, int64_t n, T value) {
  launch(stream, n, [=] __device__(int64_t i) { p[i] = value; });
}
template void fill<float>(cudaStream_t, float*, int64_t, float);
template void fill<double>(cudaStream_t, double*, int64_t, double);
template void fill<int32_t>(cudaStream_t, int32_t*, int64_t, int32_t);
template void fill<int64_t>(cudaStream_t, int64_t*, int64_t, int64_t);
template void fill<uint8_t>(cudaStream_t, uint8_t*, int64_t, uint8_t);

void cast_to_half(cudaStream_t stream, const float* src, uint16_t* dst, int64_t n, bool bf16) {
  if (bf16)
    launch(stream, n, [=] __device__(int64_t i) { dst[i] = math::f32_to_bf16(src[i]); });
  else
    launch(stream, n, [=] __device__(int64_t i) { dst[i] = math::f32_to_f16(src[i]); });
}

void cast_from_half(cudaStream_t stream, const uint16_t* src, float* dst, int64_t n, bool bf16) {
  if (bf16)
    launch(stream, n, [=] __device__(int64_t i) { dst[i] = math::bf16_to_f32(src[i]); });
  else
    launch(stream, n, [=] __device__(int64_t i) { dst[i] = math::f16_to_f32(src[i]); });
}

void round_through_half(cudaStream_t stream, const float* src, float* dst, int64_t n, bool bf16) {
  if (bf16)
    launch(stream, n, [=] __device__(int64_t i) { dst[i] = math::bf16_to_f32(math::f32_to_bf16(src[i])); });
  else
    launch(stream, n, [=] __device__(int64_t i) { dst[i] = math::f16_to_f32(math::f32_to_f16(src[i])); });
}

void flag_nonfinite(cudaStream_t stream, const float* x, int64_t n, int32_t* flag) {
  launch(stream, n, [=] __device__(int64_t i) {
    if (!isfinite(x[i])) *flag = 1;  // every writer writes 1: a benign race
  });
}

void write_or_accumulate(cudaStream_t stream, float* dst, const float* src, int64_t n, bool accumulate) {
  if (accumulate) {
    launch(stream, n, [=] __device__(int64_t i) { dst[i] += src[i]; });
  } else if (dst != src && n > 0) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  }
}

void mix_rows_with_reverse(cudaStream_t stream, const float* x, float* out, int64_t N, int64_t per, float lambda) {
  launch(stream, N * per, [=] __device__(int64_t i) {
    const int64_t n = i / per, j = i % per;
    out[i] = lambda * x[i] + (1.f - lambda) * x[(N - 1 - n) * per + j];
  });
}

void sgd_update(cudaStream_t stream, float* w, float* v, const float* g, int64_t n, float lr, float momentum,
                float weight_decay, bool nesterov, float grad_scale) {
  launch(stream, n, [=] __device__(int64_t i) {
    math::sgd_momentum(w[i], v[i], g[i], lr, momentum, weight_decay, nesterov, grad_scale);
  });
}

void sum_squares(cudaStream_t stream, const float* x, int64_t n, double* partials, double* out) {
  sum_squares_partial<<<kReduceBlocks, kThreads, 0, stream>>>(x, n, partials);
  CUDA_CHECK(cudaGetLastError());
  sum_partials<<<1, kThreads, 0, stream>>>(partials, kReduceBlocks, out);
  CUDA_CHECK(cudaGetLastError());
}

namespace {

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

template <typename T>
void write_or_accumulate_t(cudaStream_t stream, T* dst, const T* src, int64_t n, bool accumulate) {
  if (accumulate) {
    launch(stream, n, [=] __device__(int64_t i) { dst[i] = st<T>(ld(dst[i]) + ld(src[i])); });
  } else if (dst != src && n > 0) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(T), cudaMemcpyDeviceToDevice, stream));
  }
}

template <typename T>
void relu_forward_t(cudaStream_t stream, const T* x, T* y, int64_t n) {
  launch(stream, n, [=] __device__(int64_t i) { y[i] = st<T>(relu(ld(x[i]))); });
}

template <typename T>
void relu_backward_t(cudaStream_t stream, const T* y, const T* dy, T* dx, int64_t n, bool accumulate) {
  launch(stream, n, [=] __device__(int64_t i) {
    const float g = ld(y[i]) > 0.f ? ld(dy[i]) : 0.f;
    dx[i] = st<T>(accumulate ? ld(dx[i]) + g : g);
  });
}

template <typename T>
void add_forward_t(cudaStream_t stream, const T* a, const T* b, T* y, int64_t n, bool relu) {
  launch(stream, n, [=] __device__(int64_t i) {
    const float s = ld(a[i]) + ld(b[i]);
    y[i] = st<T>(relu ? convoy::ops::cuda::relu(s) : s);
  });
}

template <typename T>
void add_backward_t(cudaStream_t stream, const T* y, const T* dy, T* da, bool acc_a, T* db, bool acc_b, int64_t n,
                    bool relu) {
  launch(stream, n, [=] __device__(int64_t i) {
    const float g = relu && !(ld(y[i]) > 0.f) ? 0.f : ld(dy[i]);
    if (da) da[i] = st<T>(acc_a ? ld(da[i]) + g : g);
    if (db) db[i] = st<T>(acc_b ? ld(db[i]) + g : g);
  });
}

template <typename T>
void dropout_forward_t(cudaStream_t stream, const T* x, T* y, int64_t n, float p, uint64_t seed, uint64_t step) {
  launch(stream, n, [=] __device__(int64_t i) {
    y[i] = st<T>(ld(x[i]) * math::dropout_scale(seed, step, static_cast<uint64_t>(i), p));
  });
}

template <typename T>
void dropout_backward_t(cudaStream_t stream, const T* dy, T* dx, int64_t n, float p, uint64_t seed, uint64_t step,
                        bool accumulate) {
  launch(stream, n, [=] __device__(int64_t i) {
    const float g = ld(dy[i]) * math::dropout_scale(seed, step, static_cast<uint64_t>(i), p);
    dx[i] = st<T>(accumulate ? ld(dx[i]) + g : g);
  });
}

template <typename T>
void strided_accumulate_t(cudaStream_t stream, T* dst, int64_t dst_pitch, const T* src, int64_t src_pitch,
                          int64_t width, int64_t rows) {
  launch(stream, width * rows, [=] __device__(int64_t i) {
    const int64_t r = i / width, c = i % width;
    dst[r * dst_pitch + c] = st<T>(ld(dst[r * dst_pitch + c]) + ld(src[r * src_pitch + c]));
  });
}

template <typename T>
void bias_activation_rows_t(cudaStream_t stream, T* y, const T* b, int64_t N, int64_t K, bool relu) {
  launch(stream, N * K, [=] __device__(int64_t i) {
    const float v = b ? ld(y[i]) + ld(b[i % K]) : ld(y[i]);
    y[i] = st<T>(relu ? convoy::ops::cuda::relu(v) : v);
  });
}

// One thread per column, rows in order: a fixed summation order.
template <typename T>
void bias_grad_rows_t(cudaStream_t stream, const T* g, float* db, int64_t N, int64_t K) {
  launch(stream, K, [=] __device__(int64_t k) {
    float sum = 0.f;
    for (int64_t r = 0; r < N; ++r) sum += ld(g[r * K + k]);
    db[k] = sum;
  });
}

template <typename T>
void max_pool_forward_t(cudaStream_t stream, const PoolShape& s, const T* x, T* y, int32_t* argmax) {
  launch(stream, s.N * s.OH * s.OW * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C, ow = (i / s.C) % s.OW, oh = (i / (s.C * s.OW)) % s.OH, n = i / (s.C * s.OW * s.OH);
    const math::Window wh = math::pool_window(oh, s.H, s.kh, s.sh, s.ph), ww = math::pool_window(ow, s.W, s.kw, s.sw, s.pw);
    float best = -INFINITY;
    int32_t at = static_cast<int32_t>(wh.begin * s.W + ww.begin);
    for (int64_t h = wh.begin; h < wh.end; ++h)
      for (int64_t w = ww.begin; w < ww.end; ++w) {
        const float v = ld(x[((n * s.H + h) * s.W + w) * s.C + c]);
        if (v > best || isnan(v)) best = v, at = static_cast<int32_t>(h * s.W + w);  // NaN wins, as in PyTorch's kernel
      }
    y[i] = st<T>(best);
    argmax[i] = at;
  });
}

// Backward as a gather over the windows that contain each input: a fixed summation order, no atomics.
template <typename T>
void max_pool_backward_t(cudaStream_t stream, const PoolShape& s, const T* dy, const int32_t* argmax, T* dx,
                         bool accumulate) {
  launch(stream, s.N * s.H * s.W * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C, w = (i / s.C) % s.W, h = (i / (s.C * s.W)) % s.H, n = i / (s.C * s.W * s.H);
    int64_t oh0, oh1, ow0, ow1;
    math::windows_containing(h, s.OH, s.kh, s.sh, s.ph, oh0, oh1);
    math::windows_containing(w, s.OW, s.kw, s.sw, s.pw, ow0, ow1);
    const int32_t self = static_cast<int32_t>(h * s.W + w);
    float g = 0.f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const int64_t o = ((n * s.OH + oh) * s.OW + ow) * s.C + c;
        if (argmax[o] == self) g += ld(dy[o]);
      }
    dx[i] = st<T>(accumulate ? ld(dx[i]) + g : g);
  });
}

template <typename T>
void avg_pool_forward_t(cudaStream_t stream, const PoolShape& s, const T* x, T* y) {
  launch(stream, s.N * s.OH * s.OW * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C, ow = (i / s.C) % s.OW, oh = (i / (s.C * s.OW)) % s.OH, n = i / (s.C * s.OW * s.OH);
    const math::Window wh = math::pool_window(oh, s.H, s.kh, s.sh, s.ph), ww = math::pool_window(ow, s.W, s.kw, s.sw, s.pw);
    float sum = 0.f;
    for (int64_t h = wh.begin; h < wh.end; ++h)
      for (int64_t w = ww.begin; w < ww.end; ++w) sum += ld(x[((n * s.H + h) * s.W + w) * s.C + c]);
    const int64_t count = s.count_include_pad ? wh.padded_size * ww.padded_size
                                              : (wh.end - wh.begin) * (ww.end - ww.begin);
    y[i] = st<T>(count > 0 ? sum / static_cast<float>(count) : 0.f);
  });
}

template <typename T>
void avg_pool_backward_t(cudaStream_t stream, const PoolShape& s, const T* dy, T* dx, bool accumulate) {
  launch(stream, s.N * s.H * s.W * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C, w = (i / s.C) % s.W, h = (i / (s.C * s.W)) % s.H, n = i / (s.C * s.W * s.H);
    int64_t oh0, oh1, ow0, ow1;
    math::windows_containing(h, s.OH, s.kh, s.sh, s.ph, oh0, oh1);
    math::windows_containing(w, s.OW, s.kw, s.sw, s.pw, ow0, ow1);
    float g = 0.f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const math::Window wh = math::pool_window(oh, s.H, s.kh, s.sh, s.ph),
                           ww = math::pool_window(ow, s.W, s.kw, s.sw, s.pw);
        const int64_t count = s.count_include_pad ? wh.padded_size * ww.padded_size
                                                  : (wh.end - wh.begin) * (ww.end - ww.begin);
        if (count > 0) g += ld(dy[((n * s.OH + oh) * s.OW + ow) * s.C + c]) / static_cast<float>(count);
      }
    dx[i] = st<T>(accumulate ? ld(dx[i]) + g : g);
  });
}

template <typename T>
void adaptive_avg_pool_forward_t(cudaStream_t stream, const AdaptiveShape& s, const T* x, T* y) {
  launch(stream, s.N * s.OH * s.OW * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C, ow = (i / s.C) % s.OW, oh = (i / (s.C * s.OW)) % s.OH, n = i / (s.C * s.OW * s.OH);
    y[i] = st<T>(math::adaptive_avg_at(oh, ow, s.H, s.W, s.OH, s.OW, [&](int64_t h, int64_t w) {
      return ld(x[((n * s.H + h) * s.W + w) * s.C + c]);
    }));
  });
}

template <typename T>
void adaptive_avg_pool_backward_t(cudaStream_t stream, const AdaptiveShape& s, const T* dy, T* dx, bool accumulate) {
  launch(stream, s.N * s.H * s.W * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C, w = (i / s.C) % s.W, h = (i / (s.C * s.W)) % s.H, n = i / (s.C * s.W * s.H);
    const float g = math::adaptive_avg_grad_at(h, w, s.H, s.W, s.OH, s.OW, [&](int64_t oh, int64_t ow) {
      return ld(dy[((n * s.OH + oh) * s.OW + ow) * s.C + c]);
    });
    dx[i] = st<T>(accumulate ? ld(dx[i]) + g : g);
  });
}

// SyncBN: one thread per channel walks the rows in order (consecutive threads read consecutive channels).
template <typename T>
void sync_bn_moments_t(cudaStream_t stream, const SyncBnShape s, const T* x, double* sums) {
  launch(stream, s.C, [=] __device__(int64_t c) {
    double sum = 0, sq = 0;
    for (int64_t r = 0; r < s.rows; ++r) {
      const double v = ld(x[r * s.C + c]);
      sum += v, sq += v * v;
    }
    sums[c] = sum, sums[s.C + c] = sq;
  });
}

template <typename T>
void sync_bn_normalize_t(cudaStream_t stream, const SyncBnShape s, const T* x, const float* mean, const float* var,
                         const float* gamma, const float* beta, T* y) {
  launch(stream, s.rows * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C;
    const float v = gamma[c] * (ld(x[i]) - mean[c]) * rsqrtf(var[c] + s.eps) + beta[c];
    y[i] = st<T>(s.relu ? relu(v) : v);
  });
}

template <typename T>
__device__ float sync_bn_grad_at(const SyncBnShape& s, const T* y, const T* dy, int64_t i) {
  return s.relu && !(ld(y[i]) > 0.f) ? 0.f : ld(dy[i]);
}

template <typename T>
void sync_bn_grad_moments_t(cudaStream_t stream, const SyncBnShape s, const T* x, const T* y, const T* dy,
                            const float* mean, const float* var, double* sums, float* dgamma, float* dbeta) {
  launch(stream, s.C, [=] __device__(int64_t c) {
    const float is = rsqrtf(var[c] + s.eps);
    double sg = 0, sgx = 0;
    for (int64_t r = 0; r < s.rows; ++r) {
      const int64_t i = r * s.C + c;
      const double g = sync_bn_grad_at(s, y, dy, i);
      sg += g, sgx += g * (ld(x[i]) - mean[c]) * is;
    }
    sums[c] = sg, sums[s.C + c] = sgx;
    dbeta[c] = static_cast<float>(sg), dgamma[c] = static_cast<float>(sgx);
  });
}

template <typename T>
void sync_bn_grad_input_t(cudaStream_t stream, const SyncBnShape s, const T* x, const T* y, const T* dy,
                          const float* gamma, const float* mean, const float* var, const double* sums, int64_t count,
                          T* dx, bool accumulate) {
  const double M = static_cast<double>(count);
  launch(stream, s.rows * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C;
    const float is = rsqrtf(var[c] + s.eps), xhat = (ld(x[i]) - mean[c]) * is;
    const float v = gamma[c] * is *
                    (sync_bn_grad_at(s, y, dy, i) - static_cast<float>(sums[c] / M) -
                     xhat * static_cast<float>(sums[s.C + c] / M));
    dx[i] = st<T>(accumulate ? ld(dx[i]) + v : v);
  });
}

template <typename T>
void lrn_forward_t(cudaStream_t stream, const T* x, T* y, float* scale, int64_t pixels, int64_t C, int64_t size,
                   float alpha, float beta, float k) {
  launch(stream, pixels * C, [=] __device__(int64_t i) {
    const int64_t c = i % C, base = i - c;
    const int64_t lo = c - size / 2 > 0 ? c - size / 2 : 0, hi = c + (size - 1) / 2 < C - 1 ? c + (size - 1) / 2 : C - 1;
    float sum = 0.f;
    for (int64_t j = lo; j <= hi; ++j) sum += ld(x[base + j]) * ld(x[base + j]);
    const float sc = k + alpha / static_cast<float>(size) * sum;
    scale[i] = sc;
    y[i] = st<T>(ld(x[i]) * powf(sc, -beta));
  });
}

template <typename T>
void lrn_backward_t(cudaStream_t stream, const T* x, const T* dy, const float* scale, T* dx, int64_t pixels, int64_t C,
                    int64_t size, float alpha, float beta, bool accumulate) {
  launch(stream, pixels * C, [=] __device__(int64_t i) {
    const int64_t c = i % C, base = i - c;
    // Channel c is in the window of channel j when j - size/2 <= c <= j + (size-1)/2.
    const int64_t lo = c - (size - 1) / 2 > 0 ? c - (size - 1) / 2 : 0, hi = c + size / 2 < C - 1 ? c + size / 2 : C - 1;
    float acc = 0.f;
    for (int64_t j = lo; j <= hi; ++j) acc += ld(dy[base + j]) * ld(x[base + j]) * powf(scale[base + j], -beta - 1.f);
    const float g = ld(dy[i]) * powf(scale[i], -beta) - 2.f * alpha * beta / static_cast<float>(size) * ld(x[i]) * acc;
    dx[i] = st<T>(accumulate ? ld(dx[i]) + g : g);
  });
}

}  // namespace

// The public entry points: the element type from the dtype, then the typed kernel.
#define CONVOY_BY_DTYPE(t, what, CALL)                                                             \
  switch (t) {                                                                                     \
    case Elem::f32: { using T = float; CALL; return; }                                             \
    case Elem::f16: { using T = __half; CALL; return; }                                            \
    case Elem::bf16: { using T = __nv_bfloat16; CALL; return; }                                    \
  }                                                                                                \
  CONVOY_FAIL(what << ": element type " << static_cast<int>(t) << " is not f32, f16 or bf16")

#define P(x) static_cast<T*>(x)
#define C(x) static_cast<const T*>(x)

void write_or_accumulate(cudaStream_t stream, Elem t, void* dst, const void* src, int64_t n, bool accumulate) {
  CONVOY_BY_DTYPE(t, "accumulation", write_or_accumulate_t(stream, P(dst), C(src), n, accumulate));
}
void relu_forward(cudaStream_t stream, Elem t, const void* x, void* y, int64_t n) {
  CONVOY_BY_DTYPE(t, "ReLU", relu_forward_t(stream, C(x), P(y), n));
}
void relu_backward(cudaStream_t stream, Elem t, const void* y, const void* dy, void* dx, int64_t n, bool accumulate) {
  CONVOY_BY_DTYPE(t, "ReLU", relu_backward_t(stream, C(y), C(dy), P(dx), n, accumulate));
}
void add_forward(cudaStream_t stream, Elem t, const void* a, const void* b, void* y, int64_t n, bool relu) {
  CONVOY_BY_DTYPE(t, "add", add_forward_t(stream, C(a), C(b), P(y), n, relu));
}
void add_backward(cudaStream_t stream, Elem t, const void* y, const void* dy, void* da, bool acc_a, void* db,
                  bool acc_b, int64_t n, bool relu) {
  CONVOY_BY_DTYPE(t, "add", add_backward_t(stream, C(y), C(dy), P(da), acc_a, P(db), acc_b, n, relu));
}
void dropout_forward(cudaStream_t stream, Elem t, const void* x, void* y, int64_t n, float p, uint64_t seed,
                     uint64_t step) {
  CONVOY_BY_DTYPE(t, "dropout", dropout_forward_t(stream, C(x), P(y), n, p, seed, step));
}
void dropout_backward(cudaStream_t stream, Elem t, const void* dy, void* dx, int64_t n, float p, uint64_t seed,
                      uint64_t step, bool accumulate) {
  CONVOY_BY_DTYPE(t, "dropout", dropout_backward_t(stream, C(dy), P(dx), n, p, seed, step, accumulate));
}
void strided_accumulate(cudaStream_t stream, Elem t, void* dst, int64_t dst_pitch, const void* src,
                        int64_t src_pitch, int64_t width, int64_t rows) {
  CONVOY_BY_DTYPE(t, "concat", strided_accumulate_t(stream, P(dst), dst_pitch, C(src), src_pitch, width, rows));
}
void bias_activation_rows(cudaStream_t stream, Elem t, void* y, const void* b, int64_t N, int64_t K, bool relu) {
  CONVOY_BY_DTYPE(t, "linear epilogue", bias_activation_rows_t(stream, P(y), C(b), N, K, relu));
}
void bias_grad_rows(cudaStream_t stream, Elem t, const void* g, float* db, int64_t N, int64_t K) {
  CONVOY_BY_DTYPE(t, "bias gradient", bias_grad_rows_t(stream, C(g), db, N, K));
}
void max_pool_forward(cudaStream_t stream, Elem t, const PoolShape& s, const void* x, void* y, int32_t* argmax) {
  CONVOY_BY_DTYPE(t, "max pooling", max_pool_forward_t(stream, s, C(x), P(y), argmax));
}
void max_pool_backward(cudaStream_t stream, Elem t, const PoolShape& s, const void* dy, const int32_t* argmax,
                       void* dx, bool accumulate) {
  CONVOY_BY_DTYPE(t, "max pooling", max_pool_backward_t(stream, s, C(dy), argmax, P(dx), accumulate));
}
void avg_pool_forward(cudaStream_t stream, Elem t, const PoolShape& s, const void* x, void* y) {
  CONVOY_BY_DTYPE(t, "average pooling", avg_pool_forward_t(stream, s, C(x), P(y)));
}
void avg_pool_backward(cudaStream_t stream, Elem t, const PoolShape& s, const void* dy, void* dx, bool accumulate) {
  CONVOY_BY_DTYPE(t, "average pooling", avg_pool_backward_t(stream, s, C(dy), P(dx), accumulate));
}
void adaptive_avg_pool_forward(cudaStream_t stream, Elem t, const AdaptiveShape& s, const void* x, void* y) {
  CONVOY_BY_DTYPE(t, "adaptive pooling", adaptive_avg_pool_forward_t(stream, s, C(x), P(y)));
}
void adaptive_avg_pool_backward(cudaStream_t stream, Elem t, const AdaptiveShape& s, const void* dy, void* dx,
                                bool accumulate) {
  CONVOY_BY_DTYPE(t, "adaptive pooling", adaptive_avg_pool_backward_t(stream, s, C(dy), P(dx), accumulate));
}
void sync_bn_moments(cudaStream_t stream, Elem t, const SyncBnShape& s, const void* x, double* sums) {
  CONVOY_BY_DTYPE(t, "sync batch norm", sync_bn_moments_t(stream, s, C(x), sums));
}
void sync_bn_statistics(cudaStream_t stream, const SyncBnShape& s, const double* sums, int64_t count, float* mean,
                        float* var, float* running_mean, float* running_var, int64_t* num_batches_tracked) {
  const SyncBnShape sh = s;
  launch(stream, s.C, [=] __device__(int64_t c) {
    const double m = sums[c] / static_cast<double>(count);
    const double v = fmax(0.0, sums[sh.C + c] / static_cast<double>(count) - m * m);
    mean[c] = static_cast<float>(m), var[c] = static_cast<float>(v);
    math::bn_running_update(running_mean[c], running_var[c], mean[c], var[c], sh.momentum, count);
    if (c == 0) ++*num_batches_tracked;
  });
}
void sync_bn_normalize(cudaStream_t stream, Elem t, const SyncBnShape& s, const void* x, const float* mean,
                       const float* var, const float* gamma, const float* beta, void* y) {
  CONVOY_BY_DTYPE(t, "sync batch norm", sync_bn_normalize_t(stream, s, C(x), mean, var, gamma, beta, P(y)));
}
void sync_bn_grad_moments(cudaStream_t stream, Elem t, const SyncBnShape& s, const void* x, const void* y,
                          const void* dy, const float* mean, const float* var, double* sums, float* dgamma,
                          float* dbeta) {
  CONVOY_BY_DTYPE(t, "sync batch norm",
                  sync_bn_grad_moments_t(stream, s, C(x), C(y), C(dy), mean, var, sums, dgamma, dbeta));
}
void sync_bn_grad_input(cudaStream_t stream, Elem t, const SyncBnShape& s, const void* x, const void* y, const void* dy,
                        const float* gamma, const float* mean, const float* var, const double* sums, int64_t count,
                        void* dx, bool accumulate) {
  CONVOY_BY_DTYPE(t, "sync batch norm", sync_bn_grad_input_t(stream, s, C(x), C(y), C(dy), gamma, mean, var, sums,
                                                             count, P(dx), accumulate));
}
void lrn_forward(cudaStream_t stream, Elem t, const void* x, void* y, float* scale, int64_t pixels, int64_t C_,
                 int64_t size, float alpha, float beta, float k) {
  CONVOY_BY_DTYPE(t, "LRN", lrn_forward_t(stream, C(x), P(y), scale, pixels, C_, size, alpha, beta, k));
}
void lrn_backward(cudaStream_t stream, Elem t, const void* x, const void* dy, const float* scale, void* dx,
                  int64_t pixels, int64_t C_, int64_t size, float alpha, float beta, bool accumulate) {
  CONVOY_BY_DTYPE(t, "LRN", lrn_backward_t(stream, C(x), C(dy), scale, P(dx), pixels, C_, size, alpha, beta,
                                           accumulate));
}

#undef P
#undef C
#undef CONVOY_BY_DTYPE

void bn_saved_variance(cudaStream_t stream, const float* inv_std, float* var, int64_t C, float eps) {
  launch(stream, C, [=] __device__(int64_t c) { var[c] = fmaxf(1.f / (inv_std[c] * inv_std[c]) - eps, 0.f); });
}

void increment(cudaStream_t stream, int64_t* count) {
  launch(stream, 1, [=] __device__(int64_t) { ++*count; });
}

void softmax_cross_entropy(cudaStream_t stream, const float* logits, const int32_t* labels, int64_t N, int64_t K,
                           const XentTerms& terms, float* rows, float* grad, double* loss_sum, int32_t* nonfinite) {
  if (N <= 0) return;
  xent_rows<<<blocks_for(N), kThreads, 0, stream>>>(logits, labels, N, K, terms, rows, grad);
  CUDA_CHECK(cudaGetLastError());
  xent_total<<<1, kThreads, 0, stream>>>(rows, N, terms.weight, loss_sum, nonfinite);
  CUDA_CHECK(cudaGetLastError());
}

void softmax_cross_entropy_eval(cudaStream_t stream, const float* logits, const int32_t* labels, const uint8_t* valid,
                                int64_t N, int64_t K, float* rows, double* sums) {
  if (N <= 0) return;
  xent_eval_rows<<<blocks_for(N), kThreads, 0, stream>>>(logits, labels, valid, N, K, rows);
  CUDA_CHECK(cudaGetLastError());
  xent_eval_total<<<1, kThreads, 0, stream>>>(rows, N, sums);
  CUDA_CHECK(cudaGetLastError());
}

bool device_available() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

}  // namespace convoy::ops::cuda
