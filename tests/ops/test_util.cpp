#include "tests/ops/test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

namespace convoy::test {
namespace {
std::string g_backend = "cpu";
}  // namespace

const std::string& backend_name() { return g_backend; }

ops::Backend& backend() {
  static std::unique_ptr<ops::Backend> b = [] {
    ops::BackendOptions o;
    o.threads = 2;
    o.tf32 = false;  // on cuda: IEEE fp32, so the references' tolerances hold
    return ops::make_backend(g_backend, o);
  }();
  return *b;
}

std::vector<float> host_values(const ops::Tensor& t) { return host_values_as<float>(t); }

ops::Tensor host_tensor(const ops::Shape& shape, const std::vector<float>& v) {
  ops::Tensor t = ops::Tensor::zeros_host(shape);
  std::copy(v.begin(), v.end(), t.host<float>());
  return t;
}

ops::Tensor device_tensor(const ops::Shape& shape, const std::vector<float>& v) {
  ops::Tensor t = ops::Tensor::empty(shape, ops::DType::f32, backend().allocator());
  write_device(t, v);
  return t;
}

ops::Tensor device_labels(const std::vector<int32_t>& labels) {
  ops::Tensor h = ops::Tensor::zeros_host(ops::Shape{static_cast<int64_t>(labels.size())}, ops::DType::i32);
  std::copy(labels.begin(), labels.end(), h.host<int32_t>());
  ops::Tensor t = ops::Tensor::empty(h.shape(), ops::DType::i32, backend().allocator());
  ops::from_host(backend(), h, t);
  return t;
}

void write_device(ops::Tensor& t, const std::vector<float>& v) {
  ASSERT_EQ(static_cast<size_t>(t.numel()), v.size());
  ops::from_host(backend(), host_tensor(t.shape(), v), t);
}

std::unique_ptr<ops::Graph> one_layer(std::unique_ptr<ops::Layer> layer, const ops::Shape& input, bool then_relu,
                                      bool fuse, uint64_t seed) {
  auto g = std::make_unique<ops::Graph>("test");
  std::string x = g->add("layer", std::move(layer), {ops::Graph::kInput});
  if (then_relu) g->add("relu", ops::relu(), {x});
  g->set_input_grad(true);
  g->setup(&backend(), input, fuse);
  g->init_params(seed);
  return g;
}

}  // namespace convoy::test

// --backend NAME picks the backend; every other argument goes to GoogleTest.
namespace {
// A GPU backend's tests skip, every one with the reason, on a machine where no GPU is visible.
class NeedsGpu final : public ::testing::Environment {
 public:
  void SetUp() override {
    if (convoy::test::backend_name() == "cuda" && convoy::ops::cuda_devices() == 0)
      GTEST_SKIP() << "backend cuda: no GPU is visible on this machine";
  }
};
}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--backend=", 10) == 0) convoy::test::g_backend = argv[i] + 10;
  }
  ::testing::AddGlobalTestEnvironment(new NeedsGpu);
  return RUN_ALL_TESTS();
}
