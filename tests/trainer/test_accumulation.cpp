// Gradient accumulation: k = 4 micro-batches of 8 give the same optimizer steps as one batch of 32, on
// LeNet-5 (no batch norm, whose micro-batch statistics legitimately differ), within float summation order.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "ops/models/zoo.h"
#include "trainer/step.h"

namespace convoy::trainer {
namespace {

struct Learner {
  std::unique_ptr<ops::Backend> backend = ops::make_backend("cpu", 1);
  std::unique_ptr<ops::Graph> graph;
  std::unique_ptr<Sgd> sgd;
  std::unique_ptr<TrainStep> step;
  Learner(int64_t batch, int k) {
    graph = ops::make_model("lenet5", {10, 1, false});
    graph->setup(backend.get(), ops::Shape{batch, 28, 28, 1});
    graph->init_params(9);
    sgd = std::make_unique<Sgd>(*graph, SgdOptions{0.9f, 1e-4f, false, true});
    step = std::make_unique<TrainStep>(*graph, *sgd, StepPlanes{}, 10, 0.1f, nullptr, k);
  }
};

std::vector<float> values(ops::Graph& g) {
  ops::Tensor h = ops::to_host(g.backend(), g.params().flat());
  return std::vector<float>(h.host<float>(), h.host<float>() + h.numel());
}

TEST(Accumulation, FourMicroBatchesEqualOneBatchOfFourTimesTheSize) {
  Learner big(32, 1), small(8, 4);
  ASSERT_EQ(values(*big.graph), values(*small.graph));
  std::mt19937 rng(4);
  std::normal_distribution<float> normal;
  for (int s = 0; s < 3; ++s) {  // several steps: the accumulator starts over at every step
    ops::Tensor x = ops::Tensor::zeros_host(ops::Shape{32, 28, 28, 1});
    ops::Tensor y = ops::Tensor::zeros_host(ops::Shape{32}, ops::DType::i32);
    for (int64_t i = 0; i < x.numel(); ++i) x.host<float>()[i] = normal(rng);
    for (int i = 0; i < 32; ++i) y.host<int32_t>()[i] = (i * 7 + s) % 10;
    const TrainStep::Result a = big.step->run(x, y, 0.05, false, s);
    const size_t image = 28 * 28 * sizeof(float);
    for (int m = 0; m < 4; ++m)
      small.step->micro_batch(x.view(m * 8 * image, ops::Shape{8, 28, 28, 1}),
                              y.view(m * 8 * sizeof(int32_t), ops::Shape{8}));
    const TrainStep::Result b = small.step->finish(0.05, false, s);
    EXPECT_TRUE(a.applied && b.applied);
    const std::vector<float> p = values(*big.graph), q = values(*small.graph);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < p.size(); ++i) diff += double(p[i] - q[i]) * (p[i] - q[i]), norm += double(p[i]) * p[i];
    EXPECT_LT(std::sqrt(diff / norm), 1e-5) << "after step " << s;
  }
  // The step's loss is the mean of its micro-batches' (not their sum).
  EXPECT_NEAR(small.step->take_loss_sum(), big.step->take_loss_sum(), 1e-4);
}

TEST(Accumulation, AStepOfOneMicroBatchRefusesAStepOfFour) {
  Learner small(8, 4);
  ops::Tensor x = ops::Tensor::zeros_host(ops::Shape{8, 28, 28, 1});
  ops::Tensor y = ops::Tensor::zeros_host(ops::Shape{8}, ops::DType::i32);
  EXPECT_THROW(small.step->run(x, y, 0.1, false, 0), Error);
  small.step->micro_batch(x, y);
  EXPECT_THROW(small.step->finish(0.1, false, 0), Error);  // 1 of 4 micro-batches
}

}  // namespace
}  // namespace convoy::trainer
