// The strict device (ops/strict): its memory faults on a host read outside its kernels, its tensors
// refuse host access, its kernels refuse host tensors, and copies move data in and out exactly. These
// tests make their own strict backend, whatever --backend says.
#include <gtest/gtest.h>

#include <cstring>

#include "ops/strict/strict_memory.h"
#include "tests/ops/test_util.h"

namespace convoy::test {
namespace {

using ops::Shape;

ops::Backend& strict() {
  static std::unique_ptr<ops::Backend> b = ops::make_strict_backend(1);
  return *b;
}

TEST(StrictDevice, AHostReadOfItsMemoryFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ops::Tensor t = ops::Tensor::empty(Shape{1024}, ops::DType::f32, strict().allocator());
  EXPECT_EQ(t.device().str(), "cpu-strict");
  // A read through the raw pointer, as code that assumed host memory would make it.
  EXPECT_DEATH(
      {
        volatile const float* p = static_cast<const float*>(t.data());
        std::printf("read %f\n", static_cast<double>(p[7]));
      },
      "");
  EXPECT_DEATH({ std::memset(t.data(), 0, 16); }, "");
}

TEST(StrictDevice, MemoryOpensOnlyInsideAKernelCall) {
  ops::strict::StrictMemory mem(size_t{1} << 30);
  auto* p = static_cast<float*>(mem.allocate(8192));
  mem.enter();
  mem.expose(p, 8192);
  p[100] = 3.f;  // inside a call: the tensor's pages are open
  EXPECT_EQ(p[100], 3.f);
  mem.leave();
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH({ std::printf("%f\n", static_cast<double>(static_cast<volatile float*>(p)[100])); }, "");
  // Freed memory is reused and reads as zeros again.
  mem.deallocate(p, 8192);
  auto* q = static_cast<float*>(mem.allocate(4096));
  EXPECT_EQ(q, p);
  mem.enter();
  mem.expose(q, 4096);
  EXPECT_EQ(q[100], 0.f);
  mem.leave();
  mem.deallocate(q, 4096);
}

TEST(StrictDevice, TensorsRefuseHostAccessAndKernelsRefuseHostTensors) {
  ops::Tensor t = ops::Tensor::empty(Shape{4, 3}, ops::DType::f32, strict().allocator());
  EXPECT_THROW(t.host<float>(), Error);
  // A layer handed a host tensor: the graph names the layer and both devices.
  auto g = std::make_unique<ops::Graph>("strict");
  g->add("fc", ops::linear(2), {ops::Graph::kInput});
  g->setup(&strict(), Shape{4, 3});
  try {
    g->forward(ops::Tensor::zeros_host(Shape{4, 3}));
    FAIL() << "a host input was accepted";
  } catch (const Error& e) {
    const std::string m = e.message();
    EXPECT_NE(m.find("the input lives on cpu"), std::string::npos) << m;
    EXPECT_NE(m.find("layer 'fc' runs on cpu-strict"), std::string::npos) << m;
  }
  // A kernel handed a tensor of another device, below the graph.
  auto relu = strict().relu(Shape{4, 3}, ops::DType::f32);
  ops::Tensor host = ops::Tensor::zeros_host(Shape{4, 3});
  try {
    relu->forward(strict().context(), host, t);
    FAIL() << "a host tensor reached a cpu-strict kernel";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("ReLU: x lives on cpu, but this kernel takes cpu-strict tensors"), std::string::npos)
        << e.message();
  }
  // And the CPU backend's kernels refuse the strict device's tensors.
  auto cpu = ops::make_cpu_backend(1);
  auto cpu_relu = cpu->relu(Shape{4, 3}, ops::DType::f32);
  EXPECT_THROW(cpu_relu->forward(cpu->context(), t, host), Error);
  EXPECT_THROW(cpu->fill(cpu->context(), t, 1.0), Error);
}

TEST(StrictDevice, CopiesAndKernelsMoveExactValues) {
  ops::Backend& be = strict();
  ops::Tensor host = ops::Tensor::zeros_host(Shape{5});
  for (int i = 0; i < 5; ++i) host.host<float>()[i] = static_cast<float>(i) - 1.5f;
  ops::Tensor x = ops::Tensor::empty(Shape{5}, ops::DType::f32, be.allocator());
  ops::Tensor y = ops::Tensor::empty(Shape{5}, ops::DType::f32, be.allocator());
  ops::from_host(be, host, x);
  be.relu(Shape{5}, ops::DType::f32)->forward(be.context(), x, y);
  ops::Tensor back = ops::to_host(be, y);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(back.host<float>()[i], std::max(0.f, host.host<float>()[i]));
  ops::Tensor wire = ops::Tensor::empty(Shape{5}, ops::DType::bf16, be.allocator());
  be.cast(be.context(), x, wire);
  be.cast(be.context(), wire, y);
  back = ops::to_host(be, y);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(back.host<float>()[i], host.host<float>()[i]);  // halves are exact in bf16
}

}  // namespace
}  // namespace convoy::test
