// The learning rate as a pure function of the iteration (Bag of Tricks §3.1, §5.1):
//   peak = base_lr * global_batch / lr_reference_batch            (linear scaling)
//   warmup: iteration i of the first m = warmup_epochs * steps_per_epoch gets peak * (i + 1) / m
//   then step decay (x lr_decay at each milestone epoch) or cosine: peak * (1 + cos(pi * t / T)) / 2,
//   t and T counted from the end of the warmup to the end of training.
#pragma once

#include <cstdint>

#include "trainer/config.h"

namespace convoy::trainer {

class LrSchedule {
 public:
  LrSchedule(const TrainConfig& t, int64_t steps_per_epoch);
  double at(int64_t iteration) const;
  double peak() const { return peak_; }
  int64_t total_iterations() const { return total_; }

 private:
  TrainConfig t_;
  int64_t steps_per_epoch_, warmup_, total_;
  double peak_;
};

}  // namespace convoy::trainer
