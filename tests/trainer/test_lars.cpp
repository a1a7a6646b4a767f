// LARS against a hand computation on LeNet-5's parameters: per weight tensor the trust ratio
// η·‖w‖ / (‖g‖ + wd·‖w‖) scales gradient and decay before momentum; biases are neither adapted nor decayed.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "ops/models/zoo.h"
#include "trainer/optimizer.h"

namespace convoy::trainer {
namespace {

TEST(Lars, UpdatesEveryTensorAsTheHandComputation) {
  auto backend = ops::make_backend("cpu", 1);
  auto graph = ops::make_model("lenet5", {10, 1, false});
  graph->setup(backend.get(), ops::Shape{2, 28, 28, 1});
  graph->init_params(5);
  const float lr = 0.5f, m = 0.9f, wd = 5e-4f, eta = 0.001f, scale = 0.25f;
  Sgd lars(*graph, SgdOptions{m, wd, false, false, true, eta});
  const auto& entries = graph->param_layout().entries();
  std::mt19937 rng(8);
  std::normal_distribution<float> normal;
  // Plain-layout host copies of w, v and the gradients the hand computation starts from.
  std::vector<std::vector<float>> w(entries.size()), v(entries.size());
  auto host = [](const ops::Tensor& t) { return std::vector<float>(t.host<float>(), t.host<float>() + t.numel()); };
  for (size_t i = 0; i < entries.size(); ++i) {
    w[i] = host(graph->export_entry(graph->params(), i));
    v[i].assign(w[i].size(), 0.f);
  }
  for (int step = 0; step < 2; ++step) {  // the second step carries momentum
    std::vector<std::vector<float>> g(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      g[i].resize(w[i].size());
      for (float& x : g[i]) x = normal(rng) * (i + 1);  // tensors of different gradient scales
      graph->import_entry(graph->grads(), i,
                          ops::Tensor::wrap(g[i].data(), entries[i].shape, ops::DType::f32));
    }
    lars.step(lr, scale);
    for (size_t i = 0; i < entries.size(); ++i) {
      const bool adapt = entries[i].role == ops::ParamRole::weight;
      double wn = 0, gn = 0;
      for (size_t j = 0; j < w[i].size(); ++j) wn += double(w[i][j]) * w[i][j], gn += double(g[i][j]) * g[i][j];
      wn = std::sqrt(wn), gn = std::sqrt(gn) * scale;
      const double trust = adapt ? eta * wn / (gn + wd * wn) : 1.0;
      const double decay = adapt ? wd : 0.0;
      for (size_t j = 0; j < w[i].size(); ++j) {
        const double d = trust * (g[i][j] * scale + decay * w[i][j]);
        v[i][j] = static_cast<float>(m * v[i][j] + d);
        w[i][j] = static_cast<float>(w[i][j] - lr * v[i][j]);
      }
      const std::vector<float> got = host(graph->export_entry(graph->params(), i));
      double diff = 0, norm = 0;
      for (size_t j = 0; j < w[i].size(); ++j)
        diff += double(got[j] - w[i][j]) * (got[j] - w[i][j]), norm += double(w[i][j]) * w[i][j];
      EXPECT_LT(std::sqrt(diff / norm), 1e-6) << entries[i].name << " at step " << step;
    }
  }
}

TEST(Lars, AZeroGradientLeavesTheTrustRatioAtOne) {
  auto backend = ops::make_backend("cpu", 1);
  auto graph = ops::make_model("lenet5", {10, 1, false});
  graph->setup(backend.get(), ops::Shape{2, 28, 28, 1});
  graph->init_params(5);
  const ops::Tensor before = graph->read("conv1.weight");
  Sgd lars(*graph, SgdOptions{0.9f, 0.f, false, false, true, 0.001f});
  lars.step(0.1f, 1.f);  // gradients are zero after set-up: nothing moves, and nothing is NaN
  const ops::Tensor after = graph->read("conv1.weight");
  for (int64_t j = 0; j < after.numel(); ++j) ASSERT_EQ(after.host<float>()[j], before.host<float>()[j]);
}

}  // namespace
}  // namespace convoy::trainer
