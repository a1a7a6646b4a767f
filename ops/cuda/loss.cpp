// Softmax cross-entropy on the GPU: per-row losses in a buffer of the kernel's own, then fixed-order sums
// into the device accumulators (ops/cuda/elementwise.cu), so a step never waits for the device.
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/elementwise.h"

namespace convoy::ops::cuda {
namespace {

class CudaSoftmaxCrossEntropy final : public SoftmaxCrossEntropyKernel {
 public:
  CudaSoftmaxCrossEntropy(CudaBackend& be, int64_t N, int64_t K) : N_(N), K_(K) {
    CONVOY_CHECK(N > 0 && K > 1, "cross-entropy needs a batch and at least 2 classes, got N=" << N << " K=" << K);
    rows_ = Tensor::empty(Shape{3 * N}, DType::f32, be.allocator());
  }

  using SoftmaxCrossEntropyKernel::forward_backward;
  void forward_backward(ExecContext& ctx, const Tensor& logits, const Tensor& labels, const LossTerms& terms,
                        Tensor& dlogits, Tensor& loss_sum, Tensor& nonfinite) override {
    check(logits, labels);
    check_loss_terms(terms, N_, K_);
    CONVOY_CHECK(dlogits.numel() == N_ * K_, "cross-entropy writes (" << N_ << ", " << K_ << ") logit gradients, got "
                                                                      << dlogits.shape().str());
    CONVOY_CHECK(loss_sum.numel() == 1 && nonfinite.numel() == 1, "cross-entropy's loss sum and flag are scalars");
    XentTerms x{terms.smoothing, terms.weight * terms.loss_scale / static_cast<float>(N_), terms.mix_lambda,
                terms.teacher ? terms.teacher->data_as<float>() : nullptr, terms.temperature, terms.weight};
    softmax_cross_entropy(cuda_ctx(ctx).stream(), logits.data_as<float>(), labels.data_as<int32_t>(), N_, K_, x,
                          rows_.data_as<float>(), dlogits.data_as<float>(), loss_sum.data_as<double>(),
                          nonfinite.data_as<int32_t>());
  }

  void evaluate(ExecContext& ctx, const Tensor& logits, const Tensor& labels, const Tensor& valid, Tensor& sums) override {
    check(logits, labels);
    CONVOY_CHECK(valid.numel() == N_ && valid.dtype() == DType::u8,
                 "evaluation takes a (" << N_ << ") u8 mask of valid samples, got " << valid.shape().str() << " "
                                        << dtype_name(valid.dtype()));
    CONVOY_CHECK(sums.numel() == 3, "evaluation sums go into (3) f64, got " << sums.shape().str());
    softmax_cross_entropy_eval(cuda_ctx(ctx).stream(), logits.data_as<float>(), labels.data_as<int32_t>(),
                               valid.data_as<uint8_t>(), N_, K_, rows_.data_as<float>(), sums.data_as<double>());
  }

 private:
  // Shapes only: labels live on the device, so a label outside [0, K) shows as a non-finite loss.
  void check(const Tensor& logits, const Tensor& labels) const {
    CONVOY_CHECK(logits.numel() == N_ * K_ && labels.numel() == N_,
                 "cross-entropy expects (" << N_ << ", " << K_ << ") logits and " << N_ << " labels, got "
                                           << logits.shape().str() << " and " << labels.shape().str());
  }

  int64_t N_, K_;
  Tensor rows_;
};

}  // namespace

std::unique_ptr<SoftmaxCrossEntropyKernel> make_softmax_cross_entropy(CudaBackend& be, int64_t N, int64_t K) {
  return std::make_unique<CudaSoftmaxCrossEntropy>(be, N, K);
}

}  // namespace convoy::ops::cuda
