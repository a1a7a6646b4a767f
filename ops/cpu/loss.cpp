// Softmax cross-entropy with label smoothing, one row per sample, over the shared math.
#include "ops/cpu/cpu_backend.h"
#include "ops/math/elementwise.h"

namespace convoy::ops::cpu {
namespace {

class CpuSoftmaxCrossEntropy final : public SoftmaxCrossEntropyKernel {
 public:
  CpuSoftmaxCrossEntropy(int64_t N, int64_t K) : N_(N), K_(K) {
    CONVOY_CHECK(N > 0 && K > 1, "cross-entropy needs a batch and at least 2 classes, got N=" << N << " K=" << K);
  }

  float forward_backward(ExecContext&, const Tensor& logits, const Tensor& labels, float smoothing,
                         Tensor& dlogits) override {
    check(logits, labels);
    CONVOY_CHECK(smoothing >= 0.f && smoothing < 1.f, "label smoothing must be in [0, 1), got " << smoothing);
    const float* x = logits.host<float>();
    const int32_t* y = labels.host<int32_t>();
    float* g = dlogits.host<float>();
    const float scale = 1.f / static_cast<float>(N_);
    double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int64_t n = 0; n < N_; ++n) total += math::softmax_xent_row(x + n * K_, K_, y[n], smoothing, g + n * K_, scale);
    return static_cast<float>(total / static_cast<double>(N_));
  }

  void evaluate(ExecContext&, const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& top1,
                Tensor& top5) override {
    check(logits, labels);
    const float* x = logits.host<float>();
    const int32_t* y = labels.host<int32_t>();
    float* l = loss.host<float>();
    int32_t* t1 = top1.host<int32_t>();
    int32_t* t5 = top5.host<int32_t>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N_; ++n) {
      l[n] = math::softmax_xent_row(x + n * K_, K_, y[n], 0.f, nullptr, 0.f);
      int64_t r = math::label_rank(x + n * K_, K_, y[n]);
      t1[n] = r < 1;
      t5[n] = r < 5;
    }
  }

 private:
  void check(const Tensor& logits, const Tensor& labels) const {
    CONVOY_CHECK(logits.numel() == N_ * K_ && labels.numel() == N_,
                 "cross-entropy expects (" << N_ << ", " << K_ << ") logits and " << N_ << " labels, got "
                                           << logits.shape().str() << " and " << labels.shape().str());
    const int32_t* y = labels.host<int32_t>();
    for (int64_t n = 0; n < N_; ++n)
      CONVOY_CHECK(y[n] >= 0 && y[n] < K_, "label " << y[n] << " of sample " << n << " in the batch is outside [0, "
                                                    << K_ << "): check num_classes against the data set");
  }

  int64_t N_, K_;
};

}  // namespace

std::unique_ptr<SoftmaxCrossEntropyKernel> make_softmax_cross_entropy(CpuBackend&, int64_t N, int64_t K) {
  return std::make_unique<CpuSoftmaxCrossEntropy>(N, K);
}

}  // namespace convoy::ops::cpu
