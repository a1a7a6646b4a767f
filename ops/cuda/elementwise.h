// Thin CUDA launches of the shared math (ops/math/*.h): each one a kernel over device pointers on a
// stream, checked at launch. Nothing here has run on a GPU on this project's machines (they have none);
// the math they launch is what the CPU tests cover.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace convoy::ops::cuda {

// The element type of activation tensors: ops::DType's f32, f16 and bf16 (nvcc compiles this header as
// C++17, so it cannot include ops/tensor.h; cuda_backend.h's elem() converts).
enum class Elem : uint8_t { f32, f16, bf16 };

// Elements per thread block of every launch.
constexpr int kThreads = 256;

// --- memory and arithmetic over flat arrays ---
template <typename T>
void fill(cudaStream_t stream, T* p, int64_t n, T value);  // float, double, int32_t, int64_t, uint8_t
void cast_to_half(cudaStream_t stream, const float* src, uint16_t* dst, int64_t n, bool bf16);
void cast_from_half(cudaStream_t stream, const uint16_t* src, float* dst, int64_t n, bool bf16);
// dst = src stored as f16 (or bf16) and read back; dst may be src.
void round_through_half(cudaStream_t stream, const float* src, float* dst, int64_t n, bool bf16);
// *flag = 1 when some x[i] is not finite (left as it is otherwise).
void flag_nonfinite(cudaStream_t stream, const float* x, int64_t n, int32_t* flag);
// dst = src, or dst += src.
void write_or_accumulate(cudaStream_t stream, float* dst, const float* src, int64_t n, bool accumulate);
// dst += alpha * src.
void accumulate_scaled(cudaStream_t stream, float* dst, const float* src, int64_t n, float alpha);
// out row n = lambda x row n + (1 - lambda) x row N-1-n, rows of `per` floats (mixup).
void mix_rows_with_reverse(cudaStream_t stream, const float* x, float* out, int64_t N, int64_t per, float lambda);
void sgd_update(cudaStream_t stream, float* w, float* v, const float* g, int64_t n, float lr, float momentum,
                float weight_decay, bool nesterov, float grad_scale);
// out[0] (device f64) = sum of x[i]^2, in a fixed order (the same result every run): partial sums of
// kReduceBlocks blocks into `partials` (device, kReduceBlocks doubles), then one block.
constexpr int kReduceBlocks = 256;
void sum_squares(cudaStream_t stream, const float* x, int64_t n, double* partials, double* out);

// --- activations, in the layers' dtype ---
// Activation tensors are f32, f16 or bf16 (t): the kernels compute in f32 and round once when they store.
// Pointers are device pointers of elements of t.
// dst = src, or dst += src, over n elements of t.
void write_or_accumulate(cudaStream_t stream, Elem t, void* dst, const void* src, int64_t n, bool accumulate);
void relu_forward(cudaStream_t stream, Elem t, const void* x, void* y, int64_t n);
// dx (+)= dy where y > 0.
void relu_backward(cudaStream_t stream, Elem t, const void* y, const void* dy, void* dx, int64_t n, bool accumulate);
void add_forward(cudaStream_t stream, Elem t, const void* a, const void* b, void* y, int64_t n, bool relu);
// d (+)= dy (masked by y > 0 when relu); d may be null.
void add_backward(cudaStream_t stream, Elem t, const void* y, const void* dy, void* da, bool acc_a, void* db,
                  bool acc_b, int64_t n, bool relu);
void dropout_forward(cudaStream_t stream, Elem t, const void* x, void* y, int64_t n, float p, uint64_t seed,
                     uint64_t step);
void dropout_backward(cudaStream_t stream, Elem t, const void* dy, void* dx, int64_t n, float p, uint64_t seed,
                      uint64_t step, bool accumulate);
// Rows of `width` elements from src (pitch src_pitch elements) added into dst (pitch dst_pitch): a concat's
// accumulating backward.
void strided_accumulate(cudaStream_t stream, Elem t, void* dst, int64_t dst_pitch, const void* src,
                        int64_t src_pitch, int64_t width, int64_t rows);

// y (N, K) row-major: y += b (b may be null, else K elements of t), then ReLU when relu: a linear
// layer's epilogue.
void bias_activation_rows(cudaStream_t stream, Elem t, void* y, const void* b, int64_t N, int64_t K, bool relu);
// db[k] (f32) = sum over the N rows of g (N, K) of t: a linear layer's bias gradient in half precision.
void bias_grad_rows(cudaStream_t stream, Elem t, const void* g, float* db, int64_t N, int64_t K);

// --- pooling (NHWC, PyTorch's windows: ops/math/window.h) ---
struct PoolShape {
  int64_t N, H, W, C, OH, OW, kh, kw, sh, sw, ph, pw;
  bool count_include_pad;
};
// argmax: the input index (h * W + w) of each output's maximum, for the backward pass.
void max_pool_forward(cudaStream_t stream, Elem t, const PoolShape& s, const void* x, void* y, int32_t* argmax);
void max_pool_backward(cudaStream_t stream, Elem t, const PoolShape& s, const void* dy, const int32_t* argmax,
                       void* dx, bool accumulate);
void avg_pool_forward(cudaStream_t stream, Elem t, const PoolShape& s, const void* x, void* y);
void avg_pool_backward(cudaStream_t stream, Elem t, const PoolShape& s, const void* dy, void* dx, bool accumulate);

// Adaptive average pooling (PyTorch's AdaptiveAvgPool2d; windows from ops/math/window.h).
struct AdaptiveShape {
  int64_t N, H, W, C, OH, OW;
};
void adaptive_avg_pool_forward(cudaStream_t stream, Elem t, const AdaptiveShape& s, const void* x, void* y);
void adaptive_avg_pool_backward(cudaStream_t stream, Elem t, const AdaptiveShape& s, const void* dy, void* dx,
                                bool accumulate);

// --- SyncBN (ops/backend.h SyncBatchNormKernel): NHWC rows x C channels, f64 sums, f32 statistics ---
struct SyncBnShape {
  int64_t rows, C;
  float eps, momentum;
  bool relu;
};
void sync_bn_moments(cudaStream_t stream, Elem t, const SyncBnShape& s, const void* x, double* sums);
// mean, var (biased), running statistics and the batch counter from the summed moments of `count` values.
void sync_bn_statistics(cudaStream_t stream, const SyncBnShape& s, const double* sums, int64_t count, float* mean,
                        float* var, float* running_mean, float* running_var, int64_t* num_batches_tracked);
void sync_bn_normalize(cudaStream_t stream, Elem t, const SyncBnShape& s, const void* x, const float* mean,
                       const float* var, const float* gamma, const float* beta, void* y);
void sync_bn_grad_moments(cudaStream_t stream, Elem t, const SyncBnShape& s, const void* x, const void* y,
                          const void* dy, const float* mean, const float* var, double* sums, float* dgamma,
                          float* dbeta);
void sync_bn_grad_input(cudaStream_t stream, Elem t, const SyncBnShape& s, const void* x, const void* y, const void* dy,
                        const float* gamma, const float* mean, const float* var, const double* sums, int64_t count,
                        void* dx, bool accumulate);

// --- local response normalisation across channels (NHWC), PyTorch's LocalResponseNorm ---
// scale = k + alpha/size * sum of x^2 over the channel window; y = x * scale^-beta. scale is kept (f32).
void lrn_forward(cudaStream_t stream, Elem t, const void* x, void* y, float* scale, int64_t pixels, int64_t C,
                 int64_t size, float alpha, float beta, float k);
void lrn_backward(cudaStream_t stream, Elem t, const void* x, const void* dy, const float* scale, void* dx,
                  int64_t pixels, int64_t C, int64_t size, float alpha, float beta, bool accumulate);

// --- batch-norm bookkeeping beside cuDNN ---
// var[c] = 1 / inv_std[c]^2 - eps (cuDNN saves the inverse standard deviation); ++*count.
void bn_saved_variance(cudaStream_t stream, const float* inv_std, float* var, int64_t C, float eps);
void increment(cudaStream_t stream, int64_t* count);

// --- softmax cross-entropy ---
// The loss terms of math::soft_xent_row: smoothing, gradient scale (loss scale / N), mixup's lambda (row n
// mixed with row N-1-n), a teacher's (N, K) logits (device, or null), the temperature, and the weight of
// the mean loss in loss_sum.
struct XentTerms {
  float smoothing, grad_scale, mix_lambda;
  const float* teacher;
  float temperature, weight;
};
// rows (N floats of workspace) = per-sample losses; grad = d loss / d logits * grad_scale; then
// loss_sum[0] += weight * mean of rows, nonfinite[0] = 1 if the mean is not finite (left as it is otherwise).
// A label outside [0, K) makes its row NaN (a device cannot stop the host to say so: the step's
// non-finite vote stops training instead).
void softmax_cross_entropy(cudaStream_t stream, const float* logits, const int32_t* labels, int64_t N, int64_t K,
                           const XentTerms& terms, float* rows, float* grad, double* loss_sum, int32_t* nonfinite);
// Evaluation: rows (3N floats of workspace) per sample, then sums[0..2] += loss, top-1, top-5 over valid rows.
void softmax_cross_entropy_eval(cudaStream_t stream, const float* logits, const int32_t* labels, const uint8_t* valid,
                                int64_t N, int64_t K, float* rows, double* sums);

// True when a CUDA device can run kernels (false on machines without a GPU or driver).
bool device_available();

}  // namespace convoy::ops::cuda
