// One training step on the device, shared by the training loop and `convoy bench train`: forward, the
// loss (kept on the device), backward with the gradient all-reduce overlapped (comm::GradReducer), the
// per-step vote on the control plane (comm/step_vote.h), and the update, which is applied only when no
// rank's loss came out non-finite. With a loss scaler (mixed precision) the loss gradient is scaled, the
// reduced gradients are checked for overflow on the device, the overflow flag rides on the vote, and an
// overflowing step is skipped on every rank. With gradient accumulation (k micro-batches per step, as
// PyTorch DDP's no_sync) the first k-1 backward passes add their gradients into an arena of their own and
// only the last one's backward all-reduces, adding them back layer by layer as each layer finishes.
// Nothing is allocated per step; the loss is read back only when asked.
#pragma once

#include <functional>
#include <memory>

#include "comm/grad_reducer.h"
#include "comm/step_vote.h"
#include "ops/graph.h"
#include "trainer/loss_scale.h"
#include "trainer/optimizer.h"
#include "trainer/timeline.h"

namespace convoy::trainer {

struct StepPlanes {
  comm::GradReducer* reducer = nullptr;   // null on one rank
  comm::Communicator* control = nullptr;  // null on one rank
  const comm::StepRecord* record = nullptr;
  int world_size = 1;
};

class TrainStep {
 public:
  // scaler: null in fp32; it must outlive the step. accumulate_steps: micro-batches per optimizer step.
  // The step owns the graph's backward hook (it starts the gradient all-reduce).
  TrainStep(ops::Graph& graph, Sgd& sgd, const StepPlanes& planes, int64_t classes, float label_smoothing,
            LossScaler* scaler = nullptr, int accumulate_steps = 1);

  struct Result {
    double comm_wait_s = 0;  // communication that backward did not hide
    double vote_s = 0;       // the per-step vote (and the non-finite flag's copy back)
    comm::StepVerdict verdict;
    bool applied = false;    // the update ran (no rank saw a non-finite loss or overflowing gradients)
    bool skipped = false;    // the loss scaler skipped it: some rank's gradients overflowed
    double loss_scale = 1;   // the scale this step ran with
  };
  // One micro-batch: forward, loss, backward; images (N, H, W, C) and labels (N) on the device. The
  // last of a step's accumulate_steps micro-batches starts the gradient all-reduce during its backward.
  void micro_batch(const ops::Tensor& images, const ops::Tensor& labels);
  // After a step's last micro-batch: the all-reduce's end, the vote, the update. stop: this rank's stop
  // request, voted on.
  Result finish(double lr, bool stop, int64_t global_step);
  // micro_batch() then finish(): a step of one micro-batch (accumulate_steps 1).
  Result run(const ops::Tensor& images, const ops::Tensor& labels, double lr, bool stop, int64_t global_step);

  // The losses of the steps since the last call, summed on this rank (a copy back from the device).
  double take_loss_sum();
  // Called after each layer's backward in the last micro-batch, before the layer's gradients are reduced
  // (tests inject faults with it).
  void set_gradient_hook(std::function<void(size_t layer)> hook) { gradient_hook_ = std::move(hook); }
  int accumulate_steps() const { return k_; }
  void set_timeline(Timeline* t) { timeline_ = t; }
  // mixup (Bag of Tricks §5.2): from now on each micro-batch trains on itself mixed with its reverse,
  // weighted by the lambda of set_mix_lambda(), against the mixed soft targets. Allocates the mixed batch.
  void use_mixup();
  void set_mix_lambda(float lambda) { mix_lambda_ = lambda; }
  // Knowledge distillation (§5.4): the teacher (set up for this step's input shape, in evaluation mode, on
  // this backend; it must outlive the step) runs forward on each micro-batch's input, mixed when mixup
  // is on, and the loss gains T^2 KL(teacher || student) at temperature T.
  void use_teacher(ops::Graph& teacher, float temperature);
  ops::SoftmaxCrossEntropyKernel& loss() { return *loss_; }

 private:
  void record_buckets();
  void on_layer_done(size_t layer);

  ops::Graph& graph_;
  ops::Backend& backend_;
  Sgd& sgd_;
  StepPlanes planes_;
  float smoothing_;
  LossScaler* scaler_;
  int k_;                  // micro-batches per step
  int micro_ = 0;          // micro-batches of this step so far
  ops::Arena accumulated_;  // the first k-1 micro-batches' gradients (k > 1)
  std::function<void(size_t)> gradient_hook_;
  std::unique_ptr<ops::SoftmaxCrossEntropyKernel> loss_;
  ops::Tensor loss_sum_, flags_;            // on the device: f64 (1); i32 (2): loss non-finite, gradients overflowed
  ops::Tensor nonfinite_, overflow_;        // views of flags_
  ops::Tensor loss_sum_host_, flags_host_;  // their copies in staging memory
  Timeline* timeline_ = nullptr;
  ops::Tensor mixed_;  // mixup's input (use_mixup)
  float mix_lambda_ = 1.f;
  ops::Graph* teacher_ = nullptr;
  float temperature_ = 1.f;
};

}  // namespace convoy::trainer
