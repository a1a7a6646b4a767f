// Forward results against naive reference loops (tests/ops/reference.cpp).
#include <gtest/gtest.h>

#include <cmath>

#include "tests/ops/grad_check.h"
#include "tests/ops/reference.h"
#include "tests/ops/test_util.h"

namespace convoy::test {
namespace {

using ops::Shape;

void expect_close(const std::vector<float>& got, const std::vector<float>& want, float tol) {
  ASSERT_EQ(got.size(), want.size());
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::fabs(got[i] - want[i]) > tol * std::max(1.f, std::fabs(want[i])) && bad++ < 5)
      ADD_FAILURE() << "element " << i << ": got " << got[i] << ", want " << want[i];
  EXPECT_EQ(bad, 0u);
}

struct ConvCase {
  const char* name;
  ConvRef p;
  bool bias;
};

class ConvForward : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvForward, MatchesNaiveLoops) {
  const ConvRef& p = GetParam().p;
  ops::Conv2dOptions o;
  o.out_channels = p.K, o.kernel_h = p.R, o.kernel_w = p.S, o.stride = p.stride, o.padding = p.pad;
  o.dilation = p.dilation, o.groups = p.groups, o.bias = GetParam().bias;
  auto g = one_layer(ops::conv2d(o), Shape{p.N, p.H, p.W, p.C});
  std::vector<float> x = random_values(static_cast<size_t>(p.N * p.H * p.W * p.C), 21);
  std::vector<float> w = host_values(g->read("layer.weight"));
  std::vector<float> b = GetParam().bias ? host_values(g->read("layer.bias")) : std::vector<float>{};
  int64_t OH, OW;
  std::vector<float> want = conv2d_ref(p, x, w, b, OH, OW);
  EXPECT_EQ(g->output_shape(), (Shape{p.N, OH, OW, p.K}));
  expect_close(host_values(g->forward(device_tensor(g->input_shape(), x))), want, 1e-5f);
}

INSTANTIATE_TEST_SUITE_P(
    Conv2d, ConvForward,
    ::testing::Values(ConvCase{"k3_pad1", {2, 7, 7, 5, 8, 3, 3, 1, 1, 1, 1}, true},
                      ConvCase{"k3_stride2_pad1", {2, 9, 8, 4, 6, 3, 3, 2, 1, 1, 1}, false},
                      ConvCase{"k3_dilation2_pad2", {1, 9, 9, 3, 4, 3, 3, 1, 2, 2, 1}, true},
                      ConvCase{"k5_stride3_dilation2", {2, 13, 11, 3, 4, 5, 5, 3, 1, 2, 1}, false},
                      ConvCase{"groups4", {2, 6, 6, 8, 12, 3, 3, 1, 1, 1, 4}, true},
                      ConvCase{"depthwise", {2, 6, 6, 6, 6, 3, 3, 2, 1, 1, 6}, false},
                      ConvCase{"k1x3_pad1", {2, 5, 6, 3, 4, 1, 3, 1, 1, 1, 1}, true},
                      ConvCase{"k7_stride2_pad3", {2, 16, 16, 3, 8, 7, 7, 2, 3, 1, 1}, false},
                      ConvCase{"k3_on_2x2_many_channels", {4, 2, 2, 32, 32, 3, 3, 1, 1, 1, 1}, true},
                      // 16 channels at most: oneDNN's direct jit forward on AVX-512 (ops/cpu/conv.cpp)
                      ConvCase{"k3_16_to_16", {3, 10, 9, 16, 16, 3, 3, 1, 1, 1, 1}, false},
                      ConvCase{"k3_1_to_16", {3, 10, 9, 1, 16, 3, 3, 1, 1, 1, 1}, true},
                      // Output maps of at most 16 pixels: the CPU's GEMM convolution (ops/cpu/gemm_conv.h).
                      ConvCase{"k3_stride2_4x4_to_2x2", {3, 4, 4, 9, 7, 3, 3, 2, 1, 1, 1}, true},
                      ConvCase{"k1_on_2x2", {3, 2, 2, 24, 40, 1, 1, 1, 0, 1, 1}, true},
                      ConvCase{"k1_stride2_4x4_to_2x2", {2, 4, 4, 12, 20, 1, 1, 2, 0, 1, 1}, false},
                      ConvCase{"k3_dilation2_on_1x2", {2, 5, 6, 3, 5, 3, 3, 2, 0, 2, 1}, true}),
    [](const auto& info) { return std::string(info.param.name); });

// The CIFAR-style ResNets' first stage: oneDNN 2.6 picks brgconv on AVX-512, which its direct jit kernel
// beats at 16 channels (ops/cpu/conv.cpp); elsewhere (AVX2) there is no brgconv to skip.
TEST(ConvForwardChoice, AtMost16OutputChannelsSkipBrgconvInF32) {
  ops::Conv2dOptions o;
  o.out_channels = 16, o.kernel_h = o.kernel_w = 3, o.stride = 1, o.padding = 1;
  auto g = one_layer(ops::conv2d(o), Shape{8, 28, 28, 16});
  bool forward_listed = false;
  for (const std::string& impl : g->implementations())
    if (impl.find("convolution forward") != std::string::npos) {
      forward_listed = true;
      if (backend_name() == "cpu") EXPECT_EQ(impl.find("brgconv"), std::string::npos) << impl;
    }
  EXPECT_TRUE(forward_listed || backend_name() != "cpu");
}

struct PoolCase {
  const char* name;
  PoolRef p;
};

class PoolForward : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolForward, MatchesPyTorchSemantics) {
  const PoolRef& p = GetParam().p;
  ops::PoolOptions o;
  o.kernel = p.k, o.stride = p.stride, o.padding = p.pad, o.ceil_mode = p.ceil_mode;
  o.count_include_pad = p.count_include_pad;
  auto g = one_layer(p.max ? ops::max_pool2d(o) : ops::avg_pool2d(o), Shape{p.N, p.H, p.W, p.C});
  std::vector<float> x = random_values(static_cast<size_t>(p.N * p.H * p.W * p.C), 22);
  int64_t OH, OW;
  std::vector<float> want = pool2d_ref(p, x, OH, OW);
  EXPECT_EQ(g->output_shape(), (Shape{p.N, OH, OW, p.C}));
  expect_close(host_values(g->forward(device_tensor(g->input_shape(), x))), want, 1e-6f);
}

// Output sizes, for instance: 7x7 k3 s2 p1 -> 4; 6x6 k3 s2 p1 ceil -> 4 (the window past the edge);
// 5x5 k2 s2 p0 ceil -> 3; 5x5 k2 s3 p1 ceil -> 2 (PyTorch drops a window that would start in the right padding).
INSTANTIATE_TEST_SUITE_P(
    Pool2d, PoolForward,
    ::testing::Values(PoolCase{"max_k3s2p1", {2, 7, 7, 3, 3, 2, 1, true, false, true}},
                      PoolCase{"max_k2s2_ceil", {2, 5, 5, 3, 2, 2, 0, true, true, true}},
                      PoolCase{"max_k3s2p1_16_channels", {2, 7, 7, 16, 3, 2, 1, true, false, true}},
                      PoolCase{"max_k3s2p1_83_channels", {1, 7, 6, 83, 3, 2, 1, true, false, true}},
                      PoolCase{"max_k3s2p1_ceil", {2, 6, 6, 3, 3, 2, 1, true, true, true}},
                      PoolCase{"avg_k3s2p1_include_pad", {2, 7, 7, 3, 3, 2, 1, false, false, true}},
                      PoolCase{"avg_k3s2p1_exclude_pad", {2, 7, 7, 3, 3, 2, 1, false, false, false}},
                      PoolCase{"avg_k3s2p1_ceil_include_pad", {2, 6, 6, 3, 3, 2, 1, false, true, true}},
                      PoolCase{"avg_k3s2p1_ceil_exclude_pad", {2, 6, 6, 3, 3, 2, 1, false, true, false}},
                      PoolCase{"avg_k2s2_ceil_exclude_pad", {2, 5, 5, 3, 2, 2, 0, false, true, false}},
                      PoolCase{"avg_k2s3p1_ceil_drops_last_window", {1, 5, 5, 2, 2, 3, 1, false, true, true}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(BatchNormForward, TrainingUsesBatchStatisticsAndEvalUsesRunningOnes) {
  const int64_t N = 4, H = 3, W = 2, C = 5;
  auto g = one_layer(ops::batch_norm(), Shape{N, H, W, C});
  std::vector<float> gamma = random_values(C, 30, 0.5f, 2.f), beta = random_values(C, 31);
  g->write("layer.weight", host_tensor(Shape{C}, gamma));
  g->write("layer.bias", host_tensor(Shape{C}, beta));
  std::vector<float> x = random_values(static_cast<size_t>(N * H * W * C), 32, -3.f, 5.f);
  expect_close(host_values(g->forward(device_tensor(g->input_shape(), x))),
               batch_norm_ref(x, N * H * W, C, gamma, beta, 1e-5f), 1e-5f);

  // Evaluation: y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta.
  std::vector<float> rm = random_values(C, 33), rv = random_values(C, 34, 0.5f, 2.f);
  g->write("layer.running_mean", host_tensor(Shape{C}, rm));
  g->write("layer.running_var", host_tensor(Shape{C}, rv));
  g->set_training(false);
  std::vector<float> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    size_t c = i % C;
    want[i] = static_cast<float>((x[i] - rm[c]) / std::sqrt(rv[c] + 1e-5) * gamma[c] + beta[c]);
  }
  expect_close(host_values(g->forward(device_tensor(g->input_shape(), x))), want, 1e-5f);
}

TEST(BatchNormForward, RunningStatisticsFollowPyTorch) {
  // PyTorch: running = (1 - 0.1) running + 0.1 batch, with the batch variance unbiased (M / (M - 1)).
  const int64_t N = 3, H = 2, W = 2, C = 4, M = N * H * W;
  auto g = one_layer(ops::batch_norm(), Shape{N, H, W, C});
  std::vector<double> rm(C, 0.0), rv(C, 1.0);
  for (int step = 0; step < 3; ++step) {
    std::vector<float> x = random_values(static_cast<size_t>(M * C), 40 + step, -1.f + step, 2.f + 2 * step);
    g->forward(device_tensor(g->input_shape(), x));
    std::vector<double> mean, var;
    batch_norm_ref(x, M, C, std::vector<float>(C, 1.f), std::vector<float>(C, 0.f), 1e-5f, &mean, &var);
    for (int64_t c = 0; c < C; ++c) {
      rm[c] = 0.9 * rm[c] + 0.1 * mean[c];
      rv[c] = 0.9 * rv[c] + 0.1 * var[c] * M / (M - 1);
    }
  }
  std::vector<float> got_m = host_values(g->read("layer.running_mean"));
  std::vector<float> got_v = host_values(g->read("layer.running_var"));
  for (int64_t c = 0; c < C; ++c) {
    EXPECT_NEAR(got_m[c], rm[c], 1e-5) << "channel " << c;
    EXPECT_NEAR(got_v[c], rv[c], 1e-5) << "channel " << c;
  }
  EXPECT_EQ(g->read("layer.num_batches_tracked").host<int64_t>()[0], 3);
}

TEST(LinearForward, MatchesPyTorchFlattenOrder) {
  // Input (N, H, W, C); PyTorch flattens NCHW, so weight column (c, h, w) multiplies x[n, h, w, c].
  const int64_t N = 2, H = 2, W = 3, C = 4, K = 5;
  auto g = one_layer(ops::linear(K), Shape{N, H, W, C});
  std::vector<float> x = random_values(static_cast<size_t>(N * H * W * C), 50);
  std::vector<float> w = host_values(g->read("layer.weight")), b = host_values(g->read("layer.bias"));
  ASSERT_EQ(w.size(), static_cast<size_t>(K * C * H * W));
  std::vector<float> want(static_cast<size_t>(N * K));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      double acc = b[k];
      for (int64_t c = 0; c < C; ++c)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t ww = 0; ww < W; ++ww)
            acc += w[static_cast<size_t>(k * C * H * W + (c * H + h) * W + ww)] *
                   x[static_cast<size_t>(((n * H + h) * W + ww) * C + c)];
      want[static_cast<size_t>(n * K + k)] = static_cast<float>(acc);
    }
  expect_close(host_values(g->forward(device_tensor(g->input_shape(), x))), want, 1e-5f);
}

TEST(LrnForward, MatchesPyTorchFormula) {
  // PyTorch: y = x / (k + alpha/size * sum over the window of x^2)^beta, window c-size/2 .. c+(size-1)/2.
  const int64_t N = 2, H = 2, W = 2, C = 7, size = 5;
  const float alpha = 0.3f, beta = 0.75f, k = 2.f;
  auto g = one_layer(ops::local_response_norm(size, alpha, beta, k), Shape{N, H, W, C});
  std::vector<float> x = random_values(static_cast<size_t>(N * H * W * C), 51, -2.f, 2.f);
  std::vector<float> want(x.size());
  for (int64_t p = 0; p < N * H * W; ++p)
    for (int64_t c = 0; c < C; ++c) {
      double s = 0;
      for (int64_t j = c - size / 2; j <= c + (size - 1) / 2; ++j)
        if (j >= 0 && j < C) s += x[p * C + j] * x[p * C + j];
      want[p * C + c] = static_cast<float>(x[p * C + c] / std::pow(k + alpha / size * s, beta));
    }
  expect_close(host_values(g->forward(device_tensor(g->input_shape(), x))), want, 1e-5f);
}

TEST(ElementwiseForward, AddConcatDropout) {
  ops::Graph g("misc");
  std::string r = g.add("relu", ops::relu(), {ops::Graph::kInput});
  std::string s = g.add("sum", ops::add(), {r, ops::Graph::kInput});
  g.add("cat", ops::concat(), {s, ops::Graph::kInput});
  g.setup(&backend(), Shape{1, 2, 1, 3});
  std::vector<float> x{-1, 2, -3, 4, -5, 6};
  std::vector<float> want{-1, 4, -3, -1, 2, -3, 8, -5, 12, 4, -5, 6};
  expect_close(host_values(g.forward(device_tensor(g.input_shape(), x))), want, 0.f);

  auto d = one_layer(ops::dropout(0.25f), Shape{1, 100, 100, 1});
  std::vector<float> ones(10000, 1.f);
  std::vector<float> y = host_values(d->forward(device_tensor(d->input_shape(), ones)));
  int zeros = 0;
  for (float v : y) {
    if (v == 0.f) ++zeros;
    else EXPECT_FLOAT_EQ(v, 1.f / 0.75f);
  }
  EXPECT_NEAR(zeros, 2500, 200);  // 4.5 sigma
  d->set_training(false);
  expect_close(host_values(d->forward(device_tensor(d->input_shape(), ones))), ones, 0.f);
}

}  // namespace
}  // namespace convoy::test
