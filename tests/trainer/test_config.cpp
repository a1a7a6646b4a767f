// Config parsing and validation: every error names the key and the file before any training starts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "ops/models/zoo.h"
#include "tests/trainer/fixtures.h"
#include "trainer/config.h"
#include "trainer/schedule.h"
#include "trainer/trainer.h"

namespace convoy::trainer {
namespace {

std::string data_dir() { return test::fashion_subset(64, 32); }

// The error message of parsing `yaml` (with overrides), or "" if it parsed.
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, "exp.yaml", overrides);
    return "";
  } catch (const Error& e) {
    return e.message();
  }
}

std::string valid_yaml() { return "model:\n  name: resnet18\ndata:\n  dir: " + data_dir() + "\ntrain:\n  epochs: 3\n"; }

TEST(Config, DefaultsFillWhatTheFileLeavesOut) {
  Config c = parse_config(valid_yaml(), "exp.yaml");
  EXPECT_EQ(c.model.name, "resnet18");
  EXPECT_EQ(c.train.epochs, 3);
  EXPECT_EQ(c.train.batch_size, 256);
  EXPECT_DOUBLE_EQ(c.train.base_lr, 0.1);
  EXPECT_EQ(c.train.schedule, "step");
  EXPECT_DOUBLE_EQ(c.train.momentum, 0.9);
  EXPECT_EQ(c.checkpoint.keep, 3);
}

TEST(Config, ResolvedYamlParsesBackToTheSameConfig) {
  Config c = parse_config(valid_yaml(), "exp.yaml", {"train.base_lr=0.25", "train.milestones=[1, 2]"});
  Config d = parse_config(c.to_yaml(), "resolved.yaml");
  EXPECT_EQ(c.to_yaml(), d.to_yaml());
  EXPECT_EQ(c.hash(), d.hash());
  EXPECT_DOUBLE_EQ(d.train.base_lr, 0.25);
  EXPECT_EQ(d.train.milestones, (std::vector<double>{1, 2}));
  EXPECT_NE(c.hash(), parse_config(valid_yaml(), "exp.yaml").hash());
}

TEST(Config, UnknownKeysAreNamedWithFileAndLine) {
  std::string e = error_of(valid_yaml() + "  learning_rate: 0.1\n");
  EXPECT_NE(e.find("exp.yaml:7"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'train.learning_rate'"), std::string::npos) << e;
  e = error_of(valid_yaml() + "optimizer:\n  lr: 1\n");
  EXPECT_NE(e.find("unknown key 'optimizer'"), std::string::npos) << e;
}

TEST(Config, WrongTypesAreNamed) {
  std::string e = error_of(valid_yaml() + "  batch_size: lots\n");
  EXPECT_NE(e.find("train.batch_size must be an integer, got 'lots'"), std::string::npos) << e;
  e = error_of(valid_yaml() + "  nesterov: maybe\n");
  EXPECT_NE(e.find("train.nesterov must be true or false"), std::string::npos) << e;
  e = error_of("model: resnet18\n");
  EXPECT_NE(e.find("model must be a mapping"), std::string::npos) << e;
}

TEST(Config, OutOfRangeValuesAreNamed) {
  struct Case {
    std::string override_, expect;
  };
  for (const Case& c : {Case{"train.base_lr=-0.1", "train.base_lr must be positive, got -0.1"},
                        Case{"train.momentum=1.5", "train.momentum must be in [0, 1)"},
                        Case{"train.schedule=linear", "train.schedule must be step or cosine"},
                        Case{"train.warmup_epochs=9", "train.warmup_epochs must be in [0, train.epochs]"},
                        Case{"train.milestones=[2, 1]", "train.milestones must increase"},
                        Case{"train.label_smoothing=1", "train.label_smoothing must be in [0, 1)"},
                        Case{"train.precision=fp8", "train.precision must be fp32, bf16, fp16 or auto"},
                        Case{"train.mixup_alpha=-1", "train.mixup_alpha must be in [0, 100]"},
                        Case{"train.teacher_model=resnet18", "train.teacher_model needs train.teacher"},
                        Case{"data.prefetch=1", "data.prefetch must be at least 2"},
                        Case{"train.device=gpu", "train.device must be cpu, cuda or cpu-strict, got 'gpu'"},
                        Case{"comm.backend=gloo", "comm.backend must be auto, mpi or nccl, got 'gloo'"},
                        Case{"comm.check=never", "comm.check must be step or collective, got 'never'"},
                        Case{"comm.algorithm=ring", "comm.algorithm must be flat or hierarchical, got 'ring'"},
                        Case{"comm.verify_every=-1", "comm.verify_every must not be negative"},
                        Case{"data.on_error=ignore", "data.on_error must be fail (stop at a damaged record, naming it) or skip"},
                        Case{"train.loss_scale_init=0.5", "train.loss_scale_init must be in [1, 2^24]"},
                        Case{"train.loss_scale_window=0", "train.loss_scale_window must be at least 1"},
                        Case{"train.accumulate_steps=0", "train.accumulate_steps must be at least 1"},
                        Case{"train.optimizer=adam", "train.optimizer must be sgd or lars"},
                        Case{"train.lars_trust=0", "train.lars_trust must be positive"},
                        Case{"checkpoint.keep=0", "checkpoint.keep must be at least 1"}}) {
    std::string e = error_of(valid_yaml(), {c.override_});
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.override_ << " gave: " << e;
    EXPECT_NE(e.find("exp.yaml"), std::string::npos) << e;
  }
}

TEST(Config, UnknownModelListsTheZoo) {
  std::string e = error_of(valid_yaml(), {"model.name=resnet51"});
  EXPECT_NE(e.find("model.name: unknown model 'resnet51'"), std::string::npos) << e;
  EXPECT_NE(e.find("resnet50d"), std::string::npos) << e;
}

TEST(Config, MissingDataDirectoryIsNamed) {
  std::string e = error_of(valid_yaml(), {"data.dir=/no/such/folder"});
  EXPECT_NE(e.find("data.dir must be an existing folder"), std::string::npos) << e;
  EXPECT_NE(e.find("/no/such/folder"), std::string::npos) << e;
  e = error_of(valid_yaml(), {"data.dir=" + test::temp_dir("empty-data")});
  EXPECT_NE(e.find("must hold an index.json"), std::string::npos) << e;
}

TEST(Config, OverridesMustNameKnownKeys) {
  std::string e = error_of(valid_yaml(), {"train.lr=0.1"});
  EXPECT_NE(e.find("--set train.lr: there is no key 'train.lr'"), std::string::npos) << e;
  e = error_of(valid_yaml(), {"train.base_lr"});
  EXPECT_NE(e.find("expected key=value"), std::string::npos) << e;
}

TEST(Config, BatchMustSplitOverTheRanks) {
  Config c = parse_config(valid_yaml(), "exp.yaml", {"train.batch_size=100"});
  c.validate_for_world(4);
  try {
    c.validate_for_world(3);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("train.batch_size 100 does not split evenly over 3 ranks"), std::string::npos)
        << e.message();
  }
  Config k = parse_config(valid_yaml(), "exp.yaml", {"train.batch_size=96", "train.accumulate_steps=4"});
  k.validate_for_world(2);  // 2 ranks x 4 micro-batches of 12
  try {
    k.validate_for_world(5);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("does not split evenly over 5 ranks"), std::string::npos) << e.message();
  }
  Config odd = parse_config(valid_yaml(), "exp.yaml", {"train.batch_size=96", "train.accumulate_steps=5"});
  try {
    odd.validate_for_world(2);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("does not split into 2 ranks x 5 micro-batches (train.accumulate_steps)"),
              std::string::npos)
        << e.message();
  }
}

// Every shipped config builds as far as this machine allows. The Fashion-MNIST ones build their whole
// trainer on a converted subset: model, data loaders (the sampler's plan of batches), optimizer and
// schedule. The ImageNet ones, whose data is not here, build their model at the config's input size
// with the parameter count of torchvision/timm, their schedule, and their batch split over 8 ranks.
TEST(Config, ShippedConfigsBuildTheirModelAndDataPlan) {
  const std::string dir = test::temp_dir("shipped");
  for (const char* name : {"fashion_mnist_quickstart", "fashion_mnist_tricks"}) {
    const std::string path = std::string(CONVOY_SOURCE_DIR) + "/configs/" + name + ".yaml";
    Config c = load_config(path, {"data.dir=" + test::fashion_subset(512, 128)});
    Trainer t(c, dir + "/" + name);
    EXPECT_EQ(t.graph().name(), c.model.name) << name;
    EXPECT_EQ(t.graph().input_shape(), (ops::Shape{c.train.batch_size, 28, 28, 1})) << name;
    EXPECT_EQ(t.graph().output_shape(), (ops::Shape{c.train.batch_size, 10})) << name;
    EXPECT_GT(t.graph().num_params(), 70000) << name;
    LrSchedule lr(c.train, 512 / c.train.batch_size);
    EXPECT_GT(lr.peak(), 0) << name;
  }
  const std::pair<const char*, int64_t> imagenet[] = {{"imagenet_resnet50_baseline", 25557032},
                                                      {"imagenet_resnet50d_tricks", 25576264}};
  for (const auto& [name, params] : imagenet) {
    const std::string path = std::string(CONVOY_SOURCE_DIR) + "/configs/" + name + ".yaml";
    Config c = load_config(path, {"data.dir=" + data_dir()});
    c.validate_for_world(8);
    auto g = ops::make_model(c.model.name, {1000, 3, c.model.zero_gamma});
    g->setup(nullptr, ops::Shape{c.train.batch_size / 8, c.data.image_size, c.data.image_size, 3});
    EXPECT_EQ(g->num_params(), params) << name;
    EXPECT_EQ(g->output_shape(), (ops::Shape{c.train.batch_size / 8, 1000})) << name;
    const int64_t steps = 1281167 / c.train.batch_size;  // ImageNet-1k's training images
    LrSchedule lr(c.train, steps);
    EXPECT_NEAR(lr.peak(), c.train.base_lr * static_cast<double>(c.train.batch_size) / 256, 1e-12) << name;
    EXPECT_NEAR(lr.at(lr.total_iterations() - 1), 0, lr.peak() * 0.01) << name;
  }
}

}  // namespace
}  // namespace convoy::trainer

namespace convoy::trainer {
namespace {

// Configs the fuzzer found (tools/fuzz.sh config): each is refused with convoy::Error, file and line.
TEST(Config, FuzzedInputsAreRefusedWithTheFileAndLine) {
  const std::filesystem::path dir = std::filesystem::path(CONVOY_SOURCE_DIR) / "tests/data/fuzz/config";
  int n = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(f.path());
    std::stringstream text;
    text << in.rdbuf();
    try {
      parse_config(text.str(), "fuzzed.yaml");
      ADD_FAILURE() << f.path() << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.message().rfind("fuzzed.yaml:", 0), 0u) << e.message();
    }
    ++n;
  }
  EXPECT_GE(n, 1);
}

}  // namespace
}  // namespace convoy::trainer
