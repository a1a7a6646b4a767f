// Collectives under a real mpirun: data checked on every rank, every dtype, sizes from one element to
// 64 MB (chunked all-reduces included); the bucketed gradient reducer against one plain all-reduce of
// the whole arena, on the CPU and through host staging on the strict device; the per-step vote;
// startup agreement.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>

#include <mpi.h>

#include "comm/agreement.h"
#include "comm/communicator.h"
#include "comm/grad_reducer.h"
#include "comm/step_vote.h"
#include "ops/math/elementwise.h"
#include "ops/models/zoo.h"
#include "tests/comm/mpi_env.h"

namespace convoy::test {
namespace {

using comm::ReduceOp;

// Small integers are exact in every dtype (bf16 holds integers up to 256 exactly, f16 up to 2048).
float value(int rank, size_t i) { return static_cast<float>((rank + 1) * static_cast<int>(i % 7) - 3); }

// This rank's values (value(rank, i)) in `dtype`, all-reduced by `c` with `op`, then checked on every
// element against the sum (or average) over the ranks; returns how many differ (the first 3 are reported).
size_t all_reduce_wrong(comm::Communicator& c, ops::DType dtype, size_t count, ReduceOp op, int rank, int ranks) {
  std::vector<float> f(count);
  std::vector<uint16_t> h(count);
  for (size_t i = 0; i < count; ++i) {
    f[i] = value(rank, i);
    if (dtype == ops::DType::bf16) h[i] = math::f32_to_bf16(f[i]);
    if (dtype == ops::DType::f16) h[i] = math::f32_to_f16(f[i]);
  }
  ops::Tensor data = dtype == ops::DType::f32 ? comm::host_values(f.data(), count)
                                              : ops::Tensor::wrap(h.data(), ops::Shape{static_cast<int64_t>(count)}, dtype);
  c.all_reduce(data, op, comm::fingerprint("test", count, 0), "test all-reduce")->wait();
  size_t bad = 0;
  for (size_t i = 0; i < count; ++i) {
    double want = 0;
    for (int r = 0; r < ranks; ++r) want += value(r, i);
    if (op == ReduceOp::average) want /= ranks;
    double got = dtype == ops::DType::f32   ? f[i]
                 : dtype == ops::DType::bf16 ? math::bf16_to_f32(h[i])
                                             : math::f16_to_f32(h[i]);
    if (std::fabs(got - want) > 1e-2 * std::max(1.0, std::fabs(want)) && bad++ < 3)
      ADD_FAILURE() << ops::dtype_name(dtype) << " element " << i << ": " << got << " != " << want;
  }
  return bad;
}

class Collectives : public ::testing::TestWithParam<std::tuple<ops::DType, size_t>> {};

TEST_P(Collectives, AllReduceSumsAndAveragesOnEveryRank) {
  auto [dtype, count] = GetParam();
  comm::World& w = *g_world;
  comm::CommOptions o;
  o.timeout_s = 30;
  o.chunk_bytes = 1 << 20;  // the 16 M-element case moves in many pieces
  auto c = comm::make_mpi_communicator(w, o);
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::average})
    EXPECT_EQ(all_reduce_wrong(*c, dtype, count, op, w.rank(), w.size()), 0u)
        << ops::dtype_name(dtype) << " count " << count;
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, Collectives,
    ::testing::Combine(::testing::Values(ops::DType::f32, ops::DType::bf16, ops::DType::f16),
                       ::testing::Values(size_t{1}, size_t{7}, size_t{1000}, size_t{262147}, size_t{16} << 20)),
    [](const auto& info) {
      return std::string(ops::dtype_name(std::get<0>(info.param))) + "_" + std::to_string(std::get<1>(info.param));
    });

// The hierarchical all-reduce (reduce in the node, all-reduce among the leaders, broadcast in the node)
// gives flat's result: exactly on small integers in every dtype, sum and average, chunked or not; within
// float tolerance on random values, whose sums it adds in another order. Nodes of 1, 2 and all ranks.
TEST(Collectives, HierarchicalAllReduceEqualsFlat) {
  comm::World& w = *g_world;
  const int n = w.size();
  for (int per_node : {1, 2, n}) {
    if (n % per_node) continue;
    SCOPED_TRACE("ranks per node " + std::to_string(per_node));
    comm::CommOptions o = comm::plane_options("data", 30);
    o.chunk_bytes = 1 << 16;
    auto flat = comm::make_mpi_communicator(w, o);
    o.algorithm = comm::Algorithm::hierarchical;
    o.ranks_per_node = per_node;
    auto hier = comm::make_mpi_communicator(w, o);
    for (ops::DType dtype : {ops::DType::f32, ops::DType::bf16, ops::DType::f16})
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::average})  // 40007: several chunks and a ragged last one
        EXPECT_EQ(all_reduce_wrong(*hier, dtype, 40007, op, w.rank(), n), 0u) << ops::dtype_name(dtype);
    std::vector<float> a(100003), b;
    uint64_t s = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(w.rank() + 1);
    for (float& x : a) x = static_cast<float>(static_cast<double>((s = math::mix64(s)) >> 11) * 0x1.0p-53 - 0.5);
    b = a;
    flat->all_reduce(comm::host_values(a.data(), a.size()), ReduceOp::sum, comm::fingerprint("r", 0, 0), "flat")->wait();
    hier->all_reduce(comm::host_values(b.data(), b.size()), ReduceOp::sum, comm::fingerprint("r", 1, 0), "hier")->wait();
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
    EXPECT_LT(worst, 1e-5 * n);
    if (n == 2) {
      EXPECT_EQ(a, b) << "two ranks: the same one addition whatever the algorithm";
    }
  }
}

TEST(Collectives, AlgorithmsByName) {
  EXPECT_EQ(comm::parse_algorithm("flat"), comm::Algorithm::flat);
  EXPECT_EQ(comm::parse_algorithm("hierarchical"), comm::Algorithm::hierarchical);
  EXPECT_THROW(comm::parse_algorithm("ring"), Error);
  // NCCL builds its own hierarchy: hierarchical is the MPI data plane's only.
  const ops::Device gpu{ops::DeviceKind::cuda, 0};
  EXPECT_NO_THROW(comm::require_algorithm("mpi", gpu, comm::Algorithm::hierarchical));
  EXPECT_NO_THROW(comm::require_algorithm("auto", ops::Device{}, comm::Algorithm::hierarchical));
  EXPECT_NO_THROW(comm::require_algorithm("nccl", gpu, comm::Algorithm::flat));
  for (const char* backend : {"nccl", "auto"}) {
    try {
      comm::require_algorithm(backend, gpu, comm::Algorithm::hierarchical);
      ADD_FAILURE() << backend << " on a GPU accepted the hierarchical all-reduce";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find("NCCL builds its own hierarchy"), std::string::npos) << e.message();
    }
  }
}

TEST(Collectives, BroadcastAllGatherBarrierMaxAndWideTypes) {
  comm::World& w = *g_world;
  auto c = comm::make_mpi_communicator(w, comm::plane_options("data", 30));
  std::vector<int32_t> b(100, w.rank() == 0 ? 42 : -1);
  c->broadcast(comm::host_values(b.data(), b.size()), 0, comm::fingerprint("b", 0, 400), "broadcast")->wait();
  for (int32_t v : b) ASSERT_EQ(v, 42);
  int64_t mine[2] = {w.rank(), 10 * w.rank()};
  std::vector<int64_t> all(2 * static_cast<size_t>(w.size()));
  c->all_gather(comm::host_values(mine, 2), comm::host_values(all.data(), all.size()), comm::fingerprint("g", 0, 16),
                "all-gather")
      ->wait();
  for (int r = 0; r < w.size(); ++r) {
    EXPECT_EQ(all[2 * r], r);
    EXPECT_EQ(all[2 * r + 1], 10 * r);
  }
  auto barrier = c->barrier("barrier");
  EXPECT_TRUE(barrier->wait_for(30));
  EXPECT_TRUE(barrier->done());
  double d[2] = {0.5, static_cast<double>(w.rank())};
  c->all_reduce(comm::host_values(d, 2), ReduceOp::sum, comm::fingerprint("d", 0, 16), "f64")->wait();
  EXPECT_DOUBLE_EQ(d[0], 0.5 * w.size());
  EXPECT_DOUBLE_EQ(d[1], w.size() * (w.size() - 1) / 2.0);
  int64_t i = 3;
  c->all_reduce(comm::host_values(&i, 1), ReduceOp::sum, comm::fingerprint("i", 0, 8), "i64")->wait();
  EXPECT_EQ(i, 3 * w.size());
  int64_t m[2] = {w.rank(), -w.rank()};
  c->all_reduce(comm::host_values(m, 2), ReduceOp::max, comm::fingerprint("m", 0, 16), "max")->wait();
  EXPECT_EQ(m[0], w.size() - 1);
  EXPECT_EQ(m[1], 0);
}

TEST(Collectives, RefusesMemoryItCannotMove) {
  comm::World& w = *g_world;
  auto c = comm::make_mpi_communicator(w, comm::plane_options("data", 30));
  auto strict = ops::make_strict_backend(1);
  ops::Tensor t = ops::Tensor::empty(ops::Shape{8}, ops::DType::f32, strict->allocator());
  try {
    c->all_reduce(t, ReduceOp::sum, comm::fingerprint("x", 0, 32), "a device all-reduce");
    FAIL() << "MPI accepted device memory";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("moves host memory, but this tensor lives on cpu-strict"), std::string::npos)
        << e.message();
  }
}

// Collectives run in call order, and while they run the caller goes on: rank 0 queues an all-reduce that
// rank 1 joins only after rank 0 sends it a message from the calling thread. A communicator that ran the
// collective inside all_reduce() would deadlock here (and time out).
TEST(Collectives, CallsRunInOrderAndOverlapTheCaller) {
  comm::World& w = *g_world;
  auto c = comm::make_mpi_communicator(w, comm::plane_options("data", 30));
  std::vector<std::vector<float>> bufs(8, std::vector<float>(100000, 1.f));
  std::vector<std::shared_ptr<comm::Work>> works;
  int token = 7;
  if (w.rank() == 1) MPI_Recv(&token, 1, MPI_INT, 0, 99, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  for (size_t k = 0; k < bufs.size(); ++k)
    works.push_back(c->all_reduce(comm::host_values(bufs[k].data(), bufs[k].size()), ReduceOp::sum,
                                  comm::fingerprint("o", k, 400000), "ordered"));
  if (w.rank() == 0) {
    // Nothing can have finished: rank 1 has not joined yet.
    for (auto& wk : works) EXPECT_FALSE(wk->done());
    for (int r = 1; r < w.size(); ++r) MPI_Send(&token, 1, MPI_INT, r, 99, MPI_COMM_WORLD);
  } else if (w.rank() > 1) {
    MPI_Recv(&token, 1, MPI_INT, 0, 99, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  }
  for (size_t k = 0; k < works.size(); ++k) {
    works[k]->wait();
    EXPECT_EQ(works[k]->sequence(), k);
    EXPECT_EQ(bufs[k][99999], static_cast<float>(w.size()));
  }
}

// Gradient values for the reducer tests: fractions that bf16 cannot hold exactly, so the wire's rounding
// is exercised, and whose sums over up to 4 ranks stay away from rounding ties.
float grad_value(size_t i, int rank) { return 0.1f * static_cast<float>((i * 7 + static_cast<size_t>(rank)) % 23) + 0.013f; }

// The reducer's bucketed, overlapped sums equal one plain all-reduce of the whole gradient arena, on the
// CPU (in place) and on the strict device (through host staging buffers); with a 16-bit wire they equal
// the sum of the rank's values each rounded to the wire type, summed and rounded as MPI sums them.
class Reducer : public ::testing::TestWithParam<std::string> {};

TEST_P(Reducer, BucketsEqualAnUnbucketedReference) {
  comm::World& w = *g_world;
  auto backend = ops::make_backend(GetParam(), 1);
  auto g = ops::make_model("resnet20", {10, 3, false});
  g->setup(backend.get(), ops::Shape{2, 16, 16, 3});
  auto c = comm::make_mpi_communicator(w, comm::plane_options("data", 30));
  const size_t n = static_cast<size_t>(g->grads().flat().numel());
  auto fill = [&](std::vector<float>& v, int rank) {
    v.resize(n);
    for (size_t i = 0; i < n; ++i) v[i] = grad_value(i, rank);
  };
  std::vector<float> mine;
  fill(mine, w.rank());
  for (ops::DType wire : {ops::DType::f32, ops::DType::bf16, ops::DType::f16}) {
    comm::GradReducer reducer(*g, *c, {0.01, 0.05, wire});  // small buckets: many of them
    ASSERT_GT(reducer.buckets().size(), 5u);
    EXPECT_EQ(reducer.staged(), GetParam() != "cpu");
    // Every byte of every parameter is in exactly one bucket.
    size_t covered = 0;
    for (const auto& b : reducer.buckets())
      for (size_t e : b.entries) covered += g->param_layout().entry(e).bytes;
    size_t params = 0;
    for (const auto& e : g->param_layout().entries()) params += e.bytes;
    EXPECT_EQ(covered, params);
    // The reference: every rank's values through the wire type, summed in rank order as MPI's reduction
    // of two ranks does, in f32 (for f32) or rounded to the wire type after each sum.
    std::vector<float> want(n, 0.f);
    for (int r = 0; r < w.size(); ++r) {
      std::vector<float> v;
      fill(v, r);
      for (size_t i = 0; i < n; ++i) {
        if (wire == ops::DType::f32) {
          want[i] += v[i];
        } else if (wire == ops::DType::bf16) {
          want[i] = math::bf16_to_f32(math::f32_to_bf16(want[i] + math::bf16_to_f32(math::f32_to_bf16(v[i]))));
        } else {
          want[i] = math::f16_to_f32(math::f32_to_f16(want[i] + math::f16_to_f32(math::f32_to_f16(v[i]))));
        }
      }
    }
    for (size_t round = 0; round < 2; ++round) {  // twice: the reducer resets between steps
      ops::Tensor grads = g->grads().flat();
      ops::from_host(*backend, ops::Tensor::wrap(mine.data(), grads.shape(), ops::DType::f32), grads);
      for (size_t layer = g->num_layers(); layer-- > 0;) reducer.on_layer_done(layer);
      reducer.finish();
      const ops::Tensor got = ops::to_host(*backend, g->grads().flat());
      size_t bad = 0, rounded = 0;
      for (const auto& e : g->param_layout().entries())
        for (size_t i = e.offset / 4; i < (e.offset + e.bytes) / 4; ++i) {
          const float x = got.host<float>()[i];
          const double tol = w.size() > 2 ? 1e-2 * std::fabs(want[i]) : 0.0;  // other reduction orders round otherwise
          if (std::fabs(x - want[i]) > tol && bad++ < 3)
            ADD_FAILURE() << e.name << " element " << i << ": " << x << " != " << want[i];
          float exact = 0;
          for (int r = 0; r < w.size(); ++r) exact += grad_value(i, r);
          rounded += x != exact;
        }
      EXPECT_EQ(bad, 0u) << "wire " << ops::dtype_name(wire) << " round " << round;
      if (wire != ops::DType::f32) {
        EXPECT_GT(rounded, 0u) << "the values must exercise the wire's rounding";
      }
    }
  }
}

// A layer's gradients marked ready twice in one step is a bug in the caller, named at once.
TEST_P(Reducer, RejectsAGradientMarkedReadyTwice) {
  comm::World& w = *g_world;
  auto backend = ops::make_backend(GetParam(), 1);
  auto g = ops::make_model("lenet5");
  g->setup(backend.get(), ops::Shape{1, 28, 28, 1});
  auto c = comm::make_mpi_communicator(w, comm::plane_options("data", 30));
  comm::GradReducer reducer(*g, *c, {});
  const size_t last = g->num_layers() - 1;
  reducer.on_layer_done(last);
  try {
    reducer.on_layer_done(last);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("marked ready twice"), std::string::npos) << e.message();
  }
  for (size_t layer = last; layer-- > 0;) reducer.on_layer_done(layer);
  reducer.finish();
}

INSTANTIATE_TEST_SUITE_P(Devices, Reducer, ::testing::Values("cpu", "cpu-strict"),
                         [](const auto& info) { return info.param == "cpu" ? std::string("cpu") : "cpu_strict"; });

// The per-step vote: the same verdict everywhere, a stop or a non-finite loss on one rank seen by all,
// and matching records of the step's data-plane collectives pass.
TEST(StepVote, CombinesEveryRanksBallot) {
  comm::World& w = *g_world;
  auto record = std::make_shared<comm::StepRecord>();
  auto control = comm::make_mpi_communicator(w, comm::plane_options("control", 30, record));
  auto data = comm::make_mpi_communicator(w, comm::plane_options("data", 30, record));
  for (int step = 0; step < 4; ++step) {
    data->set_step(step);
    float x = 1.f;
    data->all_reduce(comm::host_values(&x, 1), ReduceOp::sum, comm::fingerprint("bucket", 0, 4), "bucket 0")->wait();
    comm::StepBallot mine;
    mine.stop = step == 1 && w.rank() == w.size() - 1;
    mine.nonfinite = step == 2 && w.rank() == 0;
    mine.overflow = step == 3 && w.rank() == w.size() - 1;  // one rank's gradients overflowed: all skip
    comm::StepVerdict v = comm::vote_step(*control, record.get(), step, mine);
    EXPECT_EQ(v.stop, step == 1);
    EXPECT_EQ(v.nonfinite, step == 2);
    EXPECT_EQ(v.overflow, step == 3) << "rank " << w.rank();
    if (step == 2) {
      EXPECT_EQ(v.nonfinite_ranks, std::vector<int>{0});
    }
    EXPECT_FALSE(v.data_failed);
  }
}

// A rank whose step differs in a way MPI does not notice (the same bytes, another collective) is caught by
// the vote, on every rank, with what each rank issued.
TEST(StepVote, NamesEveryRanksCollectivesWhenTheStepsDiffer) {
  comm::World& w = *g_world;
  if (w.size() < 2) GTEST_SKIP() << "needs two ranks";
  auto record = std::make_shared<comm::StepRecord>();
  auto control = comm::make_mpi_communicator(w, comm::plane_options("control", 30, record));
  auto data = comm::make_mpi_communicator(w, comm::plane_options("data", 30, record));
  data->set_step(5);
  float x[4] = {1, 2, 3, 4};
  const int id = w.rank() == 1 ? 7 : 3;
  data->all_reduce(comm::host_values(x, 4), ReduceOp::sum, comm::fingerprint("bucket", id, 16),
                   "bucket " + std::to_string(id))
      ->wait();
  try {
    comm::vote_step(*control, record.get(), 5, {});
    FAIL() << "the vote passed although rank 1 issued another collective";
  } catch (const Error& e) {
    const std::string m = e.message();
    EXPECT_NE(m.find("step 5: the ranks issued different data-plane collectives"), std::string::npos) << m;
    EXPECT_NE(m.find("rank 1 issued 1 collective: 'bucket 7' (16 B)"), std::string::npos) << m;
    EXPECT_NE(m.find("issued 1 collective: 'bucket 3' (16 B)"), std::string::npos) << m;
  }
}

TEST(Agreement, RanksAgreeAfterTheBroadcastFromRankZero) {
  comm::World& w = *g_world;
  auto backend = ops::make_cpu_backend(1);
  auto g = ops::make_model("lenet5");
  g->setup(backend.get(), ops::Shape{1, 28, 28, 1});
  g->init_params(100 + static_cast<uint64_t>(w.rank()));  // different weights on every rank
  auto c = comm::make_mpi_communicator(w, comm::plane_options("data", 30));
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
  auto c = comm::make_mpi_communicator(w, comm::plane_options("data", 30));
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

TEST(Agreement, DriftedWeightsNameTheRanksAndTheFirstTensor) {
  comm::World& w = *g_world;
  if (w.size() < 2) GTEST_SKIP() << "needs two ranks";
  auto backend = ops::make_cpu_backend(1);
  auto g = ops::make_model("lenet5");
  g->setup(backend.get(), ops::Shape{1, 28, 28, 1});
  g->init_params(5);
  auto c = comm::make_mpi_communicator(w, comm::plane_options("control", 30));
  comm::check_weights_agree(*c, *g, 1000);  // equal weights: no throw
  // Rank 1's fc2.bias and fc3.weight drift by one ulp.
  for (const char* name : {"fc3.weight", "fc2.bias"}) {
    ops::Tensor t = g->read(name);
    if (w.rank() == 1) {
      float* p = static_cast<float*>(t.data());
      p[0] = std::nextafter(p[0], 1e30f);
    }
    g->write(name, t);
  }
  try {
    comm::check_weights_agree(*c, *g, 2000);
    FAIL() << "weights that differ went unnoticed";
  } catch (const Error& e) {
    const std::string m = e.message();
    EXPECT_NE(m.find("step 2000: the ranks' weights drifted apart: rank 1 holds parameters"), std::string::npos) << m;
    EXPECT_NE(m.find("the first differing tensor: fc2.bias; 2 of 10 tensors differ"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace convoy::test
