#include "trainer/step.h"

#include <cstdio>

#include "common/timer.h"

namespace convoy::trainer {

TrainStep::TrainStep(ops::Graph& graph, Sgd& sgd, const StepPlanes& planes, int64_t classes, float label_smoothing)
    : graph_(graph), backend_(graph.backend()), sgd_(sgd), planes_(planes), smoothing_(label_smoothing) {
  loss_ = backend_.softmax_cross_entropy(graph.input_shape()[0], classes);
  loss_sum_ = ops::Tensor::empty(ops::Shape{1}, ops::DType::f64, backend_.allocator());
  nonfinite_ = ops::Tensor::empty(ops::Shape{1}, ops::DType::i32, backend_.allocator());
  loss_sum_host_ = ops::Tensor::empty(ops::Shape{1}, ops::DType::f64, backend_.staging_allocator());
  nonfinite_host_ = ops::Tensor::empty(ops::Shape{1}, ops::DType::i32, backend_.staging_allocator());
  backend_.fill(backend_.context(), loss_sum_, 0.0);
}

void TrainStep::record_buckets() {
  const auto& buckets = planes_.reducer->buckets();
  const int n = planes_.world_size;
  for (size_t i = 0; i < buckets.size(); ++i) {
    const auto& b = buckets[i];
    const double s = b.work->seconds(), bytes = static_cast<double>(b.bytes);
    const double algbw = s > 0 ? bytes / s / 1e9 : 0, busbw = algbw * 2.0 * (n - 1) / n;
    char args[160];
    std::snprintf(args, sizeof args, "{\"bytes\":%zu,\"algbw_GBps\":%.3f,\"busbw_GBps\":%.3f}", b.bytes, algbw, busbw);
    timeline_->span("all-reduce bucket " + std::to_string(i), "communication", b.work->started_at(), s,
                    Timeline::comm_thread, args);
  }
}

TrainStep::Result TrainStep::run(const ops::Tensor& images, const ops::Tensor& labels, double lr, bool stop,
                                 int64_t global_step) {
  ops::ExecContext& ctx = backend_.context();
  Result r;
  const ops::Tensor& logits = graph_.forward(images);
  loss_->forward_backward(ctx, logits, labels, smoothing_, graph_.output_grad(), loss_sum_, nonfinite_);
  graph_.backward();
  comm::StepBallot ballot;
  ballot.stop = stop;
  std::exception_ptr data_error;
  if (planes_.reducer) {
    try {
      r.comm_wait_s = planes_.reducer->finish();
      if (timeline_) record_buckets();
    } catch (const comm::StallError&) {
      throw;  // its diagnosis names every rank; the peers are stalled or gone: there is no vote to hold
    } catch (const Error&) {
      // Still vote: the other ranks learn that this rank's data plane failed, and if the ranks issued
      // different collectives in this step the vote names them all (a better message than MPI's).
      data_error = std::current_exception();
      ballot.data_failed = true;
    }
  }
  // The non-finite check is computed on the device; its flag (4 bytes) is the one value a step reads back.
  const double vote_start = now_seconds();
  backend_.copy(ctx, nonfinite_, nonfinite_host_);
  ctx.synchronize();
  ballot.nonfinite = nonfinite_host_.host<int32_t>()[0] != 0;
  if (planes_.control) {
    r.verdict = comm::vote_step(*planes_.control, planes_.record, global_step, ballot);
  } else {
    r.verdict.stop = ballot.stop, r.verdict.nonfinite = ballot.nonfinite;
    if (ballot.nonfinite) r.verdict.nonfinite_ranks = {0};
  }
  r.vote_s = now_seconds() - vote_start;
  if (data_error) std::rethrow_exception(data_error);
  CONVOY_CHECK(!r.verdict.data_failed, "step " << global_step
                                               << ": another rank's gradient all-reduce failed (its own message "
                                                  "says why); the job cannot continue");
  if (r.verdict.nonfinite) return r;  // no rank applies an update built from a non-finite loss
  const double t0 = now_seconds();
  // The reducer leaves sums: dividing by the rank count makes them the global batch's mean gradient.
  sgd_.step(static_cast<float>(lr), 1.f / static_cast<float>(planes_.world_size));
  ctx.synchronize();
  r.applied = true;
  if (timeline_) timeline_->span("optimizer", "optimizer", t0, now_seconds() - t0, Timeline::main_thread);
  return r;
}

double TrainStep::take_loss_sum() {
  ops::ExecContext& ctx = backend_.context();
  backend_.copy(ctx, loss_sum_, loss_sum_host_);
  ctx.synchronize();
  backend_.fill(ctx, loss_sum_, 0.0);
  return loss_sum_host_.host<double>()[0];
}

}  // namespace convoy::trainer
