// Batch norm on cuDNN (spatial persistent mode, NHWC, BN+ReLU fused where the graph fuses it). Running
// statistics are cuDNN's, kept as PyTorch keeps them on GPUs (cuDNN's exponential average with factor =
// momentum, unbiased running variance); cuDNN saves the inverse standard deviation, from which the
// kernel writes the biased batch variance the interface promises.
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/elementwise.h"

namespace convoy::ops::cuda {
namespace {

constexpr float kOne = 1.f, kZero = 0.f;
constexpr cudnnBatchNormMode_t kMode = CUDNN_BATCHNORM_SPATIAL_PERSISTENT;

size_t align256(size_t b) { return (b + 255) / 256 * 256; }

class CudaBatchNorm final : public BatchNormKernel {
 public:
  CudaBatchNorm(CudaBackend& be, const BatchNormSpec& s) : s_(s), act_(true) {
    require_float(s.dtype, "batch norm");
    CONVOY_CHECK(s.eps >= CUDNN_BN_MIN_EPSILON, "batch norm: eps " << s.eps << " is below cuDNN's minimum "
                                                                   << CUDNN_BN_MIN_EPSILON);
    x_.set_nhwc(s.N, s.H, s.W, s.C, s.dtype);
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&bn_));
    CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(bn_, x_.get(), kMode));
    cudnnHandle_t h = be.cuda_context().cudnn();
    Sizes plain;
    CUDNN_CHECK(sizes(h, CUDNN_BATCHNORM_OPS_BN, nullptr, plain));
    // x and y in the layer's dtype; γ, β, the statistics and the saved values are f32 (bn_ is derived).
    // cuDNN documents the fused BN+ReLU fast path for fp16 NHWC; where it refuses f32, ReLU runs as a
    // kernel of ours after batch norm (and its mask before batch norm's backward) with the same results.
    Sizes fused;
    fused_ = s.fuse_relu && sizes(h, CUDNN_BATCHNORM_OPS_BN_ACTIVATION, act_.get(), fused) == CUDNN_STATUS_SUCCESS;
    reserve_ = std::max(plain.reserve, fused_ ? fused.reserve : 0);
    inv_std_bytes_ = align256(static_cast<size_t>(s.C) * sizeof(float));
    dx_bytes_ = align256(static_cast<size_t>(s.N * s.H * s.W * s.C) * dtype_size(s.dtype));
    fwd_ws_ = std::max(plain.fwd, fused_ ? fused.fwd : 0);
    bwd_ws_ = std::max(plain.bwd, fused_ ? fused.bwd : 0);
    // Workspace: [accumulating dx scratch | masked dy (unfused ReLU) | cuDNN's own].
    be.reserve_workspace(std::max(fwd_ws_, 2 * dx_bytes_ + bwd_ws_));
  }
  ~CudaBatchNorm() override { cudnnDestroyTensorDescriptor(bn_); }

  // [inverse std (C floats) | cuDNN's reserve space]
  size_t saved_bytes() const override { return inv_std_bytes_ + reserve_; }

  void forward_train(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y,
                     Tensor& saved_mean, Tensor& saved_var, Tensor& saved, Tensor& running_mean, Tensor& running_var,
                     Tensor& num_batches_tracked) override {
    CudaContext& c = cuda_ctx(ctx);
    char* sv = static_cast<char*>(saved.data());
    float* inv_std = reinterpret_cast<float*>(sv);
    auto run = [&](cudnnBatchNormOps_t ops, cudnnActivationDescriptor_t act) {
      return cudnnBatchNormalizationForwardTrainingEx(
          c.cudnn(), kMode, ops, &kOne, &kZero, x_.get(), x.data(), nullptr, nullptr, x_.get(), y.data(), bn_,
          gamma.data(), beta.data(), static_cast<double>(s_.momentum), running_mean.data(), running_var.data(),
          static_cast<double>(s_.eps), saved_mean.data(), inv_std, act, c.workspace(fwd_ws_), fwd_ws_,
          reserve_ ? sv + inv_std_bytes_ : nullptr, reserve_);
    };
    cudnnStatus_t st = fused_ ? run(CUDNN_BATCHNORM_OPS_BN_ACTIVATION, act_.get()) : CUDNN_STATUS_NOT_SUPPORTED;
    if (st == CUDNN_STATUS_NOT_SUPPORTED) {
      fused_ = false;  // from now on: batch norm, then our ReLU (before any backward ran fused)
      CUDNN_CHECK(run(CUDNN_BATCHNORM_OPS_BN, nullptr));
      if (s_.fuse_relu) relu_forward(c.stream(), elem(s_.dtype), y.data(), y.data(), y.numel());
    } else {
      CUDNN_CHECK(st);
    }
    bn_saved_variance(c.stream(), inv_std, saved_var.data_as<float>(), s_.C, s_.eps);
    increment(c.stream(), num_batches_tracked.data_as<int64_t>());
  }

  void forward_eval(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                    const Tensor& running_mean, const Tensor& running_var, Tensor& y) override {
    CudaContext& c = cuda_ctx(ctx);
    CUDNN_CHECK(cudnnBatchNormalizationForwardInference(c.cudnn(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, x_.get(),
                                                        x.data(), x_.get(), y.data(), bn_, gamma.data(), beta.data(),
                                                        running_mean.data(), running_var.data(),
                                                        static_cast<double>(s_.eps)));
    if (s_.fuse_relu) relu_forward(c.stream(), elem(s_.dtype), y.data(), y.data(), y.numel());
  }

  void backward(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                const Tensor& saved_mean, const Tensor&, const Tensor& saved, const Tensor& dy, Tensor* dx,
                bool accumulate_dx, Tensor& dgamma, Tensor& dbeta) override {
    CudaContext& c = cuda_ctx(ctx);
    char* ws = static_cast<char*>(c.workspace(2 * dx_bytes_ + bwd_ws_));
    char* sv = static_cast<char*>(saved.data());
    // cuDNN always writes dx: without a dx to keep, or when accumulating, into the workspace's head.
    void* out = dx && !accumulate_dx ? dx->data() : ws;
    const void* g = dy.data();
    if (s_.fuse_relu && !fused_) {  // the ReLU's mask first, then plain batch norm
      void* masked = ws + dx_bytes_;
      relu_backward(c.stream(), elem(s_.dtype), y.data(), dy.data(), masked, dy.numel(), false);
      g = masked;
    }
    const bool act = s_.fuse_relu && fused_;
    CUDNN_CHECK(cudnnBatchNormalizationBackwardEx(
        c.cudnn(), kMode, act ? CUDNN_BATCHNORM_OPS_BN_ACTIVATION : CUDNN_BATCHNORM_OPS_BN, &kOne, &kZero, &kOne,
        &kZero, x_.get(), x.data(), act ? x_.get() : nullptr, act ? y.data() : nullptr, x_.get(), g, nullptr, nullptr,
        x_.get(), out, bn_, gamma.data(), beta.data(), dgamma.data(), dbeta.data(), static_cast<double>(s_.eps),
        saved_mean.data(), sv, act ? act_.get() : nullptr, ws + 2 * dx_bytes_, bwd_ws_,
        reserve_ ? sv + inv_std_bytes_ : nullptr, reserve_));
    if (dx && accumulate_dx) write_or_accumulate(c.stream(), elem(s_.dtype), dx->data(), out, dx->numel(), true);
  }

  std::vector<std::string> implementations() const override {
    if (!s_.fuse_relu) return {"cudnn batchnorm spatial-persistent"};
    return {fused_ ? "cudnn batchnorm spatial-persistent bn+relu" : "cudnn batchnorm spatial-persistent, convoy relu"};
  }

 private:
  struct Sizes {
    size_t reserve = 0, fwd = 0, bwd = 0;
  };
  // cuDNN's reserve and workspace sizes for one mode; a status other than success: the mode is refused.
  cudnnStatus_t sizes(cudnnHandle_t h, cudnnBatchNormOps_t ops, cudnnActivationDescriptor_t act, Sizes& z) const {
    cudnnStatus_t st = cudnnGetBatchNormalizationTrainingExReserveSpaceSize(h, kMode, ops, act, x_.get(), &z.reserve);
    if (st == CUDNN_STATUS_SUCCESS)
      st = cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(h, kMode, ops, x_.get(), nullptr, x_.get(), bn_,
                                                                    act, &z.fwd);
    if (st == CUDNN_STATUS_SUCCESS)
      st = cudnnGetBatchNormalizationBackwardExWorkspaceSize(h, kMode, ops, x_.get(), act ? x_.get() : nullptr,
                                                             x_.get(), nullptr, x_.get(), bn_, act, &z.bwd);
    return st;
  }

  BatchNormSpec s_;
  TensorDesc x_;
  cudnnTensorDescriptor_t bn_ = nullptr;
  ActivationDesc act_;
  bool fused_ = false;
  size_t reserve_ = 0, fwd_ws_ = 0, bwd_ws_ = 0, inv_std_bytes_ = 0, dx_bytes_ = 0;
};

// SyncBN over convoy's kernels (sync_batch_norm.cu); the layer sums the moments over ranks between the calls.
class CudaSyncBatchNorm final : public SyncBatchNormKernel {
 public:
  explicit CudaSyncBatchNorm(const BatchNormSpec& s)
      : t_(elem(s.dtype)), s_{s.N * s.H * s.W, s.C, s.eps, s.momentum, s.fuse_relu} {
    require_float(s.dtype, "sync batch norm");
  }
  void moments(ExecContext& ctx, const Tensor& x, Tensor& sums) override {
    sync_bn_moments(cuda_ctx(ctx).stream(), t_, s_, x.data(), sums.data_as<double>());
  }
  void normalize(ExecContext& ctx, const Tensor& x, const Tensor& sums, int64_t count, const Tensor& gamma,
                 const Tensor& beta, Tensor& y, Tensor& saved_mean, Tensor& saved_var, Tensor& running_mean,
                 Tensor& running_var, Tensor& num_batches_tracked) override {
    cudaStream_t st = cuda_ctx(ctx).stream();
    sync_bn_statistics(st, s_, sums.data_as<double>(), count, saved_mean.data_as<float>(), saved_var.data_as<float>(),
                       running_mean.data_as<float>(), running_var.data_as<float>(),
                       num_batches_tracked.data_as<int64_t>());
    sync_bn_normalize(st, t_, s_, x.data(), saved_mean.data_as<float>(), saved_var.data_as<float>(),
                      gamma.data_as<float>(), beta.data_as<float>(), y.data());
  }
  void grad_moments(ExecContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy, const Tensor& saved_mean,
                    const Tensor& saved_var, Tensor& sums, Tensor& dgamma, Tensor& dbeta) override {
    sync_bn_grad_moments(cuda_ctx(ctx).stream(), t_, s_, x.data(), y.data(), dy.data(), saved_mean.data_as<float>(),
                         saved_var.data_as<float>(), sums.data_as<double>(), dgamma.data_as<float>(),
                         dbeta.data_as<float>());
  }
  void grad_input(ExecContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy, const Tensor& gamma,
                  const Tensor& saved_mean, const Tensor& saved_var, const Tensor& sums, int64_t count, Tensor* dx,
                  bool accumulate_dx) override {
    if (!dx) return;
    sync_bn_grad_input(cuda_ctx(ctx).stream(), t_, s_, x.data(), y.data(), dy.data(), gamma.data_as<float>(),
                       saved_mean.data_as<float>(), saved_var.data_as<float>(), sums.data_as<double>(), count,
                       dx->data(), accumulate_dx);
  }

 private:
  Elem t_;
  SyncBnShape s_;
};

}  // namespace

std::unique_ptr<SyncBatchNormKernel> make_sync_batch_norm(CudaBackend&, const BatchNormSpec& s) {
  return std::make_unique<CudaSyncBatchNorm>(s);
}

std::unique_ptr<BatchNormKernel> make_batch_norm(CudaBackend& be, const BatchNormSpec& s) {
  return std::make_unique<CudaBatchNorm>(be, s);
}

}  // namespace convoy::ops::cuda
