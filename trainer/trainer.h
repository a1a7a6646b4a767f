// The training loop: data moved to the device a batch ahead, the step (trainer/step.h: forward, loss,
// backward with the gradient all-reduce overlapped, the per-step vote, update), metrics, evaluation and
// checkpoints, on one rank or many, on any backend (train.device). Nothing here reads device memory
// except through explicit copies: losses and counts stay on the device until they are reported.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "comm/communicator.h"
#include "comm/grad_reducer.h"
#include "comm/sync_stats.h"
#include "comm/world.h"
#include "datasets/loader.h"
#include "ops/models/zoo.h"
#include "trainer/checkpoint.h"
#include "trainer/loss_scale.h"
#include "trainer/precision.h"
#include "trainer/config.h"
#include "trainer/metrics.h"
#include "trainer/optimizer.h"
#include "trainer/device_batch.h"
#include "trainer/schedule.h"
#include "trainer/step.h"
#include "trainer/timeline.h"

namespace convoy::trainer {

// `convoy train` exits with this code after SIGTERM or SIGUSR1 (a preemption, seen through common/stop.h)
// once it has finished the step and written a checkpoint: a requeued job resumes from it with
// --resume auto (EX_TEMPFAIL: "try again later").
constexpr int kExitPreempted = 75;

struct EvalResult {
  double loss = 0, top1 = 0, top5 = 0;
  int64_t samples = 0;
  double seconds = 0;
};

class Trainer {
 public:
  // Builds the backend, data loaders, model (from model.init_from when set) and optimizer. With a world
  // of several ranks, every rank trains on its share of each global batch and gradients are summed over
  // the ranks; rank 0's weights are broadcast and every rank checks that it agrees before step 1.
  Trainer(const Config& config, std::string run_dir, const comm::World* world = nullptr);
  ~Trainer();

  // Trains to the configured epoch count. resume: "" (fresh), "auto" (the newest checkpoint of the run
  // directory that verifies, if any) or a checkpoint path. Returns 0, or kExitPreempted.
  int train(const std::string& resume);
  // Top-1/top-5 and loss over the whole validation split (every rank its part, counts summed).
  EvalResult evaluate();
  // The evaluation after the last epoch trained (none if training stopped early).
  const std::optional<EvalResult>& final_eval() const { return final_eval_; }
  // Loads parameters and buffers of a checkpoint (for convoy eval).
  void load_weights_from(const std::string& checkpoint);
  // Loads parameters and buffers from an HDF5 file in PyTorch's layout (/params, /buffers: what
  // tools/torchvision_to_h5.py writes and model.init_from reads), for convoy eval --weights.
  void load_plain_weights(const std::string& file);
  // Checkpoint and stop, as on a preemption, once the global step reaches `step` (0 = never): for tests
  // of resumption and for time-boxed runs.
  void set_stop_at_step(int64_t step) { stop_at_step_ = step; }
  // Writes this rank's Chrome-trace timeline to path.rank<R>.json when training ends.
  void enable_timeline(const std::string& path);

  ops::Graph& graph() { return *graph_; }
  Sgd& optimizer() { return *sgd_; }
  ops::Backend& backend() { return *backend_; }
  const Config& config() const { return cfg_; }
  const std::string& run_dir() const { return run_dir_; }
  CheckpointStore& checkpoints() { return store_; }
  int rank() const { return rank_; }
  int world_size() const { return size_; }

 private:
  void save_checkpoint(const TrainingState& state);
  std::optional<std::string> choose_resume(const std::string& resume);
  // Sums `values` over the ranks on the control plane (no-op on one rank).
  void sum_over_ranks(double* values, size_t n, const char* what);
  // This rank's damaged records replaced so far (data.on_error: skip), training and evaluation.
  int64_t skipped_records() const { return train_data_->skipped_records() + val_data_->skipped_records(); }

  Config cfg_;
  std::string run_dir_;
  int rank_ = 0, size_ = 1;
  std::unique_ptr<ops::Backend> backend_;  // first: everything below may hold its memory
  std::shared_ptr<comm::StepRecord> record_;
  std::unique_ptr<comm::Communicator> control_, data_;  // several ranks only
  std::unique_ptr<datasets::Loader> train_data_, val_data_;
  std::unique_ptr<comm::CommunicatorSum> sync_sum_;  // model.sync_bn: SyncBN's sums over ranks (control plane)
  std::unique_ptr<ops::Graph> graph_;
  std::unique_ptr<ops::Graph> teacher_;  // train.teacher: distillation's teacher, in evaluation mode
  std::unique_ptr<Sgd> sgd_;
  std::unique_ptr<comm::GradReducer> reducer_;
  std::unique_ptr<TrainStep> step_;
  PrecisionPlan precision_;
  std::unique_ptr<LossScaler> scaler_;  // mixed precision only
  std::unique_ptr<DeviceBatches> batches_;
  std::unique_ptr<Timeline> timeline_;
  ops::Tensor eval_sums_, eval_sums_host_;  // loss, top-1, top-5 over a validation pass: (3) f64
  // eval.flip: the batch mirrored on the host (staging), on the device, and the mean of the two views' logits.
  ops::Tensor mirror_host_, mirror_images_, mean_logits_;
  std::unique_ptr<ops::Event> mirror_copied_;  // the host buffer may be rewritten once this is reached
  CheckpointStore store_;
  int64_t classes_ = 0, local_batch_ = 0;
  int64_t stop_at_step_ = 0;
  std::optional<EvalResult> final_eval_;
};

// Threads for one rank when the config leaves it open: OMP_NUM_THREADS if the launcher set it, else the
// cores this process is bound to, else the node's cores shared among its local ranks.
int cores_per_rank(int local_ranks);

// Runs `body` with an MPI world (a singleton without a launcher). Errors are printed with the rank; when
// several ranks run, the process then leaves without MPI_Finalize (peers may be gone or stuck in a
// collective, and MPI_Finalize would wait for them forever) and exits with status 1.
int run_with_world(const std::function<int(const comm::World&)>& body);

}  // namespace convoy::trainer
