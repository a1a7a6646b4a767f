#include "trainer/step.h"

#include <cstdio>

#include "common/timer.h"

namespace convoy::trainer {

TrainStep::TrainStep(ops::Graph& graph, Sgd& sgd, const StepPlanes& planes, int64_t classes, float label_smoothing,
                     LossScaler* scaler)
    : graph_(graph), backend_(graph.backend()), sgd_(sgd), planes_(planes), smoothing_(label_smoothing),
      scaler_(scaler) {
  loss_ = backend_.softmax_cross_entropy(graph.input_shape()[0], classes);
  loss_sum_ = ops::Tensor::empty(ops::Shape{1}, ops::DType::f64, backend_.allocator());
  flags_ = ops::Tensor::empty(ops::Shape{2}, ops::DType::i32, backend_.allocator());
  nonfinite_ = flags_.view(0, ops::Shape{1});
  overflow_ = flags_.view(sizeof(int32_t), ops::Shape{1});
  loss_sum_host_ = ops::Tensor::empty(ops::Shape{1}, ops::DType::f64, backend_.staging_allocator());
  flags_host_ = ops::Tensor::empty(ops::Shape{2}, ops::DType::i32, backend_.staging_allocator());
  backend_.fill(backend_.context(), loss_sum_, 0.0);
  backend_.fill(backend_.context(), flags_, 0.0);
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
  r.loss_scale = scaler_ ? scaler_->scale() : 1.0;
  const ops::Tensor& logits = graph_.forward(images);
  loss_->forward_backward(ctx, logits, labels, smoothing_, static_cast<float>(r.loss_scale), graph_.output_grad(),
                          loss_sum_, nonfinite_);
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
  // The non-finite checks are computed on the device; their flags (8 bytes) are the values a step reads back.
  const double vote_start = now_seconds();
  if (scaler_) {
    backend_.fill(ctx, overflow_, 0.0);
    ops::Tensor grads = graph_.grads().flat();
    backend_.check_finite(ctx, grads, overflow_);  // the reduced gradients: the same verdict on every rank
  }
  backend_.copy(ctx, flags_, flags_host_);
  ctx.synchronize();
  ballot.nonfinite = flags_host_.host<int32_t>()[0] != 0;
  ballot.overflow = flags_host_.host<int32_t>()[1] != 0;
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
  if (scaler_) {
    if (r.verdict.overflow) {  // every rank skips this step and halves the same scale
      r.skipped = true;
      // At the smallest scale an overflow is a diverged run, not a scale that is too large.
      if (!scaler_->update(true)) r.verdict.nonfinite = true;
      return r;
    }
    scaler_->update(false);
  }
  const double t0 = now_seconds();
  // The reducer leaves sums: dividing by the rank count makes them the global batch's mean gradient; the
  // loss scale comes out in the same multiplication.
  sgd_.step(static_cast<float>(lr), static_cast<float>(1.0 / (planes_.world_size * r.loss_scale)));
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
