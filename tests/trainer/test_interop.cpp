// Interop with PyTorch: torchvision's own weights (ResNet-18, AlexNet, VGG-11-BN, GoogLeNet, DenseNet-121),
// moved with tools/torchvision_to_h5.py, give the same outputs in convoy as in PyTorch for the same input (this checks layouts, names, batch norm
// in evaluation mode, and the NHWC/NCHW bookkeeping end to end); and a convoy checkpoint goes back to a
// state_dict that loads strictly into torchvision.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "datasets/h5.h"
#include "ops/models/zoo.h"
#include "tests/trainer/fixtures.h"
#include "trainer/checkpoint.h"
#include "trainer/trainer.h"

namespace convoy::test {
namespace {

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

std::vector<float> read_floats(const std::string& file, const std::string& name, std::vector<hsize_t>& dims) {
  auto f = datasets::h5::open_file_readonly(file);
  dims = datasets::h5::dataset_dims(f.get(), name, file);
  size_t n = 1;
  for (hsize_t d : dims) n *= d;
  std::vector<float> v(n);
  datasets::h5::read_dataset(f.get(), name, H5T_NATIVE_FLOAT, v.data(), file);
  return v;
}

// One model per family, at a small input (AlexNet's and VGG's adaptive pools then grow 1x1 maps to 6x6 and
// 7x7, which checks them too).
struct InteropCase {
  const char* model;
  int size;
  bool aux = false;  // googlenet with its auxiliary classifiers (evaluation skips them on both sides)
};

class TorchvisionLogits : public ::testing::TestWithParam<InteropCase> {};

TEST_P(TorchvisionLogits, AreConvoysForTheSameWeightsAndInput) {
  const auto [model, size, aux] = GetParam();
  const std::string dir = temp_dir(std::string("interop-") + model + (aux ? "-aux" : "")), src = CONVOY_SOURCE_DIR;
  const std::string weights = dir + "/weights.h5", io = dir + "/io.h5";
  ASSERT_EQ(0, sh("/usr/bin/python3 " + src + "/tools/torchvision_to_h5.py " + model + " --num-classes 10 --out " +
                  weights + (aux ? " --aux-logits" : "") + " > /dev/null"));
  // The same weights, an input batch, and torchvision's logits in evaluation mode (after a few training
  // forwards, so the BN running statistics are not the trivial 0 / 1).
  std::ofstream(dir + "/ref.py") << R"(
import sys, h5py, numpy as np, torch, torchvision
sys.path.insert(0, sys.argv[5])
from torchvision_layout import convoy_layout
torch.manual_seed(0)
name, size = sys.argv[3], int(sys.argv[4])
m = getattr(torchvision.models, name)(num_classes=10, **convoy_layout(name, sys.argv[6] == "1"))
with h5py.File(sys.argv[1]) as f:
    state = {k: torch.as_tensor(np.asarray(v[()])) for g in ("params", "buffers") for k, v in f[g].items()}
m.load_state_dict(state)
m.train()
with torch.no_grad():
    for _ in range(3):
        m(torch.randn(8, 3, size, size) * 2 + 0.5)
m.eval()
x = torch.randn(4, 3, size, size)
with torch.no_grad():
    y = m(x)
with h5py.File(sys.argv[2], "w") as f:
    f["x_nchw"] = x.numpy()
    f["logits"] = y.numpy()
with h5py.File(sys.argv[1], "a") as f:  # the updated running statistics
    for k, v in m.state_dict().items():
        if "running" in k:
            f["buffers/" + k][...] = v.numpy()
)";
  ASSERT_EQ(0, sh("/usr/bin/python3 " + dir + "/ref.py " + weights + " " + io + " " + model + " " +
                  std::to_string(size) + " " + src + "/tools " + (aux ? "1" : "0")));

  auto backend = ops::make_cpu_backend(2);
  ops::ModelOptions options{10, 3, false};
  options.aux_logits = aux;
  auto g = ops::make_model(model, options);
  g->setup(backend.get(), ops::Shape{4, size, size, 3});
  g->init_params(1);
  trainer::load_weights(weights, *g);
  g->set_training(false);
  std::vector<hsize_t> xd, yd;
  std::vector<float> x_nchw = read_floats(io, "x_nchw", xd), want = read_floats(io, "logits", yd);
  ops::Tensor x = ops::Tensor::zeros_host(g->input_shape());
  for (int n = 0; n < 4; ++n)
    for (int c = 0; c < 3; ++c)
      for (int h = 0; h < size; ++h)
        for (int w = 0; w < size; ++w)
          x.host<float>()[((n * size + h) * size + w) * 3 + c] = x_nchw[((n * 3 + c) * size + h) * size + w];
  const ops::Tensor& y = g->forward(x);
  ASSERT_EQ(static_cast<size_t>(y.numel()), want.size());
  double max_diff = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(y.host<float>()[i] - want[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(want[i])));
  }
  EXPECT_LT(max_diff, 1e-4 * std::max(1.0, scale)) << "largest logit " << scale;
}

INSTANTIATE_TEST_SUITE_P(Interop, TorchvisionLogits,
                         ::testing::Values(InteropCase{"resnet18", 64}, InteropCase{"alexnet", 64},
                                           InteropCase{"vgg11_bn", 32}, InteropCase{"googlenet", 32},
                                           InteropCase{"googlenet", 32, true}, InteropCase{"densenet121", 32}),
                         [](const auto& info) { return std::string(info.param.model) + (info.param.aux ? "_aux" : ""); });

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A convoy checkpoint goes to a state_dict that loads strictly into torchvision, comes back as a weights
// file (tools/torchvision_to_h5.py --weights), and `convoy eval --weights` scores it exactly as the
// checkpoint; `--checkpoint` on the weights file says what it is and what to use.
TEST(Interop, ConvoyCheckpointRoundTripsThroughTorchvisionAndEvaluatesAsWeights) {
  const std::string dir = temp_dir("interop-back"), src = CONVOY_SOURCE_DIR;
  const std::string yaml = dir + "/small.yaml";
  std::ofstream(yaml) << small_config(fashion_subset(256, 64));
  const std::vector<std::string> sets{"model.name=resnet18", "train.epochs=1", "train.batch_size=64"};
  trainer::Config c = trainer::parse_config(slurp(yaml), yaml, sets);
  trainer::Trainer t(c, dir);
  ASSERT_EQ(t.train(""), 0);
  const std::string ckpt = t.checkpoints().list().at(0);
  ASSERT_EQ(0, sh("/usr/bin/python3 " + src + "/tools/h5_to_torchvision.py " + ckpt +
                  " --model resnet18 --num-classes 10 --out " + dir + "/r18.pth > /dev/null"));
  ASSERT_EQ(0, sh("/usr/bin/python3 " + src + "/tools/torchvision_to_h5.py resnet18 --num-classes 10 --weights " +
                  dir + "/r18.pth --out " + dir + "/r18.h5 > /dev/null"));
  std::string common = std::string(CONVOY_BINARY) + " eval --config " + yaml;
  for (const auto& s : sets) common += " --set " + s;
  ASSERT_EQ(0, sh(common + " --checkpoint " + ckpt + " > " + dir + "/ckpt.txt 2>&1")) << slurp(dir + "/ckpt.txt");
  ASSERT_EQ(0, sh(common + " --weights " + dir + "/r18.h5 > " + dir + "/weights.txt 2>&1"))
      << slurp(dir + "/weights.txt");
  auto scores = [](const std::string& out) {  // between the file name and the time taken
    const size_t a = out.find(": top-1"), b = out.rfind(" (");
    return a == std::string::npos || b == std::string::npos || b < a ? out : out.substr(a, b - a);
  };
  EXPECT_EQ(scores(slurp(dir + "/ckpt.txt")), scores(slurp(dir + "/weights.txt")));
  EXPECT_NE(0, sh(common + " --checkpoint " + dir + "/r18.h5 > " + dir + "/wrong.txt 2>&1"));
  EXPECT_NE(slurp(dir + "/wrong.txt").find("is not a convoy checkpoint"), std::string::npos) << slurp(dir + "/wrong.txt");
  EXPECT_NE(slurp(dir + "/wrong.txt").find("convoy eval --weights"), std::string::npos) << slurp(dir + "/wrong.txt");
}

}  // namespace
}  // namespace convoy::test
