#include "trainer/step.h"

#include <cstdio>

#include "common/timer.h"

namespace convoy::trainer {

TrainStep::TrainStep(ops::Graph& graph, Sgd& sgd, const StepPlanes& planes, int64_t classes, float label_smoothing,
                     LossScaler* scaler, int accumulate_steps)
    : graph_(graph), backend_(graph.backend()), sgd_(sgd), planes_(planes), smoothing_(label_smoothing),
      scaler_(scaler), k_(accumulate_steps) {
  CONVOY_CHECK(k_ >= 1, "train.accumulate_steps must be at least 1, got " << k_);
  if (k_ > 1) accumulated_ = ops::Arena(graph.param_layout(), backend_.allocator());
  graph_.set_backward_hook([this](size_t layer) { on_layer_done(layer); });
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

// In the last micro-batch: the earlier micro-batches' gradients join this layer's, then its all-reduce may
// start (the reducer sees the layer's final gradients).
void TrainStep::on_layer_done(size_t layer) {
  if (micro_ + 1 < k_) return;
  if (k_ > 1) {
    ops::ExecContext& ctx = backend_.context();
    for (size_t p : graph_.layer_params(layer)) {
      ops::Tensor g = graph_.grads().view(p);
      backend_.add_into(ctx, accumulated_.view(p), g, 1.f);
    }
  }
  if (gradient_hook_) gradient_hook_(layer);
  if (planes_.reducer) planes_.reducer->on_layer_done(layer);
}

void TrainStep::use_mixup() {
  if (!mixed_.defined()) mixed_ = ops::Tensor::empty(graph_.input_shape(), ops::DType::f32, backend_.allocator());
}

void TrainStep::use_teacher(ops::Graph& teacher, float temperature) {
  CONVOY_CHECK(teacher.input_shape() == graph_.input_shape(),
               "the distillation teacher was set up for " << teacher.input_shape().str() << ", the student for "
                                                          << graph_.input_shape().str());
  CONVOY_CHECK(teacher.output_shape() == graph_.output_shape(),
               "the teacher's " << teacher.output_shape().str() << " logits do not match the student's "
                                << graph_.output_shape().str() << ": train.teacher_model must have the same classes");
  CONVOY_CHECK(teacher.backend().device() == backend_.device(),
               "the teacher runs on " << teacher.backend().device().str() << ", the student on "
                                      << backend_.device().str() << ": its logits must be where the loss runs");
  teacher.set_training(false);
  teacher_ = &teacher;
  temperature_ = temperature;
}

void TrainStep::micro_batch(const ops::Tensor& images, const ops::Tensor& labels) {
  CONVOY_CHECK(micro_ < k_, "internal: " << micro_ + 1 << " micro-batches in a step of " << k_);
  ops::ExecContext& ctx = backend_.context();
  if (micro_ == 0) backend_.fill(ctx, flags_, 0.0);  // the step's flags: micro-batches OR into them
  ops::LossTerms terms;
  terms.smoothing = smoothing_;
  terms.loss_scale = static_cast<float>(scaler_ ? scaler_->scale() : 1.0);
  const ops::Tensor* input = &images;
  if (mixed_.defined()) {  // this micro-batch mixed with its reverse; the loss mixes the targets alike
    backend_.mix_with_reverse(ctx, images, mix_lambda_, mixed_);
    input = &mixed_;
    terms.mix_lambda = mix_lambda_;
  }
  if (teacher_) {
    terms.teacher = &teacher_->forward(*input);  // valid until the teacher's next forward
    terms.temperature = temperature_;
  }
  const ops::Tensor& logits = graph_.forward(*input);
  loss_->forward_backward(ctx, logits, labels, terms, graph_.output_grad(), loss_sum_, nonfinite_);
  // Extra outputs (GoogLeNet's auxiliary classifiers) learn the same targets with their weight; the teacher
  // speaks to the main output only.
  for (size_t k = 0; k < graph_.num_extra_outputs(); ++k) {
    ops::LossTerms extra = terms;
    extra.teacher = nullptr;
    extra.weight = graph_.extra_output_loss_weight(k);
    loss_->forward_backward(ctx, graph_.extra_output(k), labels, extra, graph_.extra_output_grad(k), loss_sum_,
                            nonfinite_);
  }
  graph_.backward();
  if (micro_ + 1 < k_) {  // keep this micro-batch's gradients: the next backward overwrites them
    const ops::Tensor g = graph_.grads().flat();
    ops::Tensor acc = accumulated_.flat();
    if (micro_ == 0)
      backend_.copy(ctx, g, acc);
    else
      backend_.add_into(ctx, g, acc, 1.f);
  }
  ++micro_;
}

TrainStep::Result TrainStep::run(const ops::Tensor& images, const ops::Tensor& labels, double lr, bool stop,
                                 int64_t global_step) {
  CONVOY_CHECK(k_ == 1, "internal: run() is a step of one micro-batch; this step accumulates " << k_);
  micro_batch(images, labels);
  return finish(lr, stop, global_step);
}

TrainStep::Result TrainStep::finish(double lr, bool stop, int64_t global_step) {
  CONVOY_CHECK(micro_ == k_, "internal: a step finished after " << micro_ << " of its " << k_ << " micro-batches");
  micro_ = 0;
  ops::ExecContext& ctx = backend_.context();
  Result r;
  r.loss_scale = scaler_ ? scaler_->scale() : 1.0;
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
    r.verdict.stop = ballot.stop, r.verdict.nonfinite = ballot.nonfinite, r.verdict.overflow = ballot.overflow;
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
  // The reducer leaves sums over ranks and micro-batches of micro-batch means: dividing by both counts
  // makes them the global batch's mean gradient; the loss scale comes out in the same multiplication.
  sgd_.step(static_cast<float>(lr), static_cast<float>(1.0 / (planes_.world_size * k_ * r.loss_scale)));
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
  return loss_sum_host_.host<double>()[0] / k_;  // a step's loss: the mean of its micro-batches'
}

}  // namespace convoy::trainer
