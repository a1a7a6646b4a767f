// Bag of Tricks' training refinements in the training step: mixup (lambda ~ Beta(alpha, alpha) per step,
// the batch mixed with its reverse, mixed soft targets) and knowledge distillation (a teacher's logits at
// temperature T), wired through TrainStep and the trainer's config. The loss math itself is tested in
// tests/ops (LossTerms).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "datasets/loader.h"
#include "datasets/transforms.h"
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

// GoogLeNet's auxiliary classifiers (model.aux_logits): each head's loss joins the step's with weight 0.3,
// and its logit gradient is 0.3 times the head's own cross-entropy gradient.
double xent(const float* logits, int64_t K, int32_t y, std::vector<double>* grad) {
  double m = logits[0], z = 0;
  for (int64_t k = 1; k < K; ++k) m = std::max<double>(m, logits[k]);
  for (int64_t k = 0; k < K; ++k) z += std::exp(logits[k] - m);
  if (grad)
    for (int64_t k = 0; k < K; ++k) grad->push_back(std::exp(logits[k] - m) / z - (k == y ? 1.0 : 0.0));
  return std::log(z) + m - logits[y];
}

TEST(AuxiliaryClassifiers, AddTheirWeightedLossesToTheStep) {
  auto backend = ops::make_backend("cpu", 1);
  ops::ModelOptions o;
  o.num_classes = 10, o.in_channels = 1, o.aux_logits = true;
  auto graph = ops::make_model("googlenet", o);
  const int64_t N = 4, K = 10;
  graph->setup(backend.get(), ops::Shape{N, 32, 32, 1});
  graph->init_params(3);
  Sgd sgd(*graph, SgdOptions{0.9f, 0.f, false, true});
  TrainStep step(*graph, sgd, StepPlanes{}, K, 0.f);
  Batch b;
  ops::Tensor x = ops::Tensor::zeros_host(graph->input_shape());
  for (int64_t i = 0; i < x.numel(); ++i) x.host<float>()[i] = b.x.host<float>()[i % b.x.numel()];
  ops::Tensor y = ops::Tensor::zeros_host(ops::Shape{N}, ops::DType::i32);
  for (int64_t n = 0; n < N; ++n) y.host<int32_t>()[n] = static_cast<int32_t>(n * 3 % K);
  step.micro_batch(x, y);
  // The outputs the loss saw: the main logits (the last layer) and the two heads'.
  const ops::Tensor main = ops::to_host(*backend, graph->activation(graph->num_layers() - 1));
  ASSERT_EQ(main.numel(), N * K);
  double want = 0;
  for (int64_t n = 0; n < N; ++n) want += xent(main.host<float>() + n * K, K, y.host<int32_t>()[n], nullptr) / N;
  ASSERT_EQ(graph->num_extra_outputs(), 2u);
  for (size_t h = 0; h < 2; ++h) {
    const ops::Tensor aux = ops::to_host(*backend, graph->extra_output(h));
    const ops::Tensor grad = ops::to_host(*backend, graph->extra_output_grad(h));
    for (int64_t n = 0; n < N; ++n) {
      std::vector<double> g;
      want += 0.3 * xent(aux.host<float>() + n * K, K, y.host<int32_t>()[n], &g) / N;
      for (int64_t k = 0; k < K; ++k)
        EXPECT_NEAR(grad.host<float>()[n * K + k], 0.3 * g[static_cast<size_t>(k)] / N, 1e-6) << "head " << h;
    }
  }
  step.finish(0.0, false, 0);
  EXPECT_NEAR(step.take_loss_sum(), want, 1e-5);
}

// Through the config: GoogLeNet with its heads trains and evaluates (without them); elsewhere the key is refused.
TEST(AuxiliaryClassifiers, TrainThroughTheConfig) {
  const std::string data = test::fashion_subset(256, 128), yaml = test::small_config(data);
  const std::string dir = test::temp_dir("aux");
  Config c = parse_config(yaml, "aux.yaml", {"model.name=googlenet", "model.aux_logits=true", "train.epochs=1"});
  Trainer t(c, dir + "/googlenet");
  ASSERT_EQ(t.train(""), 0);
  ASSERT_TRUE(t.final_eval());
  EXPECT_GT(t.final_eval()->top1, 0.0);
  Config wrong = parse_config(yaml, "aux.yaml", {"model.aux_logits=true"});  // lenet5
  try {
    Trainer bad(wrong, dir + "/wrong");
    FAIL() << "lenet5 accepted model.aux_logits";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("aux_logits"), std::string::npos) << e.what();
  }
}

// eval.flip: each validation image and its mirror image run through the model and the mean of the two
// logits is scored. Recomputed here from the trained graph, batch by batch, on the host.
TEST(EvalFlip, ScoresTheMeanOfEachImagesAndItsMirrorsLogits) {
  const std::string data = test::fashion_subset(512, 80), yaml = test::small_config(data);
  Config c = parse_config(yaml, "flip.yaml", {"train.epochs=1", "eval.flip=true"});
  Trainer t(c, test::temp_dir("eval_flip"));
  ASSERT_EQ(t.train(""), 0);
  const EvalResult flipped = t.evaluate();
  ops::Graph& g = t.graph();
  g.set_training(false);
  datasets::LoaderOptions o;
  o.data_dir = data, o.split = "val", o.batch_size = c.train.batch_size, o.train = false, o.threads = 1;
  datasets::Loader val(o);
  val.start_epoch(0);
  double loss = 0, plain_loss = 0;
  int64_t hits = 0, samples = 0;
  for (int64_t b = 0; b < val.batches_per_epoch(); ++b) {
    const datasets::Batch* batch = val.next();
    ASSERT_NE(batch, nullptr);
    const ops::Shape shape{batch->n, batch->height, batch->width, batch->channels};
    ops::Tensor x = ops::Tensor::wrap(batch->images, shape, ops::DType::f32), m = ops::Tensor::zeros_host(shape);
    datasets::mirror_images(batch->images_f32(), batch->n, batch->height, batch->width, batch->channels,
                            m.host<float>());
    EXPECT_EQ(m.host<float>()[0], batch->images_f32()[batch->width - 1]);  // row 0's last pixel comes first
    const ops::Tensor a = ops::to_host(t.backend(), g.forward(x)), bm = ops::to_host(t.backend(), g.forward(m));
    const int64_t K = a.dim(1);
    for (int64_t n = 0; n < batch->n; ++n) {
      if (!batch->valid[n]) continue;
      std::vector<float> mean(static_cast<size_t>(K));
      for (int64_t k = 0; k < K; ++k) mean[k] = 0.5f * a.host<float>()[n * K + k] + 0.5f * bm.host<float>()[n * K + k];
      const int32_t y = batch->labels[n];
      loss += xent(mean.data(), K, y, nullptr);
      plain_loss += xent(a.host<float>() + n * K, K, y, nullptr);
      hits += std::max_element(mean.begin(), mean.end()) - mean.begin() == y;
      ++samples;
    }
  }
  g.set_training(true);
  ASSERT_EQ(samples, 80);
  EXPECT_EQ(flipped.samples, samples);
  EXPECT_NEAR(flipped.loss, loss / samples, 1e-5);
  EXPECT_DOUBLE_EQ(flipped.top1, static_cast<double>(hits) / samples);
  EXPECT_GT(std::abs(flipped.loss - plain_loss / samples), 1e-4);  // the mirrored view changed the score
}

}  // namespace
}  // namespace convoy::trainer
