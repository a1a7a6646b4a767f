// Run metrics: a progress line on stdout and one JSON object per logged step and per epoch in
// <run dir>/metrics.jsonl (appended to on resume). Only rank 0 writes.
#pragma once

#include <cstdio>
#include <string>

namespace convoy::trainer {

struct StepMetrics {
  int64_t epoch = 0, step = 0, steps_per_epoch = 0, global_step = 0;
  double loss = 0, lr = 0, images_per_s = 0, data_wait_share = 0, comm_wait_share = 0, eta_s = 0, elapsed_s = 0;
  double loss_scale = 0;      // mixed precision's loss scale (0: none)
  int64_t skipped_steps = 0;  // steps the loss scaler skipped so far
  int64_t skipped_records = 0;  // damaged records replaced so far in this run, all ranks (data.on_error: skip)
};

struct EpochMetrics {
  int64_t epoch = 0;
  double train_loss = 0, train_images_per_s = 0, epoch_s = 0, elapsed_s = 0;
  bool evaluated = false;
  double val_loss = 0, top1 = 0, top5 = 0;
  int64_t val_samples = 0;
  int64_t skipped_records = 0;  // as StepMetrics', training and evaluation together
};

class Metrics {
 public:
  // active = false (ranks other than 0): every call does nothing.
  Metrics(const std::string& run_dir, bool active);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;
  void step(const StepMetrics& m);
  void epoch(const EpochMetrics& m);

 private:
  std::FILE* jsonl_ = nullptr;
};

std::string format_duration(double seconds);  // "1h02m", "4m12s", "35s"

}  // namespace convoy::trainer
