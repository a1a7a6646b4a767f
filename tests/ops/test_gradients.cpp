// A central-difference gradient check for every layer and kernel, on shapes small enough to nudge
// every input and parameter element.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "tests/ops/grad_check.h"
#include "tests/ops/test_util.h"

namespace convoy::test {
namespace {

using ops::Shape;

void expect_gradients_match(ops::Graph& g, const std::vector<float>& input, const GradCheckOptions& o = {}) {
  GradCheckResult r = check_gradients(g, input, o);
  EXPECT_EQ(r.failures, 0) << r.failures << " of " << r.checked << " elements differ; first: " << r.first_failure;
  EXPECT_GT(r.checked, 0);
  EXPECT_LE(r.kinks, (r.checked + r.kinks) / 5) << "too many elements skipped at ReLU kinks";
}

std::vector<float> input_for(const ops::Graph& g, uint64_t seed = 11) {
  return random_values(static_cast<size_t>(g.input_shape().numel()), seed);
}

ops::Conv2dOptions conv(int64_t k, int64_t kh, int64_t kw, int64_t stride, int64_t pad, int64_t dil, int64_t groups,
                        bool bias) {
  ops::Conv2dOptions o;
  o.out_channels = k, o.kernel_h = kh, o.kernel_w = kw, o.stride = stride, o.padding = pad;
  o.dilation = dil, o.groups = groups, o.bias = bias;
  return o;
}

TEST(Gradients, CheckerCatchesWrongGradients) {
  auto g = one_layer(ops::conv2d(conv(3, 3, 3, 1, 1, 1, 1, true)), Shape{2, 4, 4, 2});
  GradCheckOptions scaled;
  scaled.corrupt = 0.9;  // a gradient 10 % off
  EXPECT_GT(check_gradients(*g, input_for(*g), scaled).failures, 0);
  GradCheckOptions flipped;
  flipped.corrupt = -1;  // a wrong sign
  EXPECT_GT(check_gradients(*g, input_for(*g), flipped).failures, 0);
}

struct ConvCase {
  const char* name;
  ops::Conv2dOptions o;
  Shape input;
};

class ConvGradients : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvGradients, MatchCentralDifferences) {
  auto g = one_layer(ops::conv2d(GetParam().o), GetParam().input);
  expect_gradients_match(*g, input_for(*g));
}

INSTANTIATE_TEST_SUITE_P(
    Conv2d, ConvGradients,
    ::testing::Values(ConvCase{"k3_pad1_bias", conv(4, 3, 3, 1, 1, 1, 1, true), Shape{2, 5, 5, 3}},
                      ConvCase{"k3_stride2", conv(4, 3, 3, 2, 1, 1, 1, false), Shape{2, 6, 6, 3}},
                      ConvCase{"k3_dilation2", conv(3, 3, 3, 1, 2, 2, 1, true), Shape{1, 7, 7, 2}},
                      ConvCase{"groups2", conv(4, 3, 3, 1, 1, 1, 2, true), Shape{2, 4, 4, 4}},
                      ConvCase{"k1x3", conv(3, 1, 3, 1, 1, 1, 1, true), Shape{2, 4, 5, 2}},
                      ConvCase{"k1_stride2", conv(5, 1, 1, 2, 0, 1, 1, false), Shape{2, 5, 5, 3}},
                      ConvCase{"k7_stride2_pad3", conv(2, 7, 7, 2, 3, 1, 1, false), Shape{1, 9, 9, 3}},
                      // Output maps of at most 16 pixels: the CPU's GEMM convolution (ops/cpu/gemm_conv.h).
                      ConvCase{"k3_on_2x2_bias", conv(5, 3, 3, 1, 1, 1, 1, true), Shape{3, 2, 2, 4}},
                      ConvCase{"k1_on_2x2_bias", conv(5, 1, 1, 1, 0, 1, 1, true), Shape{3, 2, 2, 4}},
                      ConvCase{"k1_stride2_4x4_to_2x2", conv(3, 1, 1, 2, 0, 1, 1, false), Shape{2, 4, 4, 3}},
                      ConvCase{"k3_dilation2_to_1x2", conv(3, 3, 3, 2, 0, 2, 1, true), Shape{2, 5, 6, 2}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Gradients, ConvWithFusedRelu) {
  auto g = one_layer(ops::conv2d(conv(4, 3, 3, 1, 1, 1, 1, true)), Shape{2, 5, 5, 3}, true);
  ASSERT_EQ(g->num_layers(), 1u);
  EXPECT_EQ(g->layer(0).type(), "Conv2d+ReLU");
  expect_gradients_match(*g, input_for(*g));
}

TEST(Gradients, ConvOnSmallMapsTakesTheGemmConvolutionAndMatches) {
  // f32 output maps of at most 16 pixels take the CPU's GEMM convolution (ops/cpu/gemm_conv.h): here a
  // stride-2 3x3 from 4x4 to 2x2, as ResNet's layer4.0.conv2.
  auto s2 = one_layer(ops::conv2d(conv(8, 3, 3, 2, 1, 1, 1, false)), Shape{3, 4, 4, 5});
  if (backend().device().kind != ops::DeviceKind::cuda) {
    bool gemm = false;
    for (const auto& impl : s2->implementations()) gemm |= impl.find("convoy:gemm") != std::string::npos;
    EXPECT_TRUE(gemm);
  }
  expect_gradients_match(*s2, input_for(*s2));
  // With a bias and a fused ReLU, 16 channels on 2x2 maps.
  auto relu = one_layer(ops::conv2d(conv(16, 3, 3, 1, 1, 1, 1, true)), Shape{2, 2, 2, 16}, true);
  EXPECT_EQ(relu->layer(0).type(), "Conv2d+ReLU");
  expect_gradients_match(*relu, input_for(*relu));
  // 3x3 on 5x5 maps, just above that size: oneDNN's kernels, or convoy's im2col weight gradient where
  // oneDNN falls back to gemm there.
  auto above = one_layer(ops::conv2d(conv(16, 3, 3, 1, 1, 1, 1, true)), Shape{2, 5, 5, 16});
  expect_gradients_match(*above, input_for(*above));
}

TEST(Gradients, GemmConvolutionsAccumulateTheirInputGradient) {
  // As TwoConvolutionsReadingOneActivation, on 2x2 maps: a 1x1 (whose column gradient is dx itself) and
  // a 3x3 (folded back by col2im) both accumulate into one input's gradient.
  ops::Graph g("fork");
  std::string a = g.add("a", ops::conv2d(conv(3, 3, 3, 1, 1, 1, 1, false)), {ops::Graph::kInput});
  std::string s = g.add("stem", ops::conv2d(conv(4, 1, 1, 1, 0, 1, 1, true)), {ops::Graph::kInput});
  std::string b = g.add("b", ops::conv2d(conv(3, 1, 1, 1, 0, 1, 1, false)), {s});
  std::string c = g.add("c", ops::conv2d(conv(3, 3, 3, 1, 1, 1, 1, false)), {s});
  std::string bc = g.add("bc", ops::add(), {b, c});
  g.add("sum", ops::add(), {a, bc});
  g.set_input_grad(true);
  g.setup(&backend(), Shape{2, 2, 2, 3});
  g.init_params(7);
  expect_gradients_match(g, input_for(g));
}

TEST(Gradients, LinearOn2dInput) {
  auto g = one_layer(ops::linear(5), Shape{3, 7});
  expect_gradients_match(*g, input_for(*g));
}

TEST(Gradients, LinearOn4dInputWithFusedRelu) {
  auto g = one_layer(ops::linear(5), Shape{2, 3, 3, 4}, true);
  EXPECT_EQ(g->layer(0).type(), "Linear+ReLU");
  expect_gradients_match(*g, input_for(*g));
}

TEST(Gradients, BatchNorm4d) {
  auto g = one_layer(ops::batch_norm(), Shape{4, 3, 3, 3});
  // Random γ, β so that their gradients are not trivially symmetric.
  g->write("layer.weight", host_tensor(Shape{3}, {0.5f, -1.5f, 2.f}));
  g->write("layer.bias", host_tensor(Shape{3}, {0.1f, -0.2f, 0.3f}));
  expect_gradients_match(*g, input_for(*g));
}

TEST(Gradients, BatchNormWithFusedRelu) {
  auto g = one_layer(ops::batch_norm(), Shape{4, 3, 3, 3}, true);
  EXPECT_EQ(g->layer(0).type(), "BatchNorm+ReLU");
  g->write("layer.weight", host_tensor(Shape{3}, {0.5f, 1.5f, 2.f}));
  expect_gradients_match(*g, input_for(*g));
}

TEST(Gradients, BatchNorm2d) {
  auto g = one_layer(ops::batch_norm(), Shape{8, 3});
  g->write("layer.weight", host_tensor(Shape{3}, {0.5f, -1.5f, 2.f}));
  expect_gradients_match(*g, input_for(*g));
}

TEST(Gradients, Relu) {
  auto g = one_layer(ops::relu(), Shape{2, 3, 3, 4});
  expect_gradients_match(*g, input_for(*g));
}

struct PoolCase {
  const char* name;
  bool max;
  ops::PoolOptions o;
  Shape input;
};

ops::PoolOptions pool(int64_t k, int64_t s, int64_t p, bool ceil, bool include_pad) {
  ops::PoolOptions o;
  o.kernel = k, o.stride = s, o.padding = p, o.ceil_mode = ceil, o.count_include_pad = include_pad;
  return o;
}

class PoolGradients : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolGradients, MatchCentralDifferences) {
  const PoolCase& c = GetParam();
  auto g = one_layer(c.max ? ops::max_pool2d(c.o) : ops::avg_pool2d(c.o), c.input);
  expect_gradients_match(*g, distinct_values(static_cast<size_t>(c.input.numel()), 5));
}

INSTANTIATE_TEST_SUITE_P(
    Pool2d, PoolGradients,
    ::testing::Values(PoolCase{"max_k3s2p1", true, pool(3, 2, 1, false, true), Shape{2, 6, 6, 3}},
                      PoolCase{"max_k2s2_ceil", true, pool(2, 2, 0, true, true), Shape{2, 5, 5, 2}},
                      PoolCase{"avg_k3s2p1_include", false, pool(3, 2, 1, false, true), Shape{2, 6, 6, 3}},
                      PoolCase{"avg_k3s2p1_exclude", false, pool(3, 2, 1, false, false), Shape{2, 6, 6, 3}},
                      PoolCase{"avg_k3s2p1_ceil_include", false, pool(3, 2, 1, true, true), Shape{1, 6, 6, 2}},
                      PoolCase{"avg_k2s2_ceil_exclude", false, pool(2, 2, 0, true, false), Shape{2, 5, 5, 2}}),
    [](const auto& info) { return std::string(info.param.name); });

// Max pooling's gradient goes to the first maximum of its window in row-major order, as in PyTorch and
// oneDNN: after a ReLU, windows of zeros tie everywhere. Windows overlap (k3 s2), so an input element can
// collect gradient from several outputs; the sum runs in output order, here and in the kernel.
TEST(Gradients, MaxPoolTiesGoToTheFirstMaximumInTheWindow) {
  for (int64_t C : {5, 16, 83}) {
    SCOPED_TRACE("channels " + std::to_string(C));
    const int64_t N = 2, H = 7, W = 6, K = 3, S = 2, P = 1;
    auto g = one_layer(ops::max_pool2d(pool(K, S, P, false, true)), Shape{N, H, W, C});
    std::vector<float> x = random_values(static_cast<size_t>(N * H * W * C), 9);
    for (float& v : x) v = std::max(0.f, std::round(v * 2));  // 0, 1 or 2: ties in nearly every window
    g->forward(device_tensor(g->input_shape(), x));
    const Shape out = g->output_shape();
    const int64_t OH = out[1], OW = out[2];
    const std::vector<float> dy = random_values(static_cast<size_t>(out.numel()), 10);
    write_device(g->output_grad(), dy);
    g->backward();
    std::vector<float> want(x.size(), 0.f);
    auto at = [&](int64_t n, int64_t h, int64_t w, int64_t c) { return static_cast<size_t>(((n * H + h) * W + w) * C + c); };
    for (int64_t n = 0; n < N; ++n)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow)
          for (int64_t c = 0; c < C; ++c) {
            size_t best = SIZE_MAX;
            for (int64_t h = std::max<int64_t>(0, oh * S - P); h < std::min(H, oh * S - P + K); ++h)
              for (int64_t w = std::max<int64_t>(0, ow * S - P); w < std::min(W, ow * S - P + K); ++w)
                if (best == SIZE_MAX || x[at(n, h, w, c)] > x[best]) best = at(n, h, w, c);
            want[best] += dy[static_cast<size_t>(((n * OH + oh) * OW + ow) * C + c)];
          }
    const std::vector<float> got = host_values(g->input_grad());
    ASSERT_EQ(got.size(), want.size());
    int wrong = 0;
    for (size_t i = 0; i < got.size(); ++i) wrong += got[i] != want[i];
    EXPECT_EQ(wrong, 0) << "of " << got.size() << " input gradients";
  }
}

TEST(Gradients, GlobalAvgPool) {
  auto g = one_layer(ops::global_avg_pool(), Shape{2, 3, 4, 5});
  expect_gradients_match(*g, input_for(*g));
}

// Shrinking with overlapping windows (5 -> 3, 7 -> 2), growing with repeated rows (2 -> 3, 3 -> 4), and
// the identity (AlexNet and VGG at 224x224).
TEST(Gradients, AdaptiveAvgPool) {
  struct Case {
    Shape input;
    int64_t oh, ow;
  };
  for (const Case& c : {Case{Shape{2, 5, 7, 3}, 3, 2}, Case{Shape{1, 2, 3, 2}, 3, 4}, Case{Shape{1, 4, 4, 2}, 4, 4}}) {
    SCOPED_TRACE(c.input.str() + " -> " + std::to_string(c.oh) + "x" + std::to_string(c.ow));
    auto g = one_layer(ops::adaptive_avg_pool2d(c.oh, c.ow), c.input);
    expect_gradients_match(*g, input_for(*g));
  }
}

// PyTorch's windows by hand: rows [floor(o*in/out), ceil((o+1)*in/out)).
TEST(Forward, AdaptiveAvgPoolWindowsArePyTorchs) {
  auto down = one_layer(ops::adaptive_avg_pool2d(2, 1), Shape{1, 3, 1, 1});
  EXPECT_EQ(host_values(down->forward(device_tensor(Shape{1, 3, 1, 1}, {1.f, 2.f, 4.f}))),
            (std::vector<float>{1.5f, 3.f}));
  auto up = one_layer(ops::adaptive_avg_pool2d(3, 1), Shape{1, 2, 1, 1});
  EXPECT_EQ(host_values(up->forward(device_tensor(Shape{1, 2, 1, 1}, {2.f, 4.f}))),
            (std::vector<float>{2.f, 3.f, 4.f}));
}

TEST(Gradients, LocalResponseNorm) {
  auto g = one_layer(ops::local_response_norm(5, 0.5f, 0.75f, 1.f), Shape{2, 2, 2, 7});
  expect_gradients_match(*g, input_for(*g));
}

TEST(Gradients, Dropout) {
  auto g = one_layer(ops::dropout(0.3f), Shape{2, 4, 4, 3});
  expect_gradients_match(*g, input_for(*g));
}

// Concat and add read activations that other layers read too: the gradient of the input sums
// every reader's contribution (the accumulate paths).
TEST(Gradients, ConcatOfBranchesAndInput) {
  ops::Graph g("concat");
  std::string a = g.add("a", ops::conv2d(conv(2, 1, 1, 1, 0, 1, 1, true)), {ops::Graph::kInput});
  std::string b = g.add("b", ops::conv2d(conv(3, 3, 3, 1, 1, 1, 1, false)), {ops::Graph::kInput});
  g.add("cat", ops::concat(), {a, ops::Graph::kInput, b});
  g.set_input_grad(true);
  g.setup(&backend(), Shape{2, 3, 3, 2});
  g.init_params(4);
  expect_gradients_match(g, input_for(g));
}

TEST(Gradients, ResidualAddWithFusedRelu) {
  ops::Graph g("residual");
  std::string a = g.add("conv", ops::conv2d(conv(3, 3, 3, 1, 1, 1, 1, false)), {ops::Graph::kInput});
  a = g.add("bn", ops::batch_norm(), {a});
  std::string y = g.add("add", ops::add(), {a, ops::Graph::kInput});
  g.add("relu", ops::relu(), {y});
  g.set_input_grad(true);
  g.setup(&backend(), Shape{2, 4, 4, 3});
  g.init_params(5);
  ASSERT_EQ(g.num_layers(), 3u);
  EXPECT_EQ(g.layer(2).type(), "Add+ReLU");
  expect_gradients_match(g, input_for(g));
}

size_t layer_index(const ops::Graph& g, const std::string& name) {
  for (size_t i = 0; i < g.num_layers(); ++i)
    if (g.layer_name(i) == name) return i;
  ADD_FAILURE() << "no layer " << name;
  return 0;
}

bool share_gradient(const ops::Graph& g, const std::string& a, const std::string& b) {
  return g.activation_grad(layer_index(g, a)).data() == g.activation_grad(layer_index(g, b)).data();
}

// A ResNet basic block on an inner activation, identity and projection shortcuts: the sum's inputs share
// one gradient buffer (the branch's last BN and the block input; the two BNs), and the gradients still
// match, the block input's summing the shortcut's and conv1's contributions.
TEST(Gradients, ResidualBlocksShareTheSumsGradientBuffer) {
  ops::Graph g("blocks");
  std::string x = g.add("stem", ops::conv2d(conv(3, 3, 3, 1, 1, 1, 1, true)), {ops::Graph::kInput});
  std::string y = g.add("b1.conv1", ops::conv2d(conv(3, 3, 3, 1, 1, 1, 1, false)), {x});
  y = g.add("b1.bn1", ops::batch_norm(), {y});
  y = g.add("b1.conv2", ops::conv2d(conv(3, 3, 3, 1, 1, 1, 1, false)), {y});
  y = g.add("b1.bn2", ops::batch_norm(), {y});
  x = g.add("b1.add", ops::add(), {y, x});
  y = g.add("b2.conv1", ops::conv2d(conv(4, 3, 3, 2, 1, 1, 1, false)), {x});
  y = g.add("b2.bn1", ops::batch_norm(), {y});
  std::string s = g.add("b2.down", ops::conv2d(conv(4, 1, 1, 2, 0, 1, 1, false)), {x});
  s = g.add("b2.down.bn", ops::batch_norm(), {s});
  g.add("b2.add", ops::add(), {y, s});
  g.set_input_grad(true);
  g.setup(&backend(), Shape{2, 6, 6, 2});
  g.init_params(9);
  EXPECT_TRUE(share_gradient(g, "b1.bn2", "stem"));
  EXPECT_TRUE(share_gradient(g, "b2.bn1", "b2.down.bn"));
  EXPECT_FALSE(share_gradient(g, "b1.bn2", "b2.bn1"));
  // Four BNs deep, float32's rounding in the central difference grows as the step shrinks (at 1e-3 it
  // reaches the threshold, with sharing or without); there are no ReLU kinks to cross, so a larger step.
  GradCheckOptions o;
  o.step = 3e-3;
  expect_gradients_match(g, input_for(g), o);
}

// Where the other input's other reader runs backward before the only-read input's producer has read the
// gradient, the buffers stay apart: y = conv(x) + x (that reader is the producer), and c + x with x read by
// a later layer r as well (sharing would let r's contribution reach c's gradient).
TEST(Gradients, SumsWhoseInputsAreReadLaterKeepTheirGradientsApart) {
  ops::Graph g("apart");
  std::string x = g.add("stem", ops::conv2d(conv(2, 3, 3, 1, 1, 1, 1, true)), {ops::Graph::kInput});
  std::string c = g.add("conv", ops::conv2d(conv(2, 3, 3, 1, 1, 1, 1, false)), {x});
  x = g.add("add", ops::add(), {c, x});
  c = g.add("c", ops::conv2d(conv(2, 1, 1, 1, 0, 1, 1, false)), {ops::Graph::kInput});
  std::string r = g.add("r", ops::conv2d(conv(2, 1, 1, 1, 0, 1, 1, false)), {x});
  std::string s = g.add("s", ops::add(), {c, x});
  g.add("out", ops::add(), {s, r});
  g.set_input_grad(true);
  g.setup(&backend(), Shape{2, 3, 3, 2});
  g.init_params(10);
  EXPECT_FALSE(share_gradient(g, "conv", "stem"));
  EXPECT_FALSE(share_gradient(g, "c", "add"));
  EXPECT_TRUE(share_gradient(g, "s", "r"));
  expect_gradients_match(g, input_for(g));
}


TEST(Gradients, TwoConvolutionsReadingOneActivation) {
  // Both readers of the input are convolutions: the second to run backward accumulates its dx.
  ops::Graph g("fork");
  std::string a = g.add("a", ops::conv2d(conv(2, 3, 3, 1, 1, 1, 1, false)), {ops::Graph::kInput});
  std::string s = g.add("stem", ops::conv2d(conv(3, 1, 1, 1, 0, 1, 1, true)), {ops::Graph::kInput});
  std::string b = g.add("b", ops::conv2d(conv(2, 1, 1, 1, 0, 1, 1, false)), {s});
  std::string c = g.add("c", ops::conv2d(conv(2, 3, 3, 1, 1, 1, 1, false)), {s});
  std::string bc = g.add("bc", ops::add(), {b, c});
  g.add("sum", ops::add(), {a, bc});
  g.set_input_grad(true);
  g.setup(&backend(), Shape{2, 4, 4, 2});
  g.init_params(6);
  expect_gradients_match(g, input_for(g));
}

// An auxiliary head as GoogLeNet's (adaptive pool, 1x1 conv + BN, linear + ReLU, dropout, linear) reads
// an inner activation and is an extra output: that activation's gradient sums the main path's and the
// head's, and the checker projects both outputs.
std::unique_ptr<ops::Graph> graph_with_aux_head() {
  auto g = std::make_unique<ops::Graph>("aux");
  // No ReLU between the stem and the heads, nor after the head's BN: the checker sees kinks at the outputs
  // only, and with BN every nudge moves all of a channel's values across inner kinks.
  std::string x = g->add("stem", ops::conv2d(conv(3, 3, 3, 1, 1, 1, 1, false)), {ops::Graph::kInput});
  std::string y = g->add("aux.pool", ops::adaptive_avg_pool2d(2, 2), {x});
  y = g->add("aux.conv", ops::conv2d(conv(2, 1, 1, 1, 0, 1, 1, false)), {y});
  y = g->add("aux.bn", ops::batch_norm(), {y});
  ops::LinearOptions fc;
  fc.out_features = 4;
  y = g->add("aux.fc1", ops::linear(fc), {y});
  y = g->add("aux.fc1.relu", ops::relu(), {y});
  y = g->add("aux.dropout", ops::dropout(0.5f), {y});
  fc.out_features = 3;
  y = g->add("aux.fc2", ops::linear(fc), {y});
  std::string m = g->add("main.conv", ops::conv2d(conv(2, 3, 3, 2, 1, 1, 1, true)), {x});
  m = g->add("main.pool", ops::global_avg_pool(), {m});
  g->add("main.fc", ops::linear(fc), {m});
  g->add_output("aux", y, 0.3f);
  return g;
}

TEST(Gradients, ExtraOutputAuxiliaryHead) {
  auto g = graph_with_aux_head();
  g->set_input_grad(true);
  g->setup(&backend(), Shape{3, 5, 5, 2});
  g->init_params(8);
  ASSERT_EQ(g->num_extra_outputs(), 1u);
  EXPECT_EQ(g->extra_output_name(0), "aux");
  EXPECT_FLOAT_EQ(g->extra_output_loss_weight(0), 0.3f);
  EXPECT_EQ(g->extra_output(0).shape(), (Shape{3, 3}));
  expect_gradients_match(*g, input_for(*g));
}

// Evaluation runs only what the main output reads (torchvision skips its auxiliary heads), training all.
TEST(Graph, EvaluationSkipsLayersThatFeedOnlyExtraOutputs) {
  struct Counter final : ops::Graph::Observer {
    std::vector<std::string> ran;
    const ops::Graph* g = nullptr;
    void begin(size_t layer, bool backward) override {
      if (!backward) ran.push_back(g->layer_name(layer));
    }
    void end(size_t, bool) override {}
  };
  auto g = graph_with_aux_head();
  g->setup(&backend(), Shape{3, 5, 5, 2});
  g->init_params(8);
  Counter c;
  c.g = g.get();
  g->set_observer(&c);
  ops::Tensor x = device_tensor(g->input_shape(), input_for(*g));
  g->forward(x);
  const size_t training = c.ran.size();
  c.ran.clear();
  g->set_training(false);
  g->forward(x);
  for (const auto& name : c.ran) EXPECT_EQ(name.rfind("aux.", 0), std::string::npos) << name << " ran in evaluation";
  EXPECT_EQ(c.ran.size(), 4u);  // stem, main.conv, main.pool, main.fc
  EXPECT_EQ(training, 10u);     // and the head: pool, conv, BN, fc1 (+ReLU), dropout, fc2
}

TEST(Graph, ExtraOutputsAreCheckedWhenDeclared) {
  ops::Graph g("bad");
  std::string a = g.add("a", ops::relu(), {ops::Graph::kInput});
  EXPECT_THROW(g.add_output("x", "nothing", 0.3f), Error);
  EXPECT_THROW(g.add_output("x", a, 0.f), Error);
  g.add_output("x", a, 0.3f);
  EXPECT_THROW(g.add_output("x", a, 0.3f), Error);  // two outputs named x
  EXPECT_THROW(g.setup(&backend(), Shape{1, 2, 2, 1}), Error);  // the extra output is the main one
}

}  // namespace
}  // namespace convoy::test
