// The per-step vote on the control plane: one small all-reduce per training step that carries this rank's
// stop request, whether its loss came out non-finite, whether its data plane failed, and the record of
// the data-plane collectives it issued in the step (a hash and a count, comm/step_record.h). Every rank
// leaves with the same verdict, so every rank stops, or refuses to apply an update, after the same step.
// When the records differ (a rank skipped a collective, added one, or issued one of another size) every
// rank throws the same error, which lists what each rank issued.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "comm/step_record.h"

namespace convoy::comm {

struct StepBallot {
  bool stop = false;         // a stop request (SIGTERM, --stop-at-step) on this rank
  bool nonfinite = false;    // this rank's loss (or gradients) came out non-finite
  bool data_failed = false;  // this rank's data plane threw in this step (its own message says why)
  bool overflow = false;     // this rank's scaled gradients are not finite (mixed precision: skip the step)
};

struct StepVerdict {
  bool stop = false, nonfinite = false, data_failed = false, overflow = false;
  std::vector<int> nonfinite_ranks;  // filled when nonfinite
};

// control: the control-plane communicator; record: the data plane's record of this step (null when
// there is none: a single rank's data plane records nothing).
StepVerdict vote_step(Communicator& control, const StepRecord* record, int64_t step, const StepBallot& mine);

}  // namespace convoy::comm
