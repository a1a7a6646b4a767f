// The learning-rate schedule at chosen iterations, and the optimizer's update and decay rules.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/models/zoo.h"
#include "trainer/optimizer.h"
#include "trainer/schedule.h"

namespace convoy::trainer {
namespace {

TrainConfig base() {
  TrainConfig t;
  t.epochs = 10;
  t.batch_size = 1024;  // peak = 0.1 * 1024 / 256 = 0.4
  t.base_lr = 0.1;
  t.lr_reference_batch = 256;
  t.warmup_epochs = 2;
  return t;
}

TEST(Schedule, StepDecayWithWarmup) {
  TrainConfig t = base();
  t.schedule = "step";
  t.milestones = {5, 8};
  t.lr_decay = 0.1;
  LrSchedule s(t, 100);  // 100 steps per epoch; warmup = 200 iterations
  EXPECT_DOUBLE_EQ(s.peak(), 0.4);
  EXPECT_DOUBLE_EQ(s.at(0), 0.4 * 1 / 200);    // the first step already moves (Goyal et al.: i * lr / m)
  EXPECT_DOUBLE_EQ(s.at(99), 0.4 * 100 / 200);
  EXPECT_DOUBLE_EQ(s.at(199), 0.4);
  EXPECT_DOUBLE_EQ(s.at(200), 0.4);
  EXPECT_DOUBLE_EQ(s.at(499), 0.4);
  EXPECT_NEAR(s.at(500), 0.04, 1e-15);          // epoch 5
  EXPECT_NEAR(s.at(799), 0.04, 1e-15);
  EXPECT_NEAR(s.at(800), 0.004, 1e-15);         // epoch 8
  EXPECT_NEAR(s.at(999), 0.004, 1e-15);
}

TEST(Schedule, CosineWithWarmup) {
  TrainConfig t = base();
  t.schedule = "cosine";
  LrSchedule s(t, 100);  // cosine over iterations 200..1000
  EXPECT_DOUBLE_EQ(s.at(49), 0.4 * 50 / 200);
  EXPECT_DOUBLE_EQ(s.at(200), 0.4);
  EXPECT_NEAR(s.at(600), 0.2, 1e-12);           // halfway: (1 + cos(pi/2)) / 2
  EXPECT_NEAR(s.at(400), 0.4 * 0.5 * (1 + std::cos(M_PI * 200 / 800)), 1e-12);
  EXPECT_NEAR(s.at(1000), 0.0, 1e-12);
  EXPECT_GT(s.at(999), 0.0);
}

TEST(Schedule, NoWarmupStartsAtThePeak) {
  TrainConfig t = base();
  t.warmup_epochs = 0;
  t.schedule = "cosine";
  LrSchedule s(t, 10);
  EXPECT_DOUBLE_EQ(s.at(0), 0.4);
}

TEST(Optimizer, NoBiasDecaySparesBiasesAndBatchNorm) {
  auto g = ops::make_model("resnet18", {10, 3, false});
  auto be = ops::make_cpu_backend(1);
  g->setup(be.get(), ops::Shape{2, 32, 32, 3});
  Sgd all(*g, SgdOptions{0.9f, 1e-4f, false, false});
  Sgd some(*g, SgdOptions{0.9f, 1e-4f, false, true});
  int decayed = 0;
  for (size_t i = 0; i < g->param_layout().entries().size(); ++i) {
    const auto& e = g->param_layout().entry(i);
    EXPECT_TRUE(all.decays(i)) << e.name;
    const bool weight = e.name.ends_with(".weight") && e.shape.rank() > 1;  // conv and fc weights
    EXPECT_EQ(some.decays(i), weight) << e.name;
    decayed += some.decays(i);
  }
  EXPECT_EQ(decayed, 21);  // 20 convolutions + fc
}

TEST(Optimizer, UpdateIsPyTorchSgd) {
  // One step of torch.optim.SGD(lr, momentum, weight_decay, nesterov) by hand, twice (momentum builds).
  auto g = ops::make_model("lenet5");
  auto be = ops::make_cpu_backend(1);
  g->setup(be.get(), ops::Shape{1, 28, 28, 1});
  g->init_params(1);
  for (bool nesterov : {false, true}) {
    Sgd sgd(*g, SgdOptions{0.9f, 0.01f, nesterov, false});
    ops::Tensor w0 = g->read("fc3.bias");
    ops::Tensor grad = ops::Tensor::zeros_host(ops::Shape{10});
    for (int i = 0; i < 10; ++i) grad.host<float>()[i] = 0.1f * static_cast<float>(i) - 0.3f;
    // Gradients are written through the grads arena's view of fc3.bias.
    const size_t idx = g->param_layout().index_of("fc3.bias");
    std::vector<double> w(10), v(10, 0.0);
    for (int i = 0; i < 10; ++i) w[i] = w0.host<float>()[i];
    for (int step = 0; step < 2; ++step) {
      g->import_entry(g->grads(), idx, grad);
      sgd.step(0.5f, 2.0f);  // grad_scale 2
      for (int i = 0; i < 10; ++i) {
        double d = 2.0 * grad.host<float>()[i] + 0.01 * w[i];
        v[i] = 0.9 * v[i] + d;
        w[i] -= 0.5 * (nesterov ? d + 0.9 * v[i] : v[i]);
      }
    }
    ops::Tensor w2 = g->read("fc3.bias");
    for (int i = 0; i < 10; ++i) EXPECT_NEAR(w2.host<float>()[i], w[i], 1e-6) << i;
    g->write("fc3.bias", w0);
  }
}

}  // namespace
}  // namespace convoy::trainer
