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
  CudaBatchNorm(CudaBackend& be, const BatchNormSpec& s)
      : s_(s), ops_(s.fuse_relu ? CUDNN_BATCHNORM_OPS_BN_ACTIVATION : CUDNN_BATCHNORM_OPS_BN), act_(true) {
    require_f32(s.dtype, "batch norm");
    CONVOY_CHECK(s.eps >= CUDNN_BN_MIN_EPSILON, "batch norm: eps " << s.eps << " is below cuDNN's minimum "
                                                                   << CUDNN_BN_MIN_EPSILON);
    x_.set_nhwc(s.N, s.H, s.W, s.C, s.dtype);
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&bn_));
    CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(bn_, x_.get(), kMode));
    cudnnHandle_t h = be.cuda_context().cudnn();
    cudnnActivationDescriptor_t act = s.fuse_relu ? act_.get() : nullptr;
    CUDNN_CHECK(cudnnGetBatchNormalizationTrainingExReserveSpaceSize(h, kMode, ops_, act, x_.get(), &reserve_));
    CUDNN_CHECK(cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(h, kMode, ops_, x_.get(), nullptr, x_.get(),
                                                                         bn_, act, &fwd_ws_));
    CUDNN_CHECK(cudnnGetBatchNormalizationBackwardExWorkspaceSize(h, kMode, ops_, x_.get(), x_.get(), x_.get(), nullptr,
                                                                  x_.get(), bn_, act, &bwd_ws_));
    inv_std_bytes_ = align256(static_cast<size_t>(s.C) * sizeof(float));
    dx_bytes_ = align256(static_cast<size_t>(s.N * s.H * s.W * s.C) * sizeof(float));
    // An accumulating dx goes through a scratch copy (cuDNN's beta blends, but not for every mode).
    be.reserve_workspace(std::max(fwd_ws_, dx_bytes_ + bwd_ws_));
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
    CUDNN_CHECK(cudnnBatchNormalizationForwardTrainingEx(
        c.cudnn(), kMode, ops_, &kOne, &kZero, x_.get(), x.data(), nullptr, nullptr, x_.get(), y.data(), bn_,
        gamma.data(), beta.data(), static_cast<double>(s_.momentum), running_mean.data(), running_var.data(),
        static_cast<double>(s_.eps), saved_mean.data(), inv_std, s_.fuse_relu ? act_.get() : nullptr,
        c.workspace(fwd_ws_), fwd_ws_, reserve_ ? sv + inv_std_bytes_ : nullptr, reserve_));
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
    if (s_.fuse_relu) relu_forward(c.stream(), y.data_as<float>(), y.data_as<float>(), y.numel());
  }

  void backward(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                const Tensor& saved_mean, const Tensor&, const Tensor& saved, const Tensor& dy, Tensor* dx,
                bool accumulate_dx, Tensor& dgamma, Tensor& dbeta) override {
    CudaContext& c = cuda_ctx(ctx);
    char* ws = static_cast<char*>(c.workspace(dx_bytes_ + bwd_ws_));
    char* sv = static_cast<char*>(saved.data());
    // cuDNN always writes dx: without a dx to keep, or when accumulating, into the workspace's head.
    float* out = dx && !accumulate_dx ? dx->data_as<float>() : reinterpret_cast<float*>(ws);
    CUDNN_CHECK(cudnnBatchNormalizationBackwardEx(
        c.cudnn(), kMode, ops_, &kOne, &kZero, &kOne, &kZero, x_.get(), x.data(), s_.fuse_relu ? x_.get() : nullptr,
        s_.fuse_relu ? y.data() : nullptr, x_.get(), dy.data(), nullptr, nullptr, x_.get(), out, bn_, gamma.data(),
        beta.data(), dgamma.data(), dbeta.data(), static_cast<double>(s_.eps), saved_mean.data(), sv,
        s_.fuse_relu ? act_.get() : nullptr, ws + dx_bytes_, bwd_ws_, reserve_ ? sv + inv_std_bytes_ : nullptr,
        reserve_));
    if (dx && accumulate_dx) write_or_accumulate(c.stream(), dx->data_as<float>(), out, dx->numel(), true);
  }

  std::vector<std::string> implementations() const override {
    return {s_.fuse_relu ? "cudnn batchnorm spatial-persistent bn+relu" : "cudnn batchnorm spatial-persistent"};
  }

 private:
  BatchNormSpec s_;
  cudnnBatchNormOps_t ops_;
  TensorDesc x_;
  cudnnTensorDescriptor_t bn_ = nullptr;
  ActivationDesc act_;
  size_t reserve_ = 0, fwd_ws_ = 0, bwd_ws_ = 0, inv_std_bytes_ = 0, dx_bytes_ = 0;
};

}  // namespace

std::unique_ptr<BatchNormKernel> make_batch_norm(CudaBackend& be, const BatchNormSpec& s) {
  return std::make_unique<CudaBatchNorm>(be, s);
}

}  // namespace convoy::ops::cuda
