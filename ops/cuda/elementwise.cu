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
__global__ void xent_rows(const float* logits, const int32_t* labels, int64_t N, int64_t K, float eps, float scale,
                          float* rows, float* grad) {
  CONVOY_FOR(n, N) {
    const int32_t y = labels[n];
    if (y < 0 || y >= K) {
      rows[n] = NAN;
      for (int64_t k = 0; k < K; ++k) grad[n * K + k] = 0.f;
    } else {
      rows[n] = math::softmax_xent_row(logits + n * K, K, y, eps, grad + n * K, scale);
    }
  }
}

// One block: loss_sum += mean(rows) in a fixed order, nonfinite = !isfinite(mean).
__global__ void xent_total(const float* rows, int64_t N, double* loss_sum, int32_t* nonfinite) {
  double s = 0;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) s += rows[i];
  s = block_sum(s);
  if (threadIdx.x == 0) {
    const double mean = s / static_cast<double>(N);
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

void relu_forward(cudaStream_t stream, const float* x, float* y, int64_t n) {
  launch(stream, n, [=] __device__(int64_t i) { y[i] = relu(x[i]); });
}

void relu_backward(cudaStream_t stream, const float* y, const float* dy, float* dx, int64_t n, bool accumulate) {
  launch(stream, n, [=] __device__(int64_t i) {
    const float g = y[i] > 0.f ? dy[i] : 0.f;
    dx[i] = accumulate ? dx[i] + g : g;
  });
}

void add_forward(cudaStream_t stream, const float* a, const float* b, float* y, int64_t n, bool relu) {
  launch(stream, n, [=] __device__(int64_t i) {
    const float s = a[i] + b[i];
    y[i] = relu ? convoy::ops::cuda::relu(s) : s;
  });
}

void add_backward(cudaStream_t stream, const float* y, const float* dy, float* da, bool acc_a, float* db, bool acc_b,
                  int64_t n, bool relu) {
  launch(stream, n, [=] __device__(int64_t i) {
    const float g = relu && !(y[i] > 0.f) ? 0.f : dy[i];
    if (da) da[i] = acc_a ? da[i] + g : g;
    if (db) db[i] = acc_b ? db[i] + g : g;
  });
}

void dropout_forward(cudaStream_t stream, const float* x, float* y, int64_t n, float p, uint64_t seed, uint64_t step) {
  launch(stream, n, [=] __device__(int64_t i) {
    y[i] = x[i] * math::dropout_scale(seed, step, static_cast<uint64_t>(i), p);
  });
}

void dropout_backward(cudaStream_t stream, const float* dy, float* dx, int64_t n, float p, uint64_t seed,
                      uint64_t step, bool accumulate) {
  launch(stream, n, [=] __device__(int64_t i) {
    const float g = dy[i] * math::dropout_scale(seed, step, static_cast<uint64_t>(i), p);
    dx[i] = accumulate ? dx[i] + g : g;
  });
}

void strided_accumulate(cudaStream_t stream, float* dst, int64_t dst_pitch, const float* src, int64_t src_pitch,
                        int64_t width, int64_t rows) {
  launch(stream, width * rows, [=] __device__(int64_t i) {
    const int64_t r = i / width, c = i % width;
    dst[r * dst_pitch + c] += src[r * src_pitch + c];
  });
}

void bias_activation_rows(cudaStream_t stream, float* y, const float* b, int64_t N, int64_t K, bool relu) {
  launch(stream, N * K, [=] __device__(int64_t i) {
    const float v = b ? y[i] + b[i % K] : y[i];
    y[i] = relu ? convoy::ops::cuda::relu(v) : v;
  });
}

void max_pool_forward(cudaStream_t stream, const PoolShape& s, const float* x, float* y, int32_t* argmax) {
  launch(stream, s.N * s.OH * s.OW * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C, ow = (i / s.C) % s.OW, oh = (i / (s.C * s.OW)) % s.OH, n = i / (s.C * s.OW * s.OH);
    const math::Window wh = math::pool_window(oh, s.H, s.kh, s.sh, s.ph), ww = math::pool_window(ow, s.W, s.kw, s.sw, s.pw);
    float best = -INFINITY;
    int32_t at = static_cast<int32_t>(wh.begin * s.W + ww.begin);
    for (int64_t h = wh.begin; h < wh.end; ++h)
      for (int64_t w = ww.begin; w < ww.end; ++w) {
        const float v = x[((n * s.H + h) * s.W + w) * s.C + c];
        if (v > best || isnan(v)) best = v, at = static_cast<int32_t>(h * s.W + w);  // NaN wins, as in PyTorch's kernel
      }
    y[i] = best;
    argmax[i] = at;
  });
}

// Backward as a gather over the windows that contain each input: a fixed summation order, no atomics.
void max_pool_backward(cudaStream_t stream, const PoolShape& s, const float* dy, const int32_t* argmax, float* dx,
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
        if (argmax[o] == self) g += dy[o];
      }
    dx[i] = accumulate ? dx[i] + g : g;
  });
}

void avg_pool_forward(cudaStream_t stream, const PoolShape& s, const float* x, float* y) {
  launch(stream, s.N * s.OH * s.OW * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C, ow = (i / s.C) % s.OW, oh = (i / (s.C * s.OW)) % s.OH, n = i / (s.C * s.OW * s.OH);
    const math::Window wh = math::pool_window(oh, s.H, s.kh, s.sh, s.ph), ww = math::pool_window(ow, s.W, s.kw, s.sw, s.pw);
    float sum = 0.f;
    for (int64_t h = wh.begin; h < wh.end; ++h)
      for (int64_t w = ww.begin; w < ww.end; ++w) sum += x[((n * s.H + h) * s.W + w) * s.C + c];
    const int64_t count = s.count_include_pad ? wh.padded_size * ww.padded_size
                                              : (wh.end - wh.begin) * (ww.end - ww.begin);
    y[i] = count > 0 ? sum / static_cast<float>(count) : 0.f;
  });
}

void avg_pool_backward(cudaStream_t stream, const PoolShape& s, const float* dy, float* dx, bool accumulate) {
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
        if (count > 0) g += dy[((n * s.OH + oh) * s.OW + ow) * s.C + c] / static_cast<float>(count);
      }
    dx[i] = accumulate ? dx[i] + g : g;
  });
}

void lrn_forward(cudaStream_t stream, const float* x, float* y, float* scale, int64_t pixels, int64_t C, int64_t size,
                 float alpha, float beta, float k) {
  launch(stream, pixels * C, [=] __device__(int64_t i) {
    const int64_t c = i % C, base = i - c;
    const int64_t lo = c - size / 2 > 0 ? c - size / 2 : 0, hi = c + (size - 1) / 2 < C - 1 ? c + (size - 1) / 2 : C - 1;
    float sum = 0.f;
    for (int64_t j = lo; j <= hi; ++j) sum += x[base + j] * x[base + j];
    const float sc = k + alpha / static_cast<float>(size) * sum;
    scale[i] = sc;
    y[i] = x[i] * powf(sc, -beta);
  });
}

void lrn_backward(cudaStream_t stream, const float* x, const float* dy, const float* scale, float* dx, int64_t pixels,
                  int64_t C, int64_t size, float alpha, float beta, bool accumulate) {
  launch(stream, pixels * C, [=] __device__(int64_t i) {
    const int64_t c = i % C, base = i - c;
    // Channel c is in the window of channel j when j - size/2 <= c <= j + (size-1)/2.
    const int64_t lo = c - (size - 1) / 2 > 0 ? c - (size - 1) / 2 : 0, hi = c + size / 2 < C - 1 ? c + size / 2 : C - 1;
    float acc = 0.f;
    for (int64_t j = lo; j <= hi; ++j) acc += dy[base + j] * x[base + j] * powf(scale[base + j], -beta - 1.f);
    const float g = dy[i] * powf(scale[i], -beta) - 2.f * alpha * beta / static_cast<float>(size) * x[i] * acc;
    dx[i] = accumulate ? dx[i] + g : g;
  });
}

void bn_saved_variance(cudaStream_t stream, const float* inv_std, float* var, int64_t C, float eps) {
  launch(stream, C, [=] __device__(int64_t c) { var[c] = fmaxf(1.f / (inv_std[c] * inv_std[c]) - eps, 0.f); });
}

void increment(cudaStream_t stream, int64_t* count) {
  launch(stream, 1, [=] __device__(int64_t) { ++*count; });
}

void softmax_cross_entropy(cudaStream_t stream, const float* logits, const int32_t* labels, int64_t N, int64_t K,
                           float smoothing, float grad_scale, float* rows, float* grad, double* loss_sum,
                           int32_t* nonfinite) {
  if (N <= 0) return;
  xent_rows<<<blocks_for(N), kThreads, 0, stream>>>(logits, labels, N, K, smoothing, grad_scale, rows, grad);
  CUDA_CHECK(cudaGetLastError());
  xent_total<<<1, kThreads, 0, stream>>>(rows, N, loss_sum, nonfinite);
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
