// The per-device kernel interface. Layers build kernels once per shape at set-up (a "plan": oneDNN
// primitive descriptors here, cuDNN descriptors and algorithms on a GPU) and then only execute them.
//
// Rules every backend and every layer keeps:
// - every call takes an explicit ExecContext (a stream: oneDNN's stream on the CPU, a CUDA stream
//   with its cuDNN/cuBLAS handles on a GPU); calls on one context run in order;
// - tensors handed to kernels live on the backend's device, and every kernel refuses one that does not
//   (ops/boundary.h); layers never touch their bytes;
// - scratch memory comes from the context's workspace, sized while plans are built, never during a step;
// - kernels overwrite their outputs, except that every dx has an `accumulate` flag (dx += ...), which
//   is how the graph sums the gradients of an activation that feeds several layers. Weight and bias
//   gradients are always overwritten.
// Shapes: activations NHWC (N, H, W, C); 2-d activations (N, C).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ops/arena.h"
#include "ops/tensor.h"

namespace convoy::ops {

// An execution stream plus the scratch workspace its kernels share.
class ExecContext {
 public:
  virtual ~ExecContext() = default;
  virtual Device device() const = 0;
  // The host waits until everything enqueued on this context has run.
  virtual void synchronize() = 0;
  // Scratch shared by kernels on this context; valid until the next kernel call on it.
  virtual void* workspace(size_t bytes) = 0;
};

// An ordering point between contexts: record() marks everything enqueued on a context so far;
// wait_on(other) makes `other` run nothing enqueued after the call until that point is reached (without
// blocking the host); synchronize() blocks the host until it is reached. A CUDA event on a GPU; on the
// CPU every kernel has finished when its call returns, so all three are trivially satisfied.
class Event {
 public:
  virtual ~Event() = default;
  virtual void record(ExecContext& ctx) = 0;
  virtual void wait_on(ExecContext& ctx) = 0;
  virtual void synchronize() = 0;
};

// --- kernel descriptions (shapes fixed at set-up) ---

struct ConvSpec {
  int64_t N = 1, H = 1, W = 1, C = 1;  // input (N, H, W, C)
  int64_t K = 1;                      // output channels
  int64_t R = 1, S = 1;               // kernel height, width
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;       // symmetric, as PyTorch's Conv2d
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  bool bias = false;
  bool fuse_relu = false;             // y = relu(conv(x) + b)
  DType dtype = DType::f32;

  int64_t out_h() const { return (H + 2 * pad_h - dilation_h * (R - 1) - 1) / stride_h + 1; }
  int64_t out_w() const { return (W + 2 * pad_w - dilation_w * (S - 1) - 1) / stride_w + 1; }
  Shape weight_shape() const { return Shape{K, C / groups, R, S}; }  // OIHW
};

class ConvKernel {
 public:
  virtual ~ConvKernel() = default;
  // The weights' device layout (packed); its plain layout is OIHW.
  virtual std::shared_ptr<const PackedLayout> weight_layout() const = 0;
  // x: (N, H, W, C)  w: packed  b: (K) or undefined  y: (N, OH, OW, K)
  virtual void forward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) = 0;
  // dx (may be null: not needed) overwritten or accumulated; dw, db (if bias) overwritten.
  // y is the forward output (used when ReLU is fused).
  virtual void backward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& dy,
                        Tensor* dx, bool accumulate_dx, Tensor& dw, Tensor* db) = 0;
  // "jit:avx2" and the like, per primitive: lets tests assert that nothing runs a reference kernel.
  virtual std::vector<std::string> implementations() const = 0;
};

struct BatchNormSpec {
  int64_t N = 1, H = 1, W = 1, C = 1;  // (N, H, W, C); 2-d input uses H = W = 1
  float eps = 1e-5f;
  float momentum = 0.1f;               // running = (1 - m) running + m batch (PyTorch's convention)
  bool fuse_relu = false;
  DType dtype = DType::f32;
};

class BatchNormKernel {
 public:
  virtual ~BatchNormKernel() = default;
  // Bytes of the forward-to-backward workspace (the ReLU mask when fused); 0 if none.
  virtual size_t saved_bytes() const = 0;
  // Training: batch statistics; writes saved_mean/saved_var (C, biased variance) and `saved`; updates
  // running_mean and running_var (unbiased) with momentum and increments num_batches_tracked (i64 scalar).
  virtual void forward_train(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y,
                             Tensor& saved_mean, Tensor& saved_var, Tensor& saved, Tensor& running_mean,
                             Tensor& running_var, Tensor& num_batches_tracked) = 0;
  // Evaluation: running statistics.
  virtual void forward_eval(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            const Tensor& running_mean, const Tensor& running_var, Tensor& y) = 0;
  // y: the forward output (a fused ReLU's backward needs it on cuDNN).
  virtual void backward(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                        const Tensor& saved_mean, const Tensor& saved_var, const Tensor& saved, const Tensor& dy,
                        Tensor* dx, bool accumulate_dx, Tensor& dgamma, Tensor& dbeta) = 0;
  virtual std::vector<std::string> implementations() const = 0;
};

// Synchronized batch norm (SyncBN): the batch statistics, and the sums its backward needs, over every
// rank's share of the global batch. The kernel computes one rank's partial sums and uses the summed
// ones; the sum over ranks is CrossRankSum's (declared here, implemented by comm/), which the layer calls
// in between. Every rank holds the same N*H*W values per channel, so count = N*H*W*ranks.
class CrossRankSum {
 public:
  virtual ~CrossRankSum() = default;
  virtual int ranks() const = 0;
  // t (f64, on the backend's device, written by kernels on ctx) = its sum over all ranks, in place; the
  // sum is in t when the call returns (ordered on ctx).
  virtual void sum(ExecContext& ctx, Tensor& t, const char* what) = 0;
};

class SyncBatchNormKernel {
 public:
  virtual ~SyncBatchNormKernel() = default;
  // sums (2C f64) = per channel [sum x, sum x^2] over this rank's values.
  virtual void moments(ExecContext& ctx, const Tensor& x, Tensor& sums) = 0;
  // With sums over all ranks of `count` values per channel: saved_mean, saved_var (C f32, biased) the
  // global statistics; y = gamma x_hat + beta (ReLU'd when fused); running statistics as BatchNormKernel's
  // (unbiased with count); num_batches_tracked + 1.
  virtual void normalize(ExecContext& ctx, const Tensor& x, const Tensor& sums, int64_t count, const Tensor& gamma,
                         const Tensor& beta, Tensor& y, Tensor& saved_mean, Tensor& saved_var, Tensor& running_mean,
                         Tensor& running_var, Tensor& num_batches_tracked) = 0;
  // sums (2C f64) = per channel [sum g, sum g x_hat] over this rank, g = dy (masked by y > 0 when fused);
  // dbeta, dgamma (C f32) = those same local sums: the gradient all-reduce averages them like every
  // parameter's gradient (PyTorch's SyncBatchNorm under DDP).
  virtual void grad_moments(ExecContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy,
                            const Tensor& saved_mean, const Tensor& saved_var, Tensor& sums, Tensor& dgamma,
                            Tensor& dbeta) = 0;
  // dx (+)= gamma inv_std (g - sum g / count - x_hat sum(g x_hat) / count), sums over all ranks.
  virtual void grad_input(ExecContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy, const Tensor& gamma,
                          const Tensor& saved_mean, const Tensor& saved_var, const Tensor& sums, int64_t count,
                          Tensor* dx, bool accumulate_dx) = 0;
};

enum class PoolKind : uint8_t { max, avg };

struct PoolSpec {
  int64_t N = 1, H = 1, W = 1, C = 1;
  PoolKind kind = PoolKind::max;
  int64_t kh = 1, kw = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;  // average pooling, as PyTorch's default
  DType dtype = DType::f32;

  // PyTorch's output size, including its ceil-mode rule (a window must start inside the input or
  // its left padding).
  int64_t out_h() const { return out_size(H, kh, stride_h, pad_h); }
  int64_t out_w() const { return out_size(W, kw, stride_w, pad_w); }
  int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p) const {
    int64_t num = in + 2 * p - k;
    int64_t o = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p) --o;
    return o;
  }
};

// What every backend refuses: an empty output, padding beyond half the window (PyTorch's rule).
void check_pool_spec(const PoolSpec& s);

class PoolKernel {
 public:
  virtual ~PoolKernel() = default;
  virtual size_t saved_bytes() const = 0;  // max pooling keeps the argmax for backward
  virtual void forward(ExecContext& ctx, const Tensor& x, Tensor& y, Tensor& saved, bool training) = 0;
  virtual void backward(ExecContext& ctx, const Tensor& dy, const Tensor& saved, Tensor& dx, bool accumulate_dx) = 0;
  virtual std::vector<std::string> implementations() const = 0;
};

// Adaptive average pooling (PyTorch's AdaptiveAvgPool2d, ops/math/window.h): (N, H, W, C) -> (N, OH, OW, C).
struct AdaptivePoolSpec {
  int64_t N = 1, H = 1, W = 1, C = 1;
  int64_t OH = 1, OW = 1;
  DType dtype = DType::f32;
};

class AdaptivePoolKernel {
 public:
  virtual ~AdaptivePoolKernel() = default;
  virtual void forward(ExecContext& ctx, const Tensor& x, Tensor& y) = 0;
  virtual void backward(ExecContext& ctx, const Tensor& dy, Tensor& dx, bool accumulate_dx) = 0;
  virtual std::vector<std::string> implementations() const = 0;
};

struct LinearSpec {
  int64_t N = 1;
  Shape in;  // per-sample input: (C) or NHWC (H, W, C); weights are (K, C*H*W) in PyTorch's NCHW flatten order
  int64_t K = 1;
  bool bias = true;
  bool fuse_relu = false;
  DType dtype = DType::f32;
  int64_t in_features() const { return in.numel(); }
};

class LinearKernel {
 public:
  virtual ~LinearKernel() = default;
  virtual std::shared_ptr<const PackedLayout> weight_layout() const = 0;
  // x: (N, ...in)  y: (N, K)
  virtual void forward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) = 0;
  virtual void backward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& dy,
                        Tensor* dx, bool accumulate_dx, Tensor& dw, Tensor* db) = 0;
  virtual std::vector<std::string> implementations() const = 0;
};

// Elementwise activation (ReLU).
class ReluKernel {
 public:
  virtual ~ReluKernel() = default;
  virtual void forward(ExecContext& ctx, const Tensor& x, Tensor& y) = 0;
  virtual void backward(ExecContext& ctx, const Tensor& y, const Tensor& dy, Tensor& dx, bool accumulate_dx) = 0;
  virtual std::vector<std::string> implementations() const = 0;
};

// y = a + b (optionally relu(a + b)); a, b, y the same shape.
class AddKernel {
 public:
  virtual ~AddKernel() = default;
  virtual void forward(ExecContext& ctx, const Tensor& a, const Tensor& b, Tensor& y) = 0;
  // da/db may be null (not needed), or one tensor (the graph gave both inputs one gradient buffer; then
  // neither accumulates).
  virtual void backward(ExecContext& ctx, const Tensor& y, const Tensor& dy, Tensor* da, bool accumulate_da,
                        Tensor* db, bool accumulate_db) = 0;
  virtual std::vector<std::string> implementations() const = 0;
};

// Channel concatenation of NHWC tensors that agree in N, H, W.
class ConcatKernel {
 public:
  virtual ~ConcatKernel() = default;
  virtual void forward(ExecContext& ctx, std::span<const Tensor* const> xs, Tensor& y) = 0;
  virtual void backward(ExecContext& ctx, const Tensor& dy, std::span<Tensor* const> dxs,
                        std::span<const bool> accumulate) = 0;
  virtual std::vector<std::string> implementations() const = 0;
};

struct LrnSpec {
  int64_t N = 1, H = 1, W = 1, C = 1;
  int64_t size = 5;
  float alpha = 1e-4f, beta = 0.75f, k = 1.f;  // PyTorch's LocalResponseNorm: alpha is divided by size
  DType dtype = DType::f32;
};

// Odd window sizes only (the windows of both backends agree for those).
void check_lrn_spec(const LrnSpec& s);

class LrnKernel {
 public:
  virtual ~LrnKernel() = default;
  virtual size_t saved_bytes() const = 0;
  virtual void forward(ExecContext& ctx, const Tensor& x, Tensor& y, Tensor& saved, bool training) = 0;
  virtual void backward(ExecContext& ctx, const Tensor& x, const Tensor& dy, const Tensor& saved, Tensor& dx,
                        bool accumulate_dx) = 0;
  virtual std::vector<std::string> implementations() const = 0;
};

// Inverted dropout: training keeps each element with probability 1 - p and scales it by 1/(1 - p);
// the keep decision is a pure function of (seed, step, element), so it needs no stored RNG state.
class DropoutKernel {
 public:
  virtual ~DropoutKernel() = default;
  virtual void forward(ExecContext& ctx, const Tensor& x, Tensor& y, uint64_t seed, uint64_t step) = 0;
  virtual void backward(ExecContext& ctx, const Tensor& dy, Tensor& dx, bool accumulate_dx, uint64_t seed,
                        uint64_t step) = 0;
};

// Softmax cross-entropy over (N, K) logits, mean over the batch, with label smoothing eps:
// target = (1 - eps) one_hot(label) + eps / K. Losses and counts stay on the device: the caller copies
// them back when it reports them (once per log interval), so a step never waits for the device.
// What the training loss is made of besides the labels (ops/math/elementwise.h, soft_xent_row).
struct LossTerms {
  float smoothing = 0.f;   // label smoothing eps
  float loss_scale = 1.f;  // the loss scaler's factor on the gradient (1 without one)
  // mixup: row n's target is mix_lambda * its own + (1 - mix_lambda) * row N-1-n's (the batch mixed with its
  // reverse); 1: no mixing.
  float mix_lambda = 1.f;
  // distillation: + T^2 KL(softmax(teacher / T) || softmax(logits / T)); teacher: (N, K) f32 on the device.
  const Tensor* teacher = nullptr;
  float temperature = 1.f;
  // The term's weight in the step's loss, on both the loss and its gradient (GoogLeNet's auxiliary
  // classifiers: 0.3).
  float weight = 1.f;
};

class SoftmaxCrossEntropyKernel {
 public:
  virtual ~SoftmaxCrossEntropyKernel() = default;
  // labels: (N) i32. Writes dlogits = d(weight * mean loss)/d logits * loss_scale; adds weight times the
  // batch's mean loss (unscaled) to loss_sum (f64 scalar) and sets nonfinite (i32 scalar) to 1 if that loss is not finite
  // (leaving it otherwise: micro-batches OR into one flag).
  virtual void forward_backward(ExecContext& ctx, const Tensor& logits, const Tensor& labels, const LossTerms& terms,
                                Tensor& dlogits, Tensor& loss_sum, Tensor& nonfinite) = 0;
  // Plain label-smoothed cross-entropy.
  void forward_backward(ExecContext& ctx, const Tensor& logits, const Tensor& labels, float smoothing,
                        float loss_scale, Tensor& dlogits, Tensor& loss_sum, Tensor& nonfinite) {
    LossTerms t;
    t.smoothing = smoothing, t.loss_scale = loss_scale;
    forward_backward(ctx, logits, labels, t, dlogits, loss_sum, nonfinite);
  }
  // Evaluation: over the samples whose valid (N, u8) is 1, adds the summed loss, top-1 hits and top-5
  // hits to sums (3, f64); padding duplicates (valid 0) count for nothing.
  virtual void evaluate(ExecContext& ctx, const Tensor& logits, const Tensor& labels, const Tensor& valid,
                        Tensor& sums) = 0;
};

// Throws for terms out of range: smoothing in [0, 1), mix_lambda in [0, 1], temperature > 0, a teacher of
// (N, K) f32 (every backend's loss kernel calls it).
void check_loss_terms(const LossTerms& terms, int64_t N, int64_t K);
// Throws unless x and out are f32 tensors of one shape with a batch dimension, out not x (mix_with_reverse).
void check_mix(const Tensor& x, float lambda, const Tensor& out);

struct SgdParams {
  float lr = 0.1f;
  float momentum = 0.9f;
  float weight_decay = 0.f;
  bool nesterov = false;
  float grad_scale = 1.f;  // multiplies the gradient first (gradient averaging, loss-scale removal)
};

// A device: its allocator, contexts and kernel factories.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;  // "cpu (oneDNN 2.6.3, 2 threads)"
  // Memory on this device (activations, arenas, kernel state).
  virtual Allocator& allocator() = 0;
  // Host memory this device copies from and to fastest (pinned on a GPU): loader batches, communication
  // staging buffers, values copied back for reports.
  virtual Allocator& staging_allocator() = 0;
  // The default execution context (stream) of this backend: every layer kernel runs on it.
  virtual ExecContext& context() = 0;
  // Another context (stream) for copies, casts and fills beside the default one (it has no workspace):
  // the trainer moves the next batch on one while the step computes.
  virtual std::unique_ptr<ExecContext> make_context() = 0;
  virtual std::unique_ptr<Event> make_event() = 0;
  // Grows the default context's workspace to at least `bytes`; called while plans are built.
  virtual void reserve_workspace(size_t bytes) = 0;
  // Calls of the device's raw allocator and free so far (cudaMalloc/cudaFree and the pinned ones behind
  // the caching allocators); 0 on the CPU, whose heap the allocation counter (common/alloc_counter.h) sees.
  virtual uint64_t raw_device_allocations() const { return 0; }

  virtual std::unique_ptr<ConvKernel> conv2d(const ConvSpec& spec) = 0;
  virtual std::unique_ptr<BatchNormKernel> batch_norm(const BatchNormSpec& spec) = 0;
  virtual std::unique_ptr<SyncBatchNormKernel> sync_batch_norm(const BatchNormSpec& spec) = 0;
  virtual std::unique_ptr<PoolKernel> pool2d(const PoolSpec& spec) = 0;
  virtual std::unique_ptr<AdaptivePoolKernel> adaptive_avg_pool2d(const AdaptivePoolSpec& spec) = 0;
  virtual std::unique_ptr<LinearKernel> linear(const LinearSpec& spec) = 0;
  virtual std::unique_ptr<ReluKernel> relu(const Shape& shape, DType dtype) = 0;
  virtual std::unique_ptr<AddKernel> add(const Shape& shape, bool fuse_relu, DType dtype) = 0;
  virtual std::unique_ptr<ConcatKernel> concat(std::span<const Shape> inputs, DType dtype) = 0;
  virtual std::unique_ptr<LrnKernel> lrn(const LrnSpec& spec) = 0;
  virtual std::unique_ptr<DropoutKernel> dropout(const Shape& shape, float p, DType dtype) = 0;
  virtual std::unique_ptr<SoftmaxCrossEntropyKernel> softmax_cross_entropy(int64_t N, int64_t K) = 0;

  // Memory movement: src and dst hold the same number of bytes; each lives on the host or on this device.
  virtual void copy(ExecContext& ctx, const Tensor& src, Tensor& dst) = 0;
  // Every element of t (f32, f64, i32, i64 or u8, on this device) = value.
  virtual void fill(ExecContext& ctx, Tensor& t, double value) = 0;
  // dst = src converted elementwise between f32 and bf16/f16 (round to nearest even; f16 overflows to
  // infinity), the same element count, both on this device: the 16-bit gradient wire format.
  virtual void cast(ExecContext& ctx, const Tensor& src, Tensor& dst) = 0;
  // w, v, g: f32 slices of one length of the parameter, momentum and gradient arenas. The update
  // PyTorch's SGD makes: d = g*scale + wd*w; v = m*v + d; w -= lr * (nesterov ? d + m*v : v).
  virtual void sgd_update(ExecContext& ctx, const SgdParams& p, Tensor& w, Tensor& v, const Tensor& g) = 0;
  // out (f64 scalar on this device) = the sum of the squares of x (f32): gradient and weight norms.
  virtual void sum_squares(ExecContext& ctx, const Tensor& x, Tensor& out) = 0;
  // dst (f32) = src (f32) stored as `storage` (f16 or bf16) and read back: round to nearest even, and for
  // f16 half's range (overflow to infinity, subnormals, underflow to zero). dst may be src. The fp16
  // emulation rounds every layer boundary with it.
  virtual void round_to(ExecContext& ctx, const Tensor& src, Tensor& dst, DType storage) = 0;
  // flag (i32 scalar on this device) = 1 when some element of x (f32) is not finite; otherwise it is left
  // as it was, so that several checks OR into one flag (the loss scaler's overflow check over gradients).
  virtual void check_finite(ExecContext& ctx, const Tensor& x, Tensor& flag) = 0;
  // dst += alpha * src (f32, the same element count, both on this device): gradient accumulation over
  // micro-batches (alpha 1), the mean of an evaluation's two views (alpha 0.5).
  virtual void add_into(ExecContext& ctx, const Tensor& src, Tensor& dst, float alpha) = 0;
  // out[n] = lambda x[n] + (1 - lambda) x[N-1-n] for every sample n of the first dimension (f32, both on this
  // device, out not x): mixup of a batch with its reverse.
  virtual void mix_with_reverse(ExecContext& ctx, const Tensor& x, float lambda, Tensor& out) = 0;
};

struct BackendOptions {
  int threads = 0;                     // CPU: compute threads (<= 0: all cores)
  int local_rank = 0, local_size = 1;  // cuda: this rank among the node's, to choose its GPU
  bool tf32 = true;                    // cuda: fp32 convolutions and matrix products may use TF32 tensor cores
  bool deterministic = false;          // cuda: deterministic cuDNN algorithms only
};

// A backend by the name users give it (train.device, --device): "cpu" (oneDNN), "cpu-strict" (the CPU
// kernels behind a device boundary that refuses host access: ops/strict, for tests) or "cuda" (cuDNN,
// cuBLAS and convoy's kernels on this rank's GPU; refused with what to do when this build has no CUDA
// backend).
std::unique_ptr<Backend> make_backend(const std::string& device, const BackendOptions& options);
std::unique_ptr<Backend> make_backend(const std::string& device, int threads = 0);
// The device names make_backend accepts in this build.
std::vector<std::string> backend_names();
// The instruction set oneDNN uses on this processor ("avx512_core_bf16", "avx2", ...), and whether it
// has native bf16 arithmetic (AVX-512 BF16 or AMX).
std::string cpu_isa();
bool cpu_has_bf16();
// Whether this build has the CUDA backend, and how many GPUs this process sees (0 without one).
bool has_cuda_backend();
int cuda_devices();

// The CPU backend on oneDNN. threads <= 0: all cores.
std::unique_ptr<Backend> make_cpu_backend(int threads = 0);
// The CPU backend behind the strict device boundary (ops/strict/strict_backend.h).
std::unique_ptr<Backend> make_strict_backend(int threads = 0);

// Host copies of device tensors and back, through the backend (they wait for the copy): for tests,
// reports and set-up, never inside a training step.
Tensor to_host(Backend& backend, const Tensor& device_tensor);
void from_host(Backend& backend, const Tensor& host_tensor, Tensor& device_tensor);

}  // namespace convoy::ops
