// Elementwise kernels, reductions, the optimizer update and the loss.
#include "ops/cuda/kernels.cuh"
#include "ops/math/elementwise.h"

namespace convoy::ops::cuda {
namespace {

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

void accumulate_scaled(cudaStream_t stream, float* dst, const float* src, int64_t n, float alpha) {
  launch(stream, n, [=] __device__(int64_t i) { dst[i] += alpha * src[i]; });
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

// The typed kernels behind the entry points below (f32, f16 and bf16 storage).
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

}  // namespace

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
