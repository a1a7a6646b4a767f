#include "trainer/schedule.h"

#include <cmath>

#include "common/error.h"

namespace convoy::trainer {

LrSchedule::LrSchedule(const TrainConfig& t, int64_t steps_per_epoch)
    : t_(t),
      steps_per_epoch_(steps_per_epoch),
      warmup_(std::llround(t.warmup_epochs * static_cast<double>(steps_per_epoch))),
      total_(t.epochs * steps_per_epoch),
      peak_(t.base_lr * static_cast<double>(t.batch_size) / static_cast<double>(t.lr_reference_batch)) {
  CONVOY_CHECK(steps_per_epoch > 0, "an epoch needs at least one step");
}

double LrSchedule::at(int64_t it) const {
  if (it < warmup_) return peak_ * static_cast<double>(it + 1) / static_cast<double>(warmup_);
  if (t_.schedule == "cosine") {
    double span = static_cast<double>(std::max<int64_t>(total_ - warmup_, 1));
    double t = std::min(static_cast<double>(it - warmup_), span);
    return peak_ * 0.5 * (1.0 + std::cos(M_PI * t / span));
  }
  double lr = peak_;
  for (double m : t_.milestones)
    if (static_cast<double>(it) >= m * static_cast<double>(steps_per_epoch_)) lr *= t_.lr_decay;
  return lr;
}

}  // namespace convoy::trainer
