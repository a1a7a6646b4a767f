// Native mixed precision (Graph::set_compute_dtype): every layer's half-precision kernels against the same
// graph in f32 and in the emulation of that storage, the ResNet zoo without reference kernels, fp32 master
// weights under a half compute copy. The CPU computes in bf16 where it has AVX-512 BF16 or AMX (elsewhere
// the tests skip, naming the ISA, and the refusal is checked); a GPU in f16 and bf16.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/models/zoo.h"
#include "tests/ops/grad_check.h"
#include "tests/ops/test_util.h"

namespace convoy::test {
namespace {

using ops::DType;
using ops::Shape;

bool on_gpu() { return backend().device().kind == ops::DeviceKind::cuda; }

// The half dtypes this backend computes in natively.
std::vector<DType> half_dtypes() {
  if (on_gpu()) return {DType::f16, DType::bf16};
  if (ops::cpu_has_bf16()) return {DType::bf16};
  return {};
}

#define SKIP_WITHOUT_HALF()                                                                                \
  do {                                                                                                     \
    if (half_dtypes().empty())                                                                             \
      GTEST_SKIP() << "no bf16 arithmetic on this processor (oneDNN ISA " << ops::cpu_isa() << ")";       \
  } while (0)

// ||a - b|| / ||a||: bf16 keeps 8 bits of mantissa, so single values are off by up to 2^-8 of themselves
// and a norm over many by less.
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff += std::pow(double(a[i]) - b[i], 2);
    norm += std::pow(double(a[i]), 2);
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// Every kind of layer the CPU backend has, with activations that feed two layers (accumulated gradients),
// convolutions on maps above and below the size where the bf16 weight gradient goes through im2col, a
// biased convolution, LRN, dropout, a ceil-mode average pool whose divisor needs the per-position factor, and
// an extra output (an auxiliary head, as GoogLeNet's) reading an inner activation.
std::unique_ptr<ops::Graph> every_layer() {
  using namespace ops;
  auto g = std::make_unique<Graph>("every-layer");
  Conv2dOptions c1 = conv_options(16, 3, 1, 1);
  c1.bias = true;
  g->add("conv1", conv2d(c1), {Graph::kInput});  // 8x8: the direct weight gradient
  g->add("relu1", relu(), {"conv1"});
  g->add("bn1", batch_norm(), {"relu1"});
  g->add("relu2", relu(), {"bn1"});
  g->add("branch_a", conv2d(conv_options(8, 1)), {"relu2"});
  g->add("branch_b", conv2d(conv_options(8, 3, 1, 1)), {"relu2"});
  g->add("cat", concat(), {"branch_a", "branch_b"});
  g->add("sum", add(), {"cat", "relu2"});
  g->add("lrn", local_response_norm(3), {"sum"});
  g->add("pool", max_pool2d(PoolOptions{2, 2, 0, false, true}), {"lrn"});  // 4x4
  g->add("aux.pool", adaptive_avg_pool2d(3, 3), {"pool"});
  g->add("aux.fc", linear(10), {"aux.pool"});
  Conv2dOptions c2 = conv_options(32, 3, 1, 1);
  c2.bias = true;
  g->add("conv2", conv2d(c2), {"pool"});  // 4x4: the im2col weight gradient
  g->add("relu3", relu(), {"conv2"});      // (not BN next: it would cancel the bias gradient)
  g->add("bn2", batch_norm(), {"relu3"});
  g->add("avg", avg_pool2d(PoolOptions{3, 2, 1, true, true}), {"bn2"});
  g->add("drop", dropout(0.25f), {"avg"});
  g->add("fc1", linear(24), {"drop"});
  g->add("relu4", relu(), {"fc1"});
  g->add("fc2", linear(10), {"relu4"});
  g->add_output("aux", "aux.fc", 0.3f);
  return g;
}

enum class Mode { f32, emulated, native };

// One training step's forward and backward of a fresh graph (seeded initialization, input and output
// gradient), then an evaluation forward of another input: the graph, ready to read.
struct Run {
  std::unique_ptr<ops::Graph> g;
  std::vector<float> eval_out;
};

template <typename Make>
Run run(Make make, Mode mode, DType half, const Shape& input, uint64_t seed) {
  Run r{make(), {}};
  ops::Graph& g = *r.g;
  if (mode == Mode::emulated) g.set_emulated_storage(half);
  if (mode == Mode::native) g.set_compute_dtype(half);
  g.setup(&backend(), input);
  g.init_params(seed + 1);
  g.set_dropout_seed(5);
  const ops::Tensor& out = g.forward(device_tensor(input, random_values(static_cast<size_t>(input.numel()), seed)));
  EXPECT_EQ(out.dtype(), DType::f32);  // the graph's edges stay f32 in every mode
  write_device(g.output_grad(), random_values(static_cast<size_t>(out.numel()), seed + 2));
  for (size_t k = 0; k < g.num_extra_outputs(); ++k) {
    EXPECT_EQ(g.extra_output(k).dtype(), DType::f32);
    write_device(g.extra_output_grad(k), random_values(static_cast<size_t>(g.extra_output(k).numel()), seed + 3));
  }
  g.backward();
  g.set_training(false);
  r.eval_out = host_values(g.forward(device_tensor(input, random_values(static_cast<size_t>(input.numel()), 99))));
  return r;
}

// The native half kernels against the fp32 graph and against the emulation of that storage (fp32 kernels
// whose layer boundaries are rounded to it: the rounding model of mixed precision). Both of them round the
// same values, so native and emulated agree much more closely than either agrees with fp32, where a deep
// net's gradients through batch statistics can differ by tens of percent; and native is no further from
// fp32 than the emulation is (1.25x and a point of slack).
template <typename Make>
void expect_half_matches(Make make, const Shape& input, uint64_t seed, double out_tol, double native_tol) {
  for (DType half : half_dtypes()) {
    SCOPED_TRACE(dtype_name(half));
    Run f32 = run(make, Mode::f32, half, input, seed), emu = run(make, Mode::emulated, half, input, seed),
        nat = run(make, Mode::native, half, input, seed);
    EXPECT_EQ(nat.g->activation(nat.g->num_layers() - 1).dtype(), half);
    EXPECT_LT(relative_error(f32.eval_out, nat.eval_out), out_tol) << "evaluation output";
    EXPECT_LT(relative_error(emu.eval_out, nat.eval_out), native_tol) << "evaluation output";
    for (const auto& e : f32.g->param_layout().entries()) {
      std::vector<float> a = host_values(f32.g->read_grad(e.name)), b = host_values(emu.g->read_grad(e.name)),
                         c = host_values(nat.g->read_grad(e.name));
      const double emu_err = relative_error(a, b), nat_err = relative_error(a, c);
      EXPECT_LT(relative_error(b, c), native_tol) << e.name << " (native vs emulated " << dtype_name(half) << ")";
      EXPECT_LT(nat_err, 1.25 * emu_err + 0.01) << e.name << ": native " << nat_err << ", emulated " << emu_err;
      // Master weights are f32, exactly as initialized (one seed in all graphs).
      EXPECT_EQ(host_values(f32.g->read(e.name)), host_values(nat.g->read(e.name))) << e.name;
    }
  }
}

TEST(MixedPrecision, EveryLayerAgreesWithF32AndTheEmulation) {
  SKIP_WITHOUT_HALF();
  expect_half_matches(every_layer, Shape{4, 8, 8, 3}, 11, 0.02, 0.02);
}

TEST(MixedPrecision, ResNetAgreesWithF32AndTheEmulationAndRunsNoReferenceKernel) {
  SKIP_WITHOUT_HALF();
  auto make = [] { return ops::make_model("resnet20", {10, 3, false}); };
  expect_half_matches(make, Shape{8, 16, 16, 3}, 21, 0.03, 0.05);
  for (DType half : half_dtypes()) {
    auto g = make();
    g->set_compute_dtype(half);
    g->setup(&backend(), Shape{8, 16, 16, 3});
    for (const auto& s : g->implementations()) EXPECT_EQ(s.find("ref"), std::string::npos) << s;
  }
}

// Channel counts that are not multiples of 16 (resnet8 x 1.5: 24/48/96): oneDNN 2.6 has only its reference
// batch norm for them in bf16 (45 ms a call); convoy's own loops take over, and agree as the others do.
TEST(MixedPrecision, BatchNormOnOddChannelCountsRunsNoReferenceKernelAndAgrees) {
  SKIP_WITHOUT_HALF();
  ops::ModelOptions o{10, 1, false};
  o.width = 1.5;
  auto make = [&] { return ops::make_model("resnet8", o); };
  expect_half_matches(make, Shape{8, 12, 12, 1}, 31, 0.03, 0.05);
  for (DType half : half_dtypes()) {
    auto g = make();
    g->set_compute_dtype(half);
    g->setup(&backend(), Shape{8, 12, 12, 1});
    bool loops = false;
    for (const auto& s : g->implementations()) {
      EXPECT_EQ(s.find("ref"), std::string::npos) << s;
      if (s.rfind("batch-norm inference", 0) != 0) EXPECT_NE(s.substr(s.size() < 4 ? 0 : s.size() - 4), ":any") << s;
      loops |= s.find("convoy NHWC loops") != std::string::npos;
    }
    if (!on_gpu()) EXPECT_TRUE(loops) << "24 bf16 channels: convoy's batch-norm loops";
  }
}

TEST(MixedPrecision, ResNet18StagesRunNoReferenceKernelOnTheCpu) {
  SKIP_WITHOUT_HALF();
  if (on_gpu()) GTEST_SKIP() << "the im2col weight gradient is the CPU's";
  auto g = ops::make_model("resnet18");
  g->set_compute_dtype(DType::bf16);
  g->setup(&backend(), Shape{2, 64, 64, 3});
  const auto impls = g->implementations();
  bool im2col = false;
  for (const auto& s : impls) {
    EXPECT_EQ(s.find("ref"), std::string::npos) << s;
    im2col |= s.find("im2col") != std::string::npos;
  }
  EXPECT_TRUE(im2col) << "layer4 (2x2 maps) takes the bf16 im2col weight gradient";
}

// The compute copy follows the master weights: a change written into the f32 master changes the output.
TEST(MixedPrecision, ComputeCopyFollowsTheMasterWeights) {
  SKIP_WITHOUT_HALF();
  auto g = every_layer();
  g->set_compute_dtype(half_dtypes().front());
  const Shape in{2, 8, 8, 3};
  g->setup(&backend(), in);
  g->init_params(3);
  g->set_training(false);
  std::vector<float> x = random_values(static_cast<size_t>(in.numel()), 4);
  std::vector<float> before = host_values(g->forward(device_tensor(in, x)));
  ops::Tensor bias = g->read("fc2.bias");
  std::vector<float> b = host_values(bias);
  for (float& v : b) v += 1.f;
  g->write("fc2.bias", host_tensor(bias.shape(), b));
  std::vector<float> after = host_values(g->forward(device_tensor(in, x)));
  for (size_t i = 0; i < before.size(); ++i) EXPECT_NEAR(after[i] - before[i], 1.f, 0.02f) << i;
}

TEST(MixedPrecision, RefusedWithEmulatedStorageAndWithoutTheIsa) {
  ops::Graph g;
  g.set_emulated_storage(DType::f16);
  EXPECT_THROW(g.set_compute_dtype(DType::bf16), Error);
  if (!half_dtypes().empty()) return;
  auto m = ops::make_model("resnet20", {10, 3, false});
  m->set_compute_dtype(DType::bf16);
  try {
    m->setup(&backend(), Shape{2, 16, 16, 3});
    FAIL() << "bf16 kernels were built on a processor without bf16 arithmetic";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(ops::cpu_isa()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace convoy::test
