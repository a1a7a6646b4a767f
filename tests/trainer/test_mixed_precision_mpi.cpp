// Loss scaling under mpirun -np 2: an inf injected into one rank's gradient makes every rank skip the
// same step and halve the same scale (the overflow flag rides on the per-step vote), no rank applies that
// step's update, and the ranks' weights stay identical.
#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "comm/agreement.h"
#include "comm/communicator.h"
#include "comm/grad_reducer.h"
#include "ops/models/zoo.h"
#include "tests/comm/mpi_env.h"
#include "trainer/step.h"

namespace convoy::test {
namespace {

std::vector<float> flat_params(ops::Graph& g) {
  ops::Tensor h = ops::to_host(g.backend(), g.params().flat());
  return std::vector<float>(h.host<float>(), h.host<float>() + h.numel());
}

TEST(LossScaling, AnInfOnOneRankSkipsTheSameStepOnEveryRank) {
  comm::World& w = *g_world;
  ASSERT_EQ(w.size(), 2) << "run under mpirun -np 2";
  auto backend = ops::make_backend("cpu", 1);
  auto graph = ops::make_model("lenet5", {10, 1, false});
  graph->set_emulated_storage(ops::DType::f16);
  graph->setup(backend.get(), ops::Shape{8, 28, 28, 1});
  graph->init_params(3);
  trainer::Sgd sgd(*graph, trainer::SgdOptions{0.9f, 1e-4f, false, false});
  comm::Planes planes = comm::make_planes("mpi", backend->device(), w, 30);
  comm::broadcast_model(*planes.data, *graph);
  comm::GradReducer reducer(*graph, *planes.data, comm::ReducerOptions{});
  const int64_t inject_at = 2;
  int64_t step_no = 0;
  trainer::LossScaler scaler(trainer::LossScaleOptions{});
  trainer::TrainStep step(*graph, sgd, trainer::StepPlanes{&reducer, planes.control.get(), planes.record.get(), 2}, 10,
                          0.f, &scaler);
  // Rank 1 overwrites the last layer's weight gradient with inf at step 2, after its backward and before
  // its all-reduce.
  step.set_gradient_hook([&](size_t layer) {
    if (w.rank() == 1 && step_no == inject_at && layer == graph->num_layers() - 1) {
      ops::Tensor g = graph->grads().view(graph->layer_params(layer).front());
      std::vector<float> v(static_cast<size_t>(g.numel()), std::numeric_limits<float>::infinity());
      ops::from_host(*backend, ops::Tensor::wrap(v.data(), g.shape(), ops::DType::f32), g);
    }
  });

  std::mt19937 rng(11 + w.rank());
  std::normal_distribution<float> normal;
  ops::Tensor x = ops::Tensor::zeros_host(ops::Shape{8, 28, 28, 1});
  ops::Tensor y = ops::Tensor::zeros_host(ops::Shape{8}, ops::DType::i32);
  for (; step_no < 5; ++step_no) {
    for (int64_t i = 0; i < x.numel(); ++i) x.host<float>()[i] = normal(rng);
    for (int i = 0; i < 8; ++i) y.host<int32_t>()[i] = (i * 3 + static_cast<int>(step_no)) % 10;
    planes.data->set_step(step_no);
    planes.control->set_step(step_no);
    const std::vector<float> before = flat_params(*graph);
    const trainer::TrainStep::Result r = step.run(x, y, 0.01, false, step_no);
    EXPECT_FALSE(r.verdict.nonfinite) << "step " << step_no;
    if (step_no == inject_at) {
      EXPECT_TRUE(r.skipped) << "rank " << w.rank() << " did not skip the step rank 1 overflowed";
      EXPECT_FALSE(r.applied);
      EXPECT_EQ(flat_params(*graph), before) << "rank " << w.rank() << " changed its weights in a skipped step";
    } else {
      EXPECT_FALSE(r.skipped) << "step " << step_no;
      EXPECT_TRUE(r.applied);
    }
  }
  EXPECT_EQ(scaler.scale(), 32768) << "rank " << w.rank();
  EXPECT_EQ(scaler.skipped(), 1);
  // Every rank holds the same weights: the largest and smallest of a checksum agree.
  double sum = 0;
  for (float v : flat_params(*graph)) sum += v;
  double range[2] = {sum, -sum};
  planes.control->all_reduce(comm::host_values(range, 2), comm::ReduceOp::max, comm::fingerprint("test", 0, 16),
                             "weights checksum")
      ->wait();
  EXPECT_EQ(range[0], -range[1]);
}

}  // namespace
}  // namespace convoy::test
