// Collectives under a real mpirun: data checked on every rank, every dtype, sizes from one element to
// 64 MB; the bucketed gradient reducer against one plain all-reduce of the whole arena; startup agreement.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "comm/agreement.h"
#include "comm/communicator.h"
#include "comm/grad_reducer.h"
#include "ops/math/elementwise.h"
#include "ops/models/zoo.h"
#include "tests/comm/mpi_env.h"

namespace convoy::test {
namespace {

using comm::ReduceOp;

// Small integers are exact in every dtype (bf16 holds integers up to 256 exactly, f16 up to 2048).
float value(int rank, size_t i) { return static_cast<float>((rank + 1) * static_cast<int>(i % 7) - 3); }

class Collectives : public ::testing::TestWithParam<std::tuple<ops::DType, size_t>> {};

TEST_P(Collectives, AllReduceSumsAndAveragesOnEveryRank) {
  auto [dtype, count] = GetParam();
  comm::World& w = *g_world;
  auto c = comm::make_mpi_communicator(w, {30});
  const int n = w.size();
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::average}) {
    std::vector<float> f(count);
    std::vector<uint16_t> h(count);
    for (size_t i = 0; i < count; ++i) {
      f[i] = value(w.rank(), i);
      if (dtype == ops::DType::bf16) h[i] = math::f32_to_bf16(f[i]);
      if (dtype == ops::DType::f16) h[i] = math::f32_to_f16(f[i]);
    }
    void* data = dtype == ops::DType::f32 ? static_cast<void*>(f.data()) : static_cast<void*>(h.data());
    c->all_reduce(data, count, dtype, op, comm::fingerprint("test", count, 0), "test all-reduce")->wait();
    size_t bad = 0;
    for (size_t i = 0; i < count; ++i) {
      double want = 0;
      for (int r = 0; r < n; ++r) want += value(r, i);
      if (op == ReduceOp::average) want /= n;
      double got = dtype == ops::DType::f32   ? f[i]
                   : dtype == ops::DType::bf16 ? math::bf16_to_f32(h[i])
                                               : math::f16_to_f32(h[i]);
      if (std::fabs(got - want) > 1e-2 * std::max(1.0, std::fabs(want)) && bad++ < 3)
        ADD_FAILURE() << "element " << i << ": " << got << " != " << want;
    }
    EXPECT_EQ(bad, 0u) << ops::dtype_name(dtype) << " count " << count;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, Collectives,
    ::testing::Combine(::testing::Values(ops::DType::f32, ops::DType::bf16, ops::DType::f16),
                       ::testing::Values(size_t{1}, size_t{7}, size_t{1000}, size_t{262147}, size_t{16} << 20)),
    [](const auto& info) {
      return std::string(ops::dtype_name(std::get<0>(info.param))) + "_" + std::to_string(std::get<1>(info.param));
    });

TEST(Collectives, BroadcastAllGatherBarrierAndWideTypes) {
  comm::World& w = *g_world;
  auto c = comm::make_mpi_communicator(w, {30});
  std::vector<int32_t> b(100, w.rank() == 0 ? 42 : -1);
  c->broadcast(b.data(), b.size() * 4, 0, comm::fingerprint("b", 0, 400), "broadcast")->wait();
  for (int32_t v : b) ASSERT_EQ(v, 42);
  int64_t mine[2] = {w.rank(), 10 * w.rank()};
  std::vector<int64_t> all(2 * static_cast<size_t>(w.size()));
  c->all_gather(mine, all.data(), sizeof mine, comm::fingerprint("g", 0, 16), "all-gather")->wait();
  for (int r = 0; r < w.size(); ++r) {
    EXPECT_EQ(all[2 * r], r);
    EXPECT_EQ(all[2 * r + 1], 10 * r);
  }
  auto barrier = c->barrier("barrier");
  EXPECT_TRUE(barrier->wait_for(30));
  EXPECT_TRUE(barrier->done());
  double d[2] = {0.5, static_cast<double>(w.rank())};
  c->all_reduce(d, 2, ops::DType::f64, ReduceOp::sum, comm::fingerprint("d", 0, 16), "f64")->wait();
  EXPECT_DOUBLE_EQ(d[0], 0.5 * w.size());
  EXPECT_DOUBLE_EQ(d[1], w.size() * (w.size() - 1) / 2.0);
  int64_t i = 3;
  c->all_reduce(&i, 1, ops::DType::i64, ReduceOp::sum, comm::fingerprint("i", 0, 8), "i64")->wait();
  EXPECT_EQ(i, 3 * w.size());
}

TEST(Collectives, CallsRunInOrderAndOverlapTheCaller) {
  comm::World& w = *g_world;
  auto c = comm::make_mpi_communicator(w, {30});
  std::vector<std::vector<float>> bufs(8, std::vector<float>(100000, 1.f));
  std::vector<std::shared_ptr<comm::Work>> works;
  for (size_t k = 0; k < bufs.size(); ++k)
    works.push_back(c->all_reduce(bufs[k].data(), bufs[k].size(), ops::DType::f32, ReduceOp::sum,
                                  comm::fingerprint("o", k, 400000), "ordered"));
  for (size_t k = 0; k < works.size(); ++k) {
    works[k]->wait();
    EXPECT_EQ(works[k]->sequence(), k);
    EXPECT_EQ(bufs[k][99999], static_cast<float>(w.size()));
  }
}

// The reducer's bucketed, overlapped sums equal one plain all-reduce of the whole gradient arena.
TEST(GradReducer, BucketsEqualAnUnbucketedReference) {
  comm::World& w = *g_world;
  auto backend = ops::make_cpu_backend(1);
  auto g = ops::make_model("resnet20", {10, 3, false});
  g->setup(backend.get(), ops::Shape{2, 16, 16, 3});
  auto c = comm::make_mpi_communicator(w, {30});
  for (ops::DType wire : {ops::DType::f32, ops::DType::bf16}) {
    comm::GradReducer reducer(*g, *c, {0.01, 0.05, wire});  // small buckets: many of them
    ASSERT_GT(reducer.buckets().size(), 5u);
    // Every byte of every parameter is in exactly one bucket.
    size_t covered = 0;
    for (const auto& b : reducer.buckets())
      for (size_t e : b.entries) covered += g->param_layout().entry(e).bytes;
    size_t params = 0;
    for (const auto& e : g->param_layout().entries()) params += e.bytes;
    EXPECT_EQ(covered, params);

    float* grads = static_cast<float*>(g->grads().flat().data());
    const size_t n = static_cast<size_t>(g->grads().flat().numel());
    // Values that sum exactly even through bf16: small integers.
    for (size_t i = 0; i < n; ++i) grads[i] = static_cast<float>((static_cast<int>(i) + w.rank()) % 5);
    std::vector<float> reference(grads, grads + n);
    c->all_reduce(reference.data(), n, ops::DType::f32, ReduceOp::sum, comm::fingerprint("ref", 0, n), "reference")
        ->wait();
    for (size_t round = 0; round < 2; ++round) {  // twice: the reducer resets between steps
      for (size_t i = 0; i < n; ++i) grads[i] = static_cast<float>((static_cast<int>(i) + w.rank()) % 5);
      for (size_t layer = g->num_layers(); layer-- > 0;) reducer.on_layer_done(layer);
      reducer.finish();
      size_t bad = 0;
      for (const auto& e : g->param_layout().entries())
        for (size_t i = e.offset / 4; i < (e.offset + e.bytes) / 4; ++i)
          if (grads[i] != reference[i] && bad++ < 3)
            ADD_FAILURE() << e.name << " element " << i << ": " << grads[i] << " != " << reference[i];
      EXPECT_EQ(bad, 0u) << "wire " << ops::dtype_name(wire) << " round " << round;
    }
  }
}

TEST(Agreement, RanksAgreeAfterTheBroadcastFromRankZero) {
  comm::World& w = *g_world;
  auto backend = ops::make_cpu_backend(1);
  auto g = ops::make_model("lenet5");
  g->setup(backend.get(), ops::Shape{1, 28, 28, 1});
  g->init_params(100 + static_cast<uint64_t>(w.rank()));  // different weights on every rank
  auto c = comm::make_mpi_communicator(w, {30});
  comm::broadcast_model(*c, *g);
  comm::check_startup_agreement(*c, "config-hash", *g);  // no throw: everything equal now
  // Rank 0's values arrived everywhere.
  auto ref = ops::make_model("lenet5");
  ref->setup(backend.get(), ops::Shape{1, 28, 28, 1});
  ref->init_params(100);
  ops::Tensor a = g->read("fc1.weight"), b = ref->read("fc1.weight");
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.bytes()));
}

TEST(Agreement, MismatchesNameTheRanks) {
  comm::World& w = *g_world;
  if (w.size() < 2) GTEST_SKIP() << "needs two ranks";
  auto backend = ops::make_cpu_backend(1);
  auto g = ops::make_model("lenet5");
  g->setup(backend.get(), ops::Shape{1, 28, 28, 1});
  g->init_params(5);
  auto c = comm::make_mpi_communicator(w, {30});
  try {
    comm::check_startup_agreement(*c, w.rank() == 1 ? "other-config" : "config", *g);
    FAIL() << "a config mismatch went unnoticed";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("config hash"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("rank 1"), std::string::npos) << e.message();
  }
  if (w.rank() == 1) g->write("fc3.bias", ops::Tensor::zeros_host(ops::Shape{10}));
  try {
    comm::check_startup_agreement(*c, "config", *g);
    FAIL() << "a parameter mismatch went unnoticed";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("parameters"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("rank 1"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace convoy::test
