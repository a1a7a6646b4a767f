// Dynamic loss scaling for mixed precision (DESIGN §7 of the design notes, as NVIDIA's and PyTorch's
// GradScaler): the loss gradient is multiplied by the scale before backward so that small gradients
// survive fp16, and the optimizer divides it out again. When some rank's gradients come out non-finite
// the step is skipped on every rank (the flag rides on the per-step vote, so the decision is the same
// everywhere by construction) and the scale halves; after `window` clean steps in a row it doubles,
// never above `max`. The state is small and goes into checkpoints, so a resumed run continues bit-exactly.
#pragma once

#include <cstdint>

namespace convoy::trainer {

struct LossScaleOptions {
  double init = 65536;       // 2^16: train.loss_scale_init
  int64_t window = 2000;     // clean steps before the scale doubles: train.loss_scale_window
  double max = 16777216;     // 2^24
  double min = 1;            // an overflow at this scale is a diverged run, not a scale problem
};

class LossScaler {
 public:
  struct State {
    double scale = 0;
    int64_t clean = 0;    // clean steps since the last change
    int64_t skipped = 0;  // steps skipped for overflow, over the run
  };

  explicit LossScaler(const LossScaleOptions& o);
  double scale() const { return s_.scale; }
  int64_t skipped() const { return s_.skipped; }
  // After a step whose gradients overflowed on some rank (it was skipped) or came out clean. Returns
  // false when the scale was already at its minimum: the gradients are non-finite for another reason.
  bool update(bool overflow);

  const State& state() const { return s_; }
  void restore(const State& s);

 private:
  LossScaleOptions o_;
  State s_;
};

}  // namespace convoy::trainer
