// The process-wide stop request: SIGTERM / SIGUSR1 (a preemption, or a launcher tearing the job down)
// set it from a signal handler; the training loop checkpoints at the next step boundary, and the
// communication thread uses it to diagnose a collective that is stuck because a peer is already gone
// (the launcher sends SIGTERM to the survivors, then SIGKILL soon after).
#pragma once

namespace convoy {

void install_stop_handlers();  // SIGTERM and SIGUSR1
bool stop_requested();
// Seconds since the first request (on common/timer.h's clock), or a negative number when none came.
double seconds_since_stop_request();
void request_stop();           // async-signal-safe

}  // namespace convoy
