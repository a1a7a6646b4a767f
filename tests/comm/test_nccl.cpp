// The NCCL communicator on GPUs, under mpirun: one rank on one GPU (np 1), two ranks on two GPUs (np 2;
// with one GPU visible np 2 checks instead that two ranks on one GPU are refused in convoy's words).
// Skipped where no GPU is visible, which is every machine of this project's so far.
#include <gtest/gtest.h>

#include <vector>

#include "comm/communicator.h"
#include "comm/world.h"
#include "ops/backend.h"
#include "ops/math/elementwise.h"
#include "tests/comm/mpi_env.h"

namespace convoy::test {
namespace {

struct Gpu {
  std::unique_ptr<ops::Backend> backend;
  std::unique_ptr<comm::Communicator> comm;
};

// The rank's GPU backend and an NCCL communicator, or a skip with the reason.
bool make_gpu(Gpu& g, std::string& why) {
  comm::World& w = *g_world;
  const int gpus = ops::cuda_devices();
  if (gpus == 0) return why = "no GPU is visible on this machine", false;
  if (gpus < w.local_size()) return why = "fewer GPUs than ranks on this node (the one-GPU-per-rank check covers it)", false;
  ops::BackendOptions o;
  o.local_rank = w.local_rank(), o.local_size = w.local_size();
  g.backend = ops::make_backend("cuda", o);
  comm::CommOptions co;
  co.timeout_s = 60;
  g.comm = comm::make_nccl_communicator(w, g.backend->device(), co);
  return true;
}

std::vector<float> values(const ops::Tensor& t, ops::Backend& b) {
  ops::Tensor h = ops::to_host(b, t);
  return std::vector<float>(h.host<float>(), h.host<float>() + h.numel());
}

TEST(Nccl, AllReduceSumsAndAveragesEveryDtypeAfterTheReadyEvent) {
  Gpu g;
  std::string why;
  if (!make_gpu(g, why)) GTEST_SKIP() << why;
  const int n = g_world->size(), r = g_world->rank();
  ops::Backend& b = *g.backend;
  for (ops::DType t : {ops::DType::f32, ops::DType::bf16, ops::DType::f16}) {
    for (comm::ReduceOp op : {comm::ReduceOp::sum, comm::ReduceOp::average}) {
      const int64_t count = (1 << 20) + 3;
      ops::Tensor f32 = ops::Tensor::empty(ops::Shape{count}, ops::DType::f32, b.allocator());
      ops::Tensor data = t == ops::DType::f32 ? f32 : ops::Tensor::empty(ops::Shape{count}, t, b.allocator());
      // Written on the compute stream, then handed over with an event: NCCL must wait for it.
      b.fill(b.context(), f32, static_cast<double>(r + 1));
      if (t != ops::DType::f32) b.cast(b.context(), f32, data);
      auto ready = b.make_event();
      ready->record(b.context());
      g.comm->all_reduce(data, op, comm::fingerprint("test", static_cast<uint64_t>(count), 0), "test all-reduce",
                         ready.get())
          ->wait();
      if (t != ops::DType::f32) b.cast(b.context(), data, f32);
      const double want = op == comm::ReduceOp::sum ? n * (n + 1) / 2.0 : (n + 1) / 2.0;
      const std::vector<float> got = values(f32, b);
      for (int64_t i : {int64_t{0}, count / 2, count - 1})
        EXPECT_NEAR(got[static_cast<size_t>(i)], want, 1e-2 * want) << ops::dtype_name(t) << " element " << i;
    }
  }
}

TEST(Nccl, BroadcastAllGatherAndBarrier) {
  Gpu g;
  std::string why;
  if (!make_gpu(g, why)) GTEST_SKIP() << why;
  const int n = g_world->size(), r = g_world->rank();
  ops::Backend& b = *g.backend;
  ops::Tensor x = ops::Tensor::empty(ops::Shape{1000}, ops::DType::f32, b.allocator());
  b.fill(b.context(), x, r == 0 ? 42.0 : -1.0);
  b.context().synchronize();
  g.comm->broadcast(x, 0, comm::fingerprint("bcast", 0, 4000), "test broadcast")->wait();
  EXPECT_EQ(values(x, b)[999], 42.f);
  ops::Tensor send = ops::Tensor::empty(ops::Shape{10}, ops::DType::f32, b.allocator());
  ops::Tensor recv = ops::Tensor::empty(ops::Shape{10 * n}, ops::DType::f32, b.allocator());
  b.fill(b.context(), send, static_cast<double>(r));
  b.context().synchronize();
  g.comm->all_gather(send, recv, comm::fingerprint("gather", 0, 40), "test all-gather")->wait();
  const std::vector<float> all = values(recv, b);
  for (int q = 0; q < n; ++q) EXPECT_EQ(all[static_cast<size_t>(q * 10 + 9)], static_cast<float>(q));
  g.comm->barrier("test barrier")->wait();
}

TEST(Nccl, HostMemoryIsRefusedWithTheDevices) {
  Gpu g;
  std::string why;
  if (!make_gpu(g, why)) GTEST_SKIP() << why;
  std::vector<float> host(8);
  try {
    g.comm->all_reduce(comm::host_values(host.data(), host.size()), comm::ReduceOp::sum, 1, "host buffer");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("this tensor lives on cpu"), std::string::npos) << e.what();
  }
}

TEST(Nccl, TwoRanksOnOneGpuAreRefusedInConvoysWords) {
  comm::World& w = *g_world;
  if (ops::cuda_devices() == 0) GTEST_SKIP() << "no GPU is visible on this machine";
  if (w.local_size() < 2 || ops::cuda_devices() >= w.local_size())
    GTEST_SKIP() << "needs more ranks on this node than GPUs (np 2 on a one-GPU machine)";
  auto backend = ops::make_backend("cuda", ops::BackendOptions{});  // every rank on GPU 0
  try {
    comm::make_nccl_communicator(w, backend->device(), comm::CommOptions{});
    FAIL() << "two ranks on one GPU were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("share one GPU"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace convoy::test
