// The CUDA backend against the CPU backend, in one process: a whole training step of ResNet-18 (forward,
// loss, backward: every kernel family of the model) with IEEE fp32 on the GPU (train.tf32 off), and the
// caching allocator's promise that a steady step calls neither cudaMalloc nor cudaFree. Skipped where no
// GPU is visible; the per-kernel checks are the ops tests, which run on cuda too (ops.cuda.*).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "ops/backend.h"
#include "ops/graph.h"
#include "ops/models/zoo.h"

namespace convoy::ops {
namespace {

struct TrainedModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Graph> graph;
  std::unique_ptr<SoftmaxCrossEntropyKernel> loss;
  Tensor x, labels, loss_sum, nonfinite;
};

TrainedModel make_run(const std::string& device, const Tensor& x_host, const Tensor& labels_host) {
  TrainedModel r;
  BackendOptions o;
  o.threads = 2;
  o.tf32 = false;  // IEEE fp32: comparable with the CPU within float summation order
  r.backend = make_backend(device, o);
  r.graph = make_model("resnet18", {10, 3, false});
  r.graph->setup(r.backend.get(), x_host.shape());
  r.graph->init_params(7);
  Allocator& a = r.backend->allocator();
  r.x = Tensor::empty(x_host.shape(), DType::f32, a);
  r.labels = Tensor::empty(labels_host.shape(), DType::i32, a);
  r.loss_sum = Tensor::empty(Shape{1}, DType::f64, a);
  r.nonfinite = Tensor::empty(Shape{1}, DType::i32, a);
  from_host(*r.backend, x_host, r.x);
  from_host(*r.backend, labels_host, r.labels);
  r.backend->fill(r.backend->context(), r.loss_sum, 0.0);
  r.loss = r.backend->softmax_cross_entropy(x_host.dim(0), 10);
  return r;
}

void step(TrainedModel& r) {
  const Tensor& logits = r.graph->forward(r.x);
  r.loss->forward_backward(r.backend->context(), logits, r.labels, 0.1f, 1.f, r.graph->output_grad(), r.loss_sum,
                           r.nonfinite);
  r.graph->backward();
  r.backend->context().synchronize();
}

double relative_error(const Tensor& a, const Tensor& b) {
  const float* p = a.host<float>();
  const float* q = b.host<float>();
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < a.numel(); ++i) diff += (p[i] - q[i]) * double(p[i] - q[i]), norm += double(q[i]) * q[i];
  return std::sqrt(diff / std::max(norm, 1e-30));
}

TEST(CudaBackend, ResNet18TrainingStepMatchesTheCpuBackend) {
  if (cuda_devices() == 0) GTEST_SKIP() << "no GPU is visible on this machine";
  const Shape in{4, 32, 32, 3};
  Tensor x = Tensor::zeros_host(in);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (int64_t i = 0; i < x.numel(); ++i) x.host<float>()[i] = normal(rng);
  Tensor labels = Tensor::zeros_host(Shape{4}, DType::i32);
  for (int i = 0; i < 4; ++i) labels.host<int32_t>()[i] = (3 * i + 1) % 10;

  TrainedModel cpu = make_run("cpu", x, labels), gpu = make_run("cuda", x, labels);
  step(cpu);
  step(gpu);
  const Tensor lc = to_host(*cpu.backend, cpu.graph->activation(cpu.graph->num_layers() - 1));
  const Tensor lg = to_host(*gpu.backend, gpu.graph->activation(gpu.graph->num_layers() - 1));
  EXPECT_LT(relative_error(lg, lc), 1e-4) << "logits";
  const double loss_cpu = to_host(*cpu.backend, cpu.loss_sum).host<double>()[0];
  const double loss_gpu = to_host(*gpu.backend, gpu.loss_sum).host<double>()[0];
  EXPECT_NEAR(loss_gpu, loss_cpu, 1e-4 * std::abs(loss_cpu));
  for (const ArenaEntry& e : cpu.graph->param_layout().entries()) {
    const double err = relative_error(gpu.graph->read_grad(e.name), cpu.graph->read_grad(e.name));
    EXPECT_LT(err, 1e-3) << "gradient of " << e.name;  // backward sums in another order: looser than forward
  }
  for (const ArenaEntry& e : cpu.graph->buffer_layout().entries()) {
    if (e.dtype != DType::f32) continue;
    EXPECT_LT(relative_error(gpu.graph->read(e.name), cpu.graph->read(e.name)), 1e-4) << "buffer " << e.name;
  }
  EXPECT_EQ(to_host(*gpu.backend, gpu.graph->buffers().view("bn1.num_batches_tracked")).host<int64_t>()[0], 1);
}

TEST(CudaBackend, ASteadyStepCallsNeitherCudaMallocNorCudaFree) {
  if (cuda_devices() == 0) GTEST_SKIP() << "no GPU is visible on this machine";
  Tensor x = Tensor::zeros_host(Shape{8, 32, 32, 3});
  Tensor labels = Tensor::zeros_host(Shape{8}, DType::i32);
  TrainedModel gpu = make_run("cuda", x, labels);
  step(gpu);
  const uint64_t before = gpu.backend->raw_device_allocations();
  for (int i = 0; i < 3; ++i) step(gpu);
  EXPECT_EQ(gpu.backend->raw_device_allocations(), before);
}

}  // namespace
}  // namespace convoy::ops
