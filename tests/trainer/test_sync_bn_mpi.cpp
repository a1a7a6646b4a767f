// SyncBN under mpirun -np 2: two ranks of 32 samples with model.sync_bn's batch norm give the outputs,
// running statistics and (rank-averaged) gradients of one rank with all 64 samples and plain batch norm.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "comm/communicator.h"
#include "comm/sync_stats.h"
#include "ops/models/zoo.h"
#include "tests/comm/mpi_env.h"

namespace convoy::test {
namespace {

std::vector<float> host(ops::Backend& be, const ops::Tensor& t) {
  ops::Tensor h = ops::to_host(be, t);
  return std::vector<float>(h.host<float>(), h.host<float>() + h.numel());
}

double rel(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) d += double(a[i] - b[i]) * (a[i] - b[i]), n += double(a[i]) * a[i];
  return std::sqrt(d / std::max(n, 1e-30));
}

TEST(SyncBatchNorm, TwoRanksOf32EqualOneRankOf64) {
  comm::World& w = *g_world;
  ASSERT_EQ(w.size(), 2) << "run under mpirun -np 2";
  const int64_t N = 64, half = 32, S = 8, C = 3, K = 10;
  std::mt19937 rng(3);  // the same global batch on both ranks
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(N * S * S * C));
  for (float& v : x) v = normal(rng) * 2 + 0.5f;
  std::vector<int32_t> y(N);
  for (int64_t n = 0; n < N; ++n) y[n] = static_cast<int32_t>((n * 7) % K);
  const size_t image = static_cast<size_t>(S * S * C);

  auto backend = ops::make_backend("cpu", 1);
  comm::Planes planes = comm::make_planes("mpi", backend->device(), w, 30);
  comm::CommunicatorSum ranks(*planes.control, *backend);

  // Both models: resnet8 (BN, fused BN+ReLU, residual adds), one initialization.
  auto whole = ops::make_model("resnet8", {K, C, false});
  whole->setup(backend.get(), ops::Shape{N, S, S, C});
  whole->init_params(5);
  auto synced = ops::make_model("resnet8", {K, C, false});
  synced->set_cross_rank_sum(&ranks);
  synced->setup(backend.get(), ops::Shape{half, S, S, C});
  synced->init_params(5);

  auto step = [&](ops::Graph& g, const float* xs, const int32_t* ys, int64_t n) {
    auto loss = backend->softmax_cross_entropy(n, K);
    ops::Tensor sum = ops::Tensor::zeros_host(ops::Shape{1}, ops::DType::f64);
    ops::Tensor flag = ops::Tensor::zeros_host(ops::Shape{1}, ops::DType::i32);
    ops::Tensor xt = ops::Tensor::wrap(const_cast<float*>(xs), g.input_shape(), ops::DType::f32);
    ops::Tensor yt = ops::Tensor::wrap(const_cast<int32_t*>(ys), ops::Shape{n}, ops::DType::i32);
    const ops::Tensor& logits = g.forward(xt);
    std::vector<float> out = host(*backend, logits);
    loss->forward_backward(backend->context(), logits, yt, 0.f, 1.f, g.output_grad(), sum, flag);
    g.backward();
    return out;
  };
  const std::vector<float> all = step(*whole, x.data(), y.data(), N);
  const int64_t first = w.rank() * half;
  const std::vector<float> mine = step(*synced, x.data() + first * image, y.data() + first, half);

  // Forward: this rank's logits are the whole batch's rows of this rank.
  EXPECT_LT(rel(std::vector<float>(all.begin() + first * K, all.begin() + (first + half) * K), mine), 1e-5);
  // Running statistics (the global batch's) and, averaged over the ranks, every gradient.
  ops::Tensor g = synced->grads().flat();
  planes.data->all_reduce(g, comm::ReduceOp::sum, comm::fingerprint("grads", 0, g.bytes()), "gradients")->wait();
  for (const auto& e : whole->param_layout().entries()) {
    std::vector<float> a = host(*backend, whole->read_grad(e.name)), b = host(*backend, synced->read_grad(e.name));
    for (float& v : b) v /= 2;
    EXPECT_LT(rel(a, b), 1e-5) << e.name;
  }
  for (const auto& e : whole->buffer_layout().entries()) {
    if (e.dtype != ops::DType::f32) continue;
    EXPECT_LT(rel(host(*backend, whole->read(e.name)), host(*backend, synced->read(e.name))), 1e-5) << e.name;
  }
  // Plain batch norm on one rank's half differs: the test can tell the two apart.
  auto local = ops::make_model("resnet8", {K, C, false});
  local->setup(backend.get(), ops::Shape{half, S, S, C});
  local->init_params(5);
  const std::vector<float> plain = step(*local, x.data() + first * image, y.data() + first, half);
  EXPECT_GT(rel(mine, plain), 1e-3);
}

}  // namespace
}  // namespace convoy::test
