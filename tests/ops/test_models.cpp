// The model zoo: torchvision's parameter counts and names, no reference kernels in any zoo model,
// fusion that changes no result, and a small ResNet that can fit 64 samples.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "ops/models/zoo.h"
#include "tests/ops/grad_check.h"
#include "tests/ops/test_util.h"

namespace convoy::test {
namespace {

using ops::Shape;

int64_t count_params(const std::string& model) {
  auto g = ops::make_model(model);
  const ops::ModelInfo& m = ops::model_info(model);
  g->setup(nullptr, Shape{1, m.image_size, m.image_size, m.channels});
  return g->num_params();
}

TEST(Models, ParameterCountsEqualTorchvision) {
  EXPECT_EQ(count_params("lenet5"), 61706);
  EXPECT_EQ(count_params("resnet18"), 11689512);
  EXPECT_EQ(count_params("resnet34"), 21797672);
  EXPECT_EQ(count_params("resnet50"), 25557032);
  EXPECT_EQ(count_params("resnet50a"), 25557032);  // the stride moves, the weights do not change
  EXPECT_EQ(count_params("resnet50c"), 25576264);  // timm's resnet50c
  EXPECT_EQ(count_params("resnet50d"), 25576264);  // timm's resnet50d
  EXPECT_EQ(count_params("resnet101"), 44549160);
  EXPECT_EQ(count_params("resnet152"), 60192808);
  EXPECT_EQ(count_params("resnet20"), 272474);     // 1x1-projection shortcuts (option B)
  EXPECT_EQ(count_params("resnet14"), 175258);     // torchvision's BasicBlock, as the others
  EXPECT_EQ(count_params("alexnet"), 61100840);
  EXPECT_EQ(count_params("vgg11"), 132863336);
  EXPECT_EQ(count_params("vgg11_bn"), 132868840);
  EXPECT_EQ(count_params("vgg13"), 133047848);
  EXPECT_EQ(count_params("vgg13_bn"), 133053736);
  EXPECT_EQ(count_params("vgg16"), 138357544);
  EXPECT_EQ(count_params("vgg16_bn"), 138365992);
  EXPECT_EQ(count_params("vgg19"), 143667240);
  EXPECT_EQ(count_params("vgg19_bn"), 143678248);
  EXPECT_EQ(count_params("googlenet"), 6624904);  // torchvision's without the auxiliary heads
  EXPECT_EQ(count_params("densenet121"), 7978856);
  EXPECT_EQ(count_params("densenet161"), 28681000);
  EXPECT_EQ(count_params("densenet169"), 14149480);
  EXPECT_EQ(count_params("densenet201"), 20013928);
  EXPECT_EQ(count_params("nin"), 1992166);  // d2l's Fashion-MNIST NiN (1 channel, 10 classes)
}

// A CIFAR-style ResNet's width multiplies its 16/32/64 channels (PyTorch's counts for the same blocks at
// 32/64/128 and 24/48/96); only VGG and these ResNets take a width other than 1.
TEST(Models, WideCifarResNets) {
  auto params = [](double width) {
    ops::ModelOptions o;
    o.width = width;
    auto g = ops::make_model("resnet8", o);
    g->setup(nullptr, Shape{1, 32, 32, 3});
    EXPECT_EQ(g->layer(g->num_layers() - 1).macs(), 10 * std::lround(64 * width));  // fc: 10 x last width
    return g->num_params();
  };
  EXPECT_EQ(params(1), 78042);
  EXPECT_EQ(params(2), 308650);
  EXPECT_EQ(params(1.5), 174274);
  ops::ModelOptions o;
  o.width = 9;
  EXPECT_THROW(ops::make_model("resnet8", o), Error);
  o.width = 2;
  EXPECT_THROW(ops::make_model("resnet18", o), Error);
  EXPECT_THROW(ops::make_model("vgg11", o), Error);  // VGG narrows only
  // A stride-2 stem: the same parameters, the first stage at half the input's size.
  o = {};
  o.width = 2, o.stem_stride = 2;
  auto g = ops::make_model("resnet8", o);
  g->setup(nullptr, Shape{1, 28, 28, 1});
  EXPECT_EQ(g->layer_output_shape(0), (Shape{1, 14, 14, 32}));
  EXPECT_EQ(g->num_params(), 308650 - 2 * 32 * 9);  // one input channel instead of three
  o.width = 1;
  EXPECT_THROW(ops::make_model("resnet50", o), Error);
  EXPECT_THROW(ops::make_model("lenet5", o), Error);  // checked before any other zoo builder, too
  EXPECT_THROW(ops::make_model("vgg11", o), Error);
  o.stem_stride = 0;
  EXPECT_THROW(ops::make_model("resnet8", o), Error);
}

// With aux_logits, the two heads are graph outputs weighing 0.3, which evaluation does not run.
TEST(Models, GoogLeNetAuxiliaryClassifiers) {
  ops::ModelOptions o;
  o.aux_logits = true;
  auto g = ops::make_model("googlenet", o);
  g->setup(nullptr, Shape{1, 224, 224, 3});
  EXPECT_EQ(g->num_params(), 13004888);
  ASSERT_EQ(g->num_extra_outputs(), 2u);
  EXPECT_EQ(g->extra_output_name(0), "aux1");
  EXPECT_EQ(g->extra_output_name(1), "aux2");
  EXPECT_FLOAT_EQ(g->extra_output_loss_weight(1), 0.3f);
  EXPECT_THROW(ops::make_model("resnet18", o), Error);
}

// d2l's small VGG-11 (channels / 4, 4096-unit classifier) on 1x224x224 Fashion-MNIST. Convolutions 1->16, 16->32,
// 32->64, 64->64, 64->128 and three 128->128, 3x3 with biases: 576,832; the classifier 6272*4096+4096 +
// 4096*4096+4096 + 4096*10+10 = 42,516,490.
TEST(Models, VggWidthIsD2lsNarrowVgg) {
  auto g = ops::make_model("vgg11", {10, 1, false, 0.25});
  g->setup(nullptr, Shape{1, 224, 224, 1});
  EXPECT_EQ(g->num_params(), 576832 + 42516490);
  EXPECT_THROW(ops::make_model("resnet18", {10, 1, false, 0.5}), Error);
  EXPECT_THROW(ops::make_model("vgg11", {10, 1, false, 0.0}), Error);
}

TEST(Models, ClassesAndInputChannelsAreParameters) {
  auto g = ops::make_model("resnet18", {10, 1, false});
  g->setup(nullptr, Shape{2, 28, 28, 1});
  EXPECT_EQ(g->output_shape(), (Shape{2, 10}));
  // conv1: 64x1x7x7 instead of 64x3x7x7, fc: 10x512 + 10 instead of 1000x512 + 1000.
  EXPECT_EQ(g->num_params(), 11689512 - 64 * 2 * 49 - 990 * 513);
}

TEST(Models, UnknownModelListsTheKnownOnes) {
  try {
    ops::make_model("resnet51");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("resnet50d"), std::string::npos) << e.what();
  }
}

// Every parameter and buffer of torchvision's state_dict, by name and shape, in the same order
// (tests/data holds the lists, written from torchvision 0.14: {name: shape} of model.state_dict(); GoogLeNet
// with aux_logits=False and, in torchvision_googlenet_aux, True).
void expect_torchvision_names(const std::string& model, const ops::ModelOptions& options = {},
                              const std::string& golden = "") {
  const std::string file = golden.empty() ? model : golden;
  std::ifstream in(std::string(CONVOY_SOURCE_DIR) + "/tests/data/torchvision_" + file + "_state_dict.txt");
  ASSERT_TRUE(in) << "missing golden file for " << model;
  std::vector<std::pair<std::string, std::string>> want;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string name, shape;
    ls >> name >> shape;
    want.emplace_back(name, shape);
  }
  auto g = ops::make_model(model, options);
  g->setup(nullptr, Shape{1, 224, 224, 3});
  std::map<std::string, std::string> got;
  for (const auto* layout : {&g->param_layout(), &g->buffer_layout()})
    for (const auto& e : layout->entries()) {
      std::string s;
      for (int i = 0; i < e.shape.rank(); ++i) {
        if (i) s.push_back('x');
        s.append(std::to_string(e.shape[i]));
      }
      got[e.name] = s;
    }
  EXPECT_EQ(got.size(), want.size());
  for (const auto& [name, shape] : want) {
    auto it = got.find(name);
    if (it == got.end()) {
      ADD_FAILURE() << model << " lacks " << name;
      continue;
    }
    EXPECT_EQ(it->second, shape) << name;
  }
  // Parameters come in torchvision's registration order (gradient buckets follow it in reverse).
  std::vector<std::string> order;
  for (const auto& [name, shape] : want)
    if (g->param_layout().contains(name)) order.push_back(name);
  ASSERT_EQ(order.size(), g->param_layout().entries().size());
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(g->param_layout().entry(i).name, order[i]);
}

TEST(Models, NamesAndShapesEqualTorchvisionResNet18) { expect_torchvision_names("resnet18"); }
TEST(Models, NamesAndShapesEqualTorchvisionResNet50) { expect_torchvision_names("resnet50"); }
TEST(Models, NamesAndShapesEqualTorchvisionAlexNet) { expect_torchvision_names("alexnet"); }
TEST(Models, NamesAndShapesEqualTorchvisionVgg11Bn) { expect_torchvision_names("vgg11_bn"); }
TEST(Models, NamesAndShapesEqualTorchvisionVgg16) { expect_torchvision_names("vgg16"); }
TEST(Models, NamesAndShapesEqualTorchvisionGoogLeNet) { expect_torchvision_names("googlenet"); }
TEST(Models, NamesAndShapesEqualTorchvisionGoogLeNetWithAuxiliaryClassifiers) {
  ops::ModelOptions o;
  o.aux_logits = true;
  expect_torchvision_names("googlenet", o, "googlenet_aux");
}
TEST(Models, NamesAndShapesEqualTorchvisionDenseNet121) { expect_torchvision_names("densenet121"); }

TEST(Models, ResNet50dNamesFollowTimm) {
  auto g = ops::make_model("resnet50d");
  g->setup(nullptr, Shape{1, 224, 224, 3});
  for (const char* name : {"conv1.0.weight", "conv1.1.weight", "conv1.3.weight", "conv1.4.running_var",
                           "conv1.6.weight", "bn1.weight", "layer1.0.downsample.1.weight",
                           "layer2.0.downsample.1.weight", "layer2.0.downsample.2.running_mean", "fc.bias"})
    EXPECT_TRUE(g->param_layout().contains(name) || g->buffer_layout().contains(name)) << name;
}

class NoReferenceKernels : public ::testing::TestWithParam<std::tuple<std::string, int64_t>> {};

TEST_P(NoReferenceKernels, InAnyZooLayer) {
  auto [model, size] = GetParam();
  auto g = ops::make_model(model);
  g->setup(&backend(), Shape{2, size, size, ops::model_info(model).channels});
  auto impls = g->implementations();
  EXPECT_GT(impls.size(), g->num_layers());
  for (const auto& s : impls) EXPECT_EQ(s.find("ref"), std::string::npos) << s;
}

INSTANTIATE_TEST_SUITE_P(Models, NoReferenceKernels,
                         ::testing::Values(std::make_tuple("resnet18", 64), std::make_tuple("resnet50", 64),
                                           std::make_tuple("resnet50a", 64), std::make_tuple("resnet50d", 64),
                                           std::make_tuple("resnet20", 32), std::make_tuple("alexnet", 64),
                                           std::make_tuple("vgg11_bn", 32), std::make_tuple("nin", 96),
                                           std::make_tuple("googlenet", 32), std::make_tuple("densenet121", 32)),
                         [](const auto& info) { return std::get<0>(info.param); });

TEST(Models, ZeroGammaZeroesTheLastBatchNormOfEveryBlock) {
  auto g = ops::make_model("resnet18", {0, 0, true});
  g->setup(nullptr, Shape{1, 64, 64, 3});
  int zeroed = 0;
  for (const auto& e : g->param_layout().entries()) {
    bool last_bn = e.name.ends_with(".bn2.weight") && e.name.starts_with("layer");
    if (e.role == ops::ParamRole::bn_gamma) {
      EXPECT_EQ(e.init == ops::InitKind::zeros, last_bn) << e.name;
      zeroed += last_bn;
    }
  }
  EXPECT_EQ(zeroed, 8);
}

// Fusing ReLUs into convolutions, batch norms and adds must not change outputs or gradients.
TEST(Models, FusionChangesNoResult) {
  std::unique_ptr<ops::Graph> g[2];
  for (int fuse = 0; fuse < 2; ++fuse) {
    g[fuse] = ops::make_model("resnet18", {10, 3, false});
    g[fuse]->setup(&backend(), Shape{2, 32, 32, 3}, fuse == 1);
    g[fuse]->init_params(7);
  }
  EXPECT_LT(g[1]->num_layers(), g[0]->num_layers());
  std::vector<float> x = random_values(2 * 32 * 32 * 3, 8);
  std::vector<float> r = random_values(20, 9);
  for (auto& gi : g) {
    gi->forward(device_tensor(gi->input_shape(), x));
    write_device(gi->output_grad(), r);
    gi->backward();
  }
  auto a = host_values(g[0]->activation(g[0]->num_layers() - 1));
  auto b = host_values(g[1]->activation(g[1]->num_layers() - 1));
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5f * std::max(1.f, std::fabs(a[i])));
  for (const auto& e : g[0]->param_layout().entries()) {
    auto ga = host_values(g[0]->read_grad(e.name)), gb = host_values(g[1]->read_grad(e.name));
    double diff = 0, norm = 0;
    for (size_t i = 0; i < ga.size(); ++i) diff += std::pow(ga[i] - gb[i], 2), norm += std::pow(ga[i], 2);
    EXPECT_LE(std::sqrt(diff), 1e-5 * std::sqrt(norm) + 1e-7) << e.name;
  }
  // Evaluation mode (running statistics) too.
  for (auto& gi : g) {
    gi->set_training(false);
    gi->forward(device_tensor(gi->input_shape(), x));
  }
  a = host_values(g[0]->activation(g[0]->num_layers() - 1));
  b = host_values(g[1]->activation(g[1]->num_layers() - 1));
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5f * std::max(1.f, std::fabs(a[i])));
}

// Forward, backward and the update work together: plain SGD (the backend's update over the whole
// parameter arena, no momentum) fits 64 fixed random samples.
TEST(Models, SmallResNetFits64RandomSamples) {
  const int64_t N = 64, S = 8, C = 3, K = 10;
  ops::Backend& be = backend();
  auto g = ops::make_model("resnet20", {K, C, false});
  g->setup(&be, Shape{N, S, S, C});
  g->init_params(1);
  ops::Arena momentum(g->param_layout(), be.allocator());
  ops::Tensor v = momentum.flat();
  be.fill(be.context(), v, 0.0);
  auto loss = be.softmax_cross_entropy(N, K);
  ops::Tensor x = device_tensor(g->input_shape(), random_values(N * S * S * C, 2));
  std::vector<int32_t> y(N);
  for (int64_t n = 0; n < N; ++n) y[n] = static_cast<int32_t>((n * 7 + n / 10) % K);
  ops::Tensor labels = device_labels(y);
  ops::Tensor sum = ops::Tensor::empty(Shape{1}, ops::DType::f64, be.allocator());
  ops::Tensor nonfinite = ops::Tensor::empty(Shape{1}, ops::DType::i32, be.allocator());
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    be.fill(be.context(), sum, 0.0);
    const ops::Tensor& logits = g->forward(x);
    loss->forward_backward(be.context(), logits, labels, 0.f, 1.f, g->output_grad(), sum, nonfinite);
    g->backward();
    ops::Tensor w = g->params().flat();
    be.sgd_update(be.context(), ops::SgdParams{0.1f, 0.f, 0.f, false, 1.f}, w, v, g->grads().flat());
    if (step == 0 || step == 299) (step == 0 ? first : last) = host_values_as<double>(sum)[0];
  }
  EXPECT_GT(first, 2.0);  // about ln 10 at the start
  EXPECT_LT(last, 0.05) << "loss went from " << first << " to " << last;
}

}  // namespace
}  // namespace convoy::test
