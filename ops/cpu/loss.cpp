// Softmax cross-entropy with label smoothing, one row per sample, over the shared math.
#include <cmath>

#include "ops/cpu/cpu_backend.h"
#include "ops/math/elementwise.h"

namespace convoy::ops::cpu {
namespace {

class CpuSoftmaxCrossEntropy final : public SoftmaxCrossEntropyKernel {
 public:
  CpuSoftmaxCrossEntropy(int64_t N, int64_t K) : N_(N), K_(K) {
    CONVOY_CHECK(N > 0 && K > 1, "cross-entropy needs a batch and at least 2 classes, got N=" << N << " K=" << K);
  }

  using SoftmaxCrossEntropyKernel::forward_backward;
  void forward_backward(ExecContext&, const Tensor& logits, const Tensor& labels, const LossTerms& terms,
                        Tensor& dlogits, Tensor& loss_sum, Tensor& nonfinite) override {
    check(logits, labels);
    check_loss_terms(terms, N_, K_);
    CONVOY_CHECK(dlogits.numel() == N_ * K_, "cross-entropy writes (" << N_ << ", " << K_ << ") logit gradients, got "
                                                                      << dlogits.shape().str());
    const float* x = logits.data_as<float>();
    const int32_t* y = labels.data_as<int32_t>();
    const float* teacher = terms.teacher ? terms.teacher->data_as<float>() : nullptr;
    float* g = dlogits.data_as<float>();
    const float scale = terms.weight * terms.loss_scale / static_cast<float>(N_), lambda = terms.mix_lambda;
    const float eps = terms.smoothing, T = terms.temperature;
    const int64_t N = N_, K = K_;
    double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int64_t n = 0; n < N; ++n)
      total += math::soft_xent_row(x + n * K, K, y[n], y[N - 1 - n], lambda, eps, teacher ? teacher + n * K : nullptr,
                                   T, g + n * K, scale);
    const double mean = terms.weight * total / static_cast<double>(N_);
    scalar<double>(loss_sum, "loss_sum") += mean;
    if (!std::isfinite(mean)) scalar<int32_t>(nonfinite, "nonfinite") = 1;
  }

  void evaluate(ExecContext&, const Tensor& logits, const Tensor& labels, const Tensor& valid, Tensor& sums) override {
    check(logits, labels);
    CONVOY_CHECK(valid.numel() == N_ && valid.dtype() == DType::u8,
                 "evaluation takes a (" << N_ << ") u8 mask of valid samples, got " << valid.shape().str() << " "
                                        << dtype_name(valid.dtype()));
    CONVOY_CHECK(sums.numel() == 3, "evaluation sums go into (3) f64, got " << sums.shape().str());
    const float* x = logits.data_as<float>();
    const int32_t* y = labels.data_as<int32_t>();
    const uint8_t* ok = valid.data_as<uint8_t>();
    double loss = 0, top1 = 0, top5 = 0;
#pragma omp parallel for reduction(+ : loss, top1, top5) schedule(static)
    for (int64_t n = 0; n < N_; ++n) {
      if (!ok[n]) continue;  // padding duplicates
      loss += math::softmax_xent_row(x + n * K_, K_, y[n], 0.f, nullptr, 0.f);
      const int64_t r = math::label_rank(x + n * K_, K_, y[n]);
      top1 += r < 1;
      top5 += r < 5;
    }
    double* s = sums.data_as<double>();
    s[0] += loss, s[1] += top1, s[2] += top5;
  }

 private:
  void check(const Tensor& logits, const Tensor& labels) const {
    CONVOY_CHECK(logits.numel() == N_ * K_ && labels.numel() == N_,
                 "cross-entropy expects (" << N_ << ", " << K_ << ") logits and " << N_ << " labels, got "
                                           << logits.shape().str() << " and " << labels.shape().str());
    const int32_t* y = labels.data_as<int32_t>();
    for (int64_t n = 0; n < N_; ++n)
      CONVOY_CHECK(y[n] >= 0 && y[n] < K_, "label " << y[n] << " of sample " << n << " in the batch is outside [0, "
                                                    << K_ << "): check num_classes against the data set");
  }

  template <typename T>
  static T& scalar(Tensor& t, const char* what) {
    CONVOY_CHECK(t.numel() == 1, "cross-entropy's " << what << " is one element, got " << t.shape().str());
    return t.data_as<T>()[0];
  }

  int64_t N_, K_;
};

}  // namespace

std::unique_ptr<SoftmaxCrossEntropyKernel> make_softmax_cross_entropy(CpuBackend&, int64_t N, int64_t K) {
  return std::make_unique<CpuSoftmaxCrossEntropy>(N, K);
}

}  // namespace convoy::ops::cpu
