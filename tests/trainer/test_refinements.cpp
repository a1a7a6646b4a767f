// Bag of Tricks' training refinements in the training step: mixup (lambda ~ Beta(alpha, alpha) per step,
// the batch mixed with its reverse, mixed soft targets) and knowledge distillation (a teacher's logits at
// temperature T), wired through TrainStep and the trainer's config. The loss math itself is tested in
// tests/ops (LossTerms).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "ops/models/zoo.h"
#include "tests/trainer/fixtures.h"
#include "trainer/config.h"
#include "trainer/mixup.h"
#include "trainer/step.h"
#include "trainer/trainer.h"

namespace convoy::trainer {
namespace {

TEST(Mixup, LambdaIsBetaDistributedAndAFunctionOfSeedAndStep) {
  for (double alpha : {0.2, 1.0, 4.0}) {
    double sum = 0, sq = 0;
    const int n = 20000;
    for (int s = 0; s < n; ++s) {
      const double l = mixup_lambda(7, s, alpha);
      ASSERT_GE(l, 0.0);
      ASSERT_LE(l, 1.0);
      sum += l, sq += l * l;
    }
    const double mean = sum / n, var = sq / n - mean * mean;
    EXPECT_NEAR(mean, 0.5, 0.01) << "alpha " << alpha;
    EXPECT_NEAR(var, 1.0 / (4 * (2 * alpha + 1)), 0.01) << "alpha " << alpha;  // Beta(a, a)'s variance
  }
  EXPECT_EQ(mixup_lambda(3, 41, 0.2), mixup_lambda(3, 41, 0.2));  // every rank draws the same
  EXPECT_NE(mixup_lambda(3, 41, 0.2), mixup_lambda(3, 42, 0.2));
  EXPECT_NE(mixup_lambda(3, 41, 0.2), mixup_lambda(4, 41, 0.2));
  EXPECT_THROW(mixup_lambda(1, 1, 0.0), Error);
}

struct Learner {
  std::unique_ptr<ops::Backend> backend = ops::make_backend("cpu", 1);
  std::unique_ptr<ops::Graph> graph;
  std::unique_ptr<Sgd> sgd;
  std::unique_ptr<TrainStep> step;
  explicit Learner(uint64_t seed = 9) {
    graph = ops::make_model("lenet5", {10, 1, false});
    graph->setup(backend.get(), ops::Shape{8, 28, 28, 1});
    graph->init_params(seed);
    sgd = std::make_unique<Sgd>(*graph, SgdOptions{0.9f, 0.f, false, true});
    step = std::make_unique<TrainStep>(*graph, *sgd, StepPlanes{}, 10, 0.f);
  }
  // One micro-batch's parameter gradients (no update).
  std::vector<float> gradients(const ops::Tensor& x, const ops::Tensor& y) {
    step->micro_batch(x, y);
    ops::Tensor g = ops::to_host(*backend, graph->grads().flat());
    std::vector<float> v(g.host<float>(), g.host<float>() + g.numel());
    step->finish(0.0, false, 0);
    return v;
  }
};

struct Batch {
  ops::Tensor x = ops::Tensor::zeros_host(ops::Shape{8, 28, 28, 1});
  ops::Tensor y = ops::Tensor::zeros_host(ops::Shape{8}, ops::DType::i32);
  Batch() {
    std::mt19937 rng(5);
    std::normal_distribution<float> normal;
    for (int64_t i = 0; i < x.numel(); ++i) x.host<float>()[i] = normal(rng);
    for (int i = 0; i < 8; ++i) y.host<int32_t>()[i] = (i * 3) % 10;
  }
};

double distance(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) d += double(a[i] - b[i]) * (a[i] - b[i]), n += double(a[i]) * a[i];
  return std::sqrt(d / n);
}

TEST(Mixup, TrainsOnTheMixedBatchAgainstTheMixedTargets) {
  Batch b;
  Learner plain, mixed, by_hand;
  mixed.step->use_mixup();
  // lambda 1: no mixing at all.
  mixed.step->set_mix_lambda(1.f);
  EXPECT_EQ(plain.gradients(b.x, b.y), mixed.gradients(b.x, b.y));
  // lambda 0.3: the same as feeding the mixed batch with the mixed loss by hand.
  mixed.step->set_mix_lambda(0.3f);
  const std::vector<float> g = mixed.gradients(b.x, b.y);
  ops::Tensor hand = ops::Tensor::zeros_host(b.x.shape());
  const int64_t per = 28 * 28;
  for (int64_t n = 0; n < 8; ++n)
    for (int64_t i = 0; i < per; ++i)
      hand.host<float>()[n * per + i] = 0.3f * b.x.host<float>()[n * per + i] + 0.7f * b.x.host<float>()[(7 - n) * per + i];
  const ops::Tensor& logits = by_hand.graph->forward(hand);
  ops::Tensor sum = ops::Tensor::zeros_host(ops::Shape{1}, ops::DType::f64), flag = ops::Tensor::zeros_host(ops::Shape{1}, ops::DType::i32);
  ops::LossTerms terms;
  terms.mix_lambda = 0.3f;
  by_hand.step->loss().forward_backward(by_hand.backend->context(), logits, b.y, terms, by_hand.graph->output_grad(), sum,
                                        flag);
  by_hand.graph->backward();
  ops::Tensor gh = ops::to_host(*by_hand.backend, by_hand.graph->grads().flat());
  EXPECT_LT(distance(g, std::vector<float>(gh.host<float>(), gh.host<float>() + gh.numel())), 1e-6);
  EXPECT_GT(distance(g, plain.gradients(b.x, b.y)), 1e-3);  // and mixing changes something
}

TEST(Distillation, ATeacherIdenticalToTheStudentAddsNothingAndAnotherOneDoes) {
  Batch b;
  Learner plain, student, twin(9), other(10);
  // The twin has the student's weights: KL(teacher || student) and its gradient are 0.
  student.step->use_teacher(*twin.graph, 20.f);
  const std::vector<float> alone = plain.gradients(b.x, b.y), with_twin = student.gradients(b.x, b.y);
  EXPECT_LT(distance(alone, with_twin), 1e-6);
  Learner student2;
  student2.step->use_teacher(*other.graph, 20.f);
  EXPECT_GT(distance(alone, student2.gradients(b.x, b.y)), 1e-2);
  // A teacher of another shape is refused with what differs.
  auto wide = ops::make_model("lenet5", {12, 1, false});
  wide->setup(student.backend.get(), ops::Shape{8, 28, 28, 1});
  EXPECT_THROW(student.step->use_teacher(*wide, 20.f), Error);
}

// Through the config: a resnet8 teacher trained one epoch, then a lenet5 student with mixup distilled
// from its checkpoint.
TEST(Distillation, AStudentTrainsFromATeacherCheckpointWithMixup) {
  const std::string data = test::fashion_subset(512, 128), yaml = test::small_config(data);
  const std::string dir = test::temp_dir("distill");
  Config tc = parse_config(yaml, "teacher.yaml", {"model.name=resnet8", "train.epochs=1"});
  Trainer teacher(tc, dir + "/teacher");
  ASSERT_EQ(teacher.train(""), 0);
  const std::string ckpt = teacher.checkpoints().list().at(0);
  Config sc = parse_config(yaml, "student.yaml",
                           {"train.epochs=2", "train.mixup_alpha=0.2", "train.teacher=" + ckpt,
                            "train.teacher_model=resnet8", "train.distill_temperature=4"});
  Trainer student(sc, dir + "/student");
  ASSERT_EQ(student.train(""), 0);
  ASSERT_TRUE(student.final_eval());
  EXPECT_GT(student.final_eval()->top1, 0.2);  // it learned (10 classes: chance is 0.1; 34 % here)
  // A teacher file of another model is refused naming the file and the model.
  Config wrong = parse_config(yaml, "student.yaml", {"train.teacher=" + ckpt});  // teacher_model: lenet5
  try {
    Trainer t(wrong, dir + "/wrong");
    FAIL() << "a resnet8 checkpoint loaded as a lenet5 teacher";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.teacher"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace convoy::trainer
