// The softmax cross-entropy kernel (label smoothing, the loss terms, accumulation, non-finite flags,
// ignored labels) against its definition and central differences, and the mixup and add_into helpers the
// loss path uses.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tests/ops/grad_check.h"
#include "tests/ops/test_util.h"

namespace convoy::test {
namespace {

using ops::Shape;

// The loss kernel on the device: the mean loss accumulates into a device scalar and the logit gradient
// is written beside it; both are read back through copies.
struct LossProbe {
  std::unique_ptr<ops::SoftmaxCrossEntropyKernel> loss;
  ops::Tensor labels, grad, sum, nonfinite;
  LossProbe(int64_t N, int64_t K, const std::vector<int32_t>& y)
      : loss(backend().softmax_cross_entropy(N, K)), labels(device_labels(y)) {
    ops::Allocator& a = backend().allocator();
    grad = ops::Tensor::empty(Shape{N, K}, ops::DType::f32, a);
    sum = ops::Tensor::empty(Shape{1}, ops::DType::f64, a);
    nonfinite = ops::Tensor::empty(Shape{1}, ops::DType::i32, a);
  }
  // The batch's mean loss at these logits (and the gradient in `grad`).
  double run(const std::vector<float>& logits, float eps) {
    backend().fill(backend().context(), sum, 0.0);
    loss->forward_backward(backend().context(), device_tensor(grad.shape(), logits), labels, eps, 1.f, grad, sum,
                           nonfinite);
    return host_values_as<double>(sum)[0];
  }
};

TEST(Gradients, SoftmaxCrossEntropyWithLabelSmoothing) {
  const int64_t N = 4, K = 6;
  const float eps = 0.1f;
  std::vector<int32_t> y(N);
  for (int64_t n = 0; n < N; ++n) y[n] = static_cast<int32_t>((n * 5 + 1) % K);
  LossProbe probe(N, K, y);
  std::vector<float> x = random_values(N * K, 9, -2.f, 2.f);
  const double l0 = probe.run(x, eps);
  const std::vector<float> grad = host_values(probe.grad);
  EXPECT_EQ(host_values_as<int32_t>(probe.nonfinite)[0], 0);

  // Hand computation in double: L = mean_n -sum_k t_nk log softmax_nk.
  double expected = 0;
  for (int64_t n = 0; n < N; ++n) {
    double mx = -1e30, z = 0;
    for (int64_t k = 0; k < K; ++k) mx = std::max<double>(mx, x[n * K + k]);
    for (int64_t k = 0; k < K; ++k) z += std::exp(x[n * K + k] - mx);
    for (int64_t k = 0; k < K; ++k) {
      double t = (k == y[n] ? 1 - eps : 0) + eps / K;
      double p = std::exp(x[n * K + k] - mx) / z;
      expected -= t * std::log(p) / N;
      EXPECT_NEAR(grad[n * K + k], (p - t) / N, 1e-6);
    }
  }
  EXPECT_NEAR(l0, expected, 1e-5);

  // And the gradient against central differences of the kernel's own loss.
  for (int64_t i = 0; i < N * K; ++i) {
    const float saved = x[i];
    x[i] = saved + 1e-2f;
    double lp = probe.run(x, eps);
    x[i] = saved - 1e-2f;
    double lm = probe.run(x, eps);
    x[i] = saved;
    EXPECT_NEAR(grad[i], (lp - lm) / 2e-2, 1e-3);
  }
}

// The training loss with mixup and distillation, written out in double from its definition (PyTorch's
// formula: cross-entropy against the soft target, plus T^2 * kl_div(log_softmax(s / T), softmax(t / T),
// reduction="batchmean")), against the kernel's loss and gradient.
double reference_loss(const std::vector<double>& z, const std::vector<int32_t>& y, int64_t K, double lambda, double eps,
                      const std::vector<float>& teacher, double T) {
  const int64_t N = static_cast<int64_t>(y.size());
  auto log_softmax = [&](const double* v, double temp, std::vector<double>& out) {
    double mx = -1e300, s = 0;
    for (int64_t k = 0; k < K; ++k) mx = std::max(mx, v[k] / temp);
    for (int64_t k = 0; k < K; ++k) s += std::exp(v[k] / temp - mx);
    out.resize(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) out[k] = v[k] / temp - mx - std::log(s);
  };
  double total = 0;
  std::vector<double> logp, logps, logq, t_row(static_cast<size_t>(K));
  for (int64_t n = 0; n < N; ++n) {
    log_softmax(&z[n * K], 1.0, logp);
    for (int64_t k = 0; k < K; ++k) {
      auto s = [&](int32_t label) { return (k == label ? 1 - eps : 0) + eps / K; };
      total -= (lambda * s(y[n]) + (1 - lambda) * s(y[N - 1 - n])) * logp[k];
    }
    if (!teacher.empty()) {
      for (int64_t k = 0; k < K; ++k) t_row[k] = teacher[n * K + k];
      log_softmax(&z[n * K], T, logps);
      log_softmax(t_row.data(), T, logq);
      for (int64_t k = 0; k < K; ++k) total += T * T * std::exp(logq[k]) * (logq[k] - logps[k]);
    }
  }
  return total / N;
}

struct TermsCase {
  const char* name;
  float lambda, eps, T;
  bool teacher;
};

class LossTerms : public ::testing::TestWithParam<TermsCase> {};

TEST_P(LossTerms, EqualTheirDefinitionAndItsCentralDifferences) {
  const TermsCase c = GetParam();
  const int64_t N = 4, K = 5;
  const std::vector<int32_t> y{1, 4, 0, 4};
  LossProbe probe(N, K, y);
  const std::vector<float> x = random_values(N * K, 21, -3.f, 3.f);
  const std::vector<float> teacher = c.teacher ? random_values(N * K, 22, -8.f, 8.f) : std::vector<float>{};
  ops::Tensor t = c.teacher ? device_tensor(Shape{N, K}, teacher) : ops::Tensor();
  ops::LossTerms terms;
  terms.smoothing = c.eps, terms.mix_lambda = c.lambda, terms.temperature = c.T;
  terms.teacher = c.teacher ? &t : nullptr;
  backend().fill(backend().context(), probe.sum, 0.0);
  probe.loss->forward_backward(backend().context(), device_tensor(Shape{N, K}, x), probe.labels, terms, probe.grad,
                               probe.sum, probe.nonfinite);
  const std::vector<float> grad = host_values(probe.grad);
  std::vector<double> z(x.begin(), x.end());
  const double want = reference_loss(z, y, K, c.lambda, c.eps, teacher, c.T);
  EXPECT_NEAR(host_values_as<double>(probe.sum)[0], want, 1e-5 * std::max(1.0, std::fabs(want)));
  for (int64_t i = 0; i < N * K; ++i) {
    const double h = 1e-5, zi = z[i];
    z[i] = zi + h;
    const double lp = reference_loss(z, y, K, c.lambda, c.eps, teacher, c.T);
    z[i] = zi - h;
    const double lm = reference_loss(z, y, K, c.lambda, c.eps, teacher, c.T);
    z[i] = zi;
    EXPECT_NEAR(grad[i], (lp - lm) / (2 * h), 2e-5 * std::max(1.0, double(c.T) * c.T)) << "logit " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Gradients, LossTerms,
                         ::testing::Values(TermsCase{"mixup", 0.3f, 0.f, 1.f, false},
                                           TermsCase{"mixup_smoothing", 0.7f, 0.1f, 1.f, false},
                                           TermsCase{"distill_T1", 1.f, 0.f, 1.f, true},
                                           TermsCase{"distill_T20_mixup_smoothing", 0.6f, 0.1f, 20.f, true}),
                         [](const auto& info) { return std::string(info.param.name); });

// mixup's input: each sample with its mirror in the batch.
TEST(Mixup, MixesEachSampleWithItsReverse) {
  ops::Tensor x = device_tensor(Shape{3, 2}, {1, 2, 3, 4, 5, 6});
  ops::Tensor out = ops::Tensor::empty(Shape{3, 2}, ops::DType::f32, backend().allocator());
  backend().mix_with_reverse(backend().context(), x, 0.25f, out);
  const std::vector<float> got = host_values(out);
  const std::vector<float> want{0.25f * 1 + 0.75f * 5, 0.25f * 2 + 0.75f * 6, 3, 4,
                                0.25f * 5 + 0.75f * 1, 0.25f * 6 + 0.75f * 2};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_FLOAT_EQ(got[i], want[i]) << i;
  EXPECT_THROW(backend().mix_with_reverse(backend().context(), x, 0.5f, x), Error);   // in place
  EXPECT_THROW(backend().mix_with_reverse(backend().context(), x, 1.5f, out), Error);  // not a weight
}

// dst += alpha * src: micro-batch accumulation (alpha 1) and the mean of two evaluation views (alpha 0.5).
TEST(AddInto, AddsTheScaledSourceIntoTheDestination) {
  ops::Tensor src = device_tensor(Shape{5}, {1, -2, 3, 0.5f, 8});
  ops::Tensor dst = device_tensor(Shape{5}, {10, 20, 30, 40, 50});
  backend().add_into(backend().context(), src, dst, 1.f);
  backend().add_into(backend().context(), src, dst, 0.5f);
  const std::vector<float> got = host_values(dst);
  const std::vector<float> want{11.5f, 17, 34.5f, 40.75f, 62};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_FLOAT_EQ(got[i], want[i]) << i;
  ops::Tensor shorter = device_tensor(Shape{4}, {1, 2, 3, 4});
  EXPECT_THROW(backend().add_into(backend().context(), shorter, dst, 0.5f), Error);
}

TEST(Gradients, CrossEntropyAccumulatesAndFlagsNonFiniteLosses) {
  const int64_t N = 2, K = 3;
  LossProbe probe(N, K, {0, 2});
  std::vector<float> x = random_values(N * K, 10);
  const double once = probe.run(x, 0.f);
  // Without a reset the sum accumulates: two steps give twice the loss.
  probe.loss->forward_backward(backend().context(), device_tensor(probe.grad.shape(), x), probe.labels, 0.f, 1.f,
                               probe.grad, probe.sum, probe.nonfinite);
  EXPECT_NEAR(host_values_as<double>(probe.sum)[0], 2 * once, 1e-9);
  x[4] = std::numeric_limits<float>::infinity();
  probe.run(x, 0.f);
  EXPECT_EQ(host_values_as<int32_t>(probe.nonfinite)[0], 1);
  x[4] = 0.5f;
  probe.run(x, 0.f);
  EXPECT_EQ(host_values_as<int32_t>(probe.nonfinite)[0], 1) << "a finite loss leaves the flag: micro-batches OR";
  backend().fill(backend().context(), probe.nonfinite, 0.0);
  probe.run(x, 0.f);
  EXPECT_EQ(host_values_as<int32_t>(probe.nonfinite)[0], 0);
}

TEST(Gradients, CrossEntropyScalesItsGradientButNotItsLoss) {
  const int64_t N = 3, K = 4;
  LossProbe probe(N, K, {1, 0, 3});
  const std::vector<float> x = random_values(N * K, 12);
  const double plain = probe.run(x, 0.1f);
  const std::vector<float> g1 = host_values(probe.grad);
  backend().fill(backend().context(), probe.sum, 0.0);
  probe.loss->forward_backward(backend().context(), device_tensor(probe.grad.shape(), x), probe.labels, 0.1f, 1024.f,
                               probe.grad, probe.sum, probe.nonfinite);
  EXPECT_NEAR(host_values_as<double>(probe.sum)[0], plain, 1e-9);  // the loss scaler scales gradients only
  const std::vector<float> g = host_values(probe.grad);
  for (size_t i = 0; i < g.size(); ++i) EXPECT_FLOAT_EQ(g[i], 1024.f * g1[i]) << i;
}

TEST(Gradients, CrossEntropyEvaluationCountsOnlyValidSamples) {
  const int64_t N = 3, K = 4;
  auto loss = backend().softmax_cross_entropy(N, K);
  // Sample 0: label 1 is the top logit; sample 1: label 0 ranks third; sample 2 (padding): ignored.
  ops::Tensor logits = device_tensor(Shape{N, K}, {0, 5, 1, 2, 1, 3, 2, 0, 9, 0, 0, 0});
  ops::Tensor labels = device_labels({1, 0, 0});
  ops::Tensor valid_host = ops::Tensor::zeros_host(Shape{N}, ops::DType::u8);
  valid_host.host<uint8_t>()[0] = valid_host.host<uint8_t>()[1] = 1;
  ops::Tensor valid = ops::Tensor::empty(Shape{N}, ops::DType::u8, backend().allocator());
  ops::from_host(backend(), valid_host, valid);
  ops::Tensor sums = ops::Tensor::empty(Shape{3}, ops::DType::f64, backend().allocator());
  backend().fill(backend().context(), sums, 0.0);
  loss->evaluate(backend().context(), logits, labels, valid, sums);
  const std::vector<double> s = host_values_as<double>(sums);
  auto xent = [](std::vector<double> z, int label) {
    double mx = *std::max_element(z.begin(), z.end()), sum = 0;
    for (double v : z) sum += std::exp(v - mx);
    return -(z[label] - mx - std::log(sum));
  };
  EXPECT_NEAR(s[0], xent({0, 5, 1, 2}, 1) + xent({1, 3, 2, 0}, 0), 1e-5);
  EXPECT_EQ(s[1], 1);  // top-1: sample 0 only
  EXPECT_EQ(s[2], 2);  // top-5 (of 4 classes): both valid samples
}

TEST(Gradients, CrossEntropyRejectsLabelsOutsideTheClasses) {
  LossProbe probe(2, 3, {0, 3});
  try {
    probe.run(std::vector<float>(6, 0.f), 0.f);
    FAIL() << "no error for label 3 with 3 classes";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 3 of sample 1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace convoy::test
