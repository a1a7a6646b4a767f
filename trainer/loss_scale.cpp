#include "trainer/loss_scale.h"

#include <algorithm>

#include "common/error.h"

namespace convoy::trainer {

LossScaler::LossScaler(const LossScaleOptions& o) : o_(o) {
  CONVOY_CHECK(o.init >= o.min && o.init <= o.max, "train.loss_scale_init must be in [" << o.min << ", " << o.max
                                                                                        << "], got " << o.init);
  CONVOY_CHECK(o.window >= 1, "train.loss_scale_window must be at least 1, got " << o.window);
  s_.scale = o.init;
}

bool LossScaler::update(bool overflow) {
  if (overflow) {
    ++s_.skipped;
    s_.clean = 0;
    if (s_.scale <= o_.min) return false;
    s_.scale = std::max(s_.scale / 2, o_.min);
    return true;
  }
  if (++s_.clean >= o_.window) {
    s_.scale = std::min(s_.scale * 2, o_.max);
    s_.clean = 0;
  }
  return true;
}

void LossScaler::restore(const State& s) {
  CONVOY_CHECK(s.scale >= o_.min && s.scale <= o_.max && s.clean >= 0 && s.skipped >= 0,
               "the checkpoint's loss scale " << s.scale << " (" << s.clean << " clean steps, " << s.skipped
                                              << " skipped) is outside this run's settings [" << o_.min << ", "
                                              << o_.max << "]");
  s_ = s;
}

}  // namespace convoy::trainer
