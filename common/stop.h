// The process-wide stop request: SIGTERM / SIGUSR1 (a preemption, or a launcher tearing the job down)
// set it; the training loop checkpoints at the next step boundary, and the communication thread uses it
// to diagnose a collective that is stuck because a peer is already gone (the launcher sends SIGTERM to
// the survivors, then SIGKILL soon after). One thread takes the signals in sigwait(); no asynchronous
// handler runs. With a handler (which could run on any thread, inside a oneDNN kernel or an MPI
// transfer) SIGUSR1 in training corrupted the heap: twice in CI's preemption soak, once in 80 randomly signalled runs.
#pragma once

namespace convoy {

// Blocks SIGTERM and SIGUSR1 in the calling thread and starts the thread that waits for them. Call it
// first in main(), before MPI or anything else starts a thread, so that every thread inherits the mask.
// Until install_stop_handlers(), a signal still has its default action (the process ends).
void take_stop_signals_synchronously();
void install_stop_handlers();  // from now on SIGTERM and SIGUSR1 request a stop
bool stop_requested();
// Seconds since the first request (on common/timer.h's clock), or a negative number when none came.
double seconds_since_stop_request();
void request_stop();

}  // namespace convoy
