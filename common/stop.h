// The process-wide stop request: SIGTERM / SIGUSR1 (a preemption, or a launcher tearing the job down)
// set it; the training loop checkpoints at the next step boundary, and the communication thread uses it
// to diagnose a collective that is stuck because a peer is already gone (the launcher sends SIGTERM to
// the survivors, then SIGKILL soon after). One thread takes the signals in sigwait(); no asynchronous
// handler runs. With a handler (which could run on any thread, inside a oneDNN kernel or an MPI
// transfer) SIGUSR1 in training corrupted the heap: twice in CI's preemption soak, once in 80 randomly signalled runs.
#pragma once

#include <string>
#include <vector>

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

// Runs the program argv[0] (a path; no shell) with the arguments after it and waits for it. Its SIGTERM
// and SIGUSR1 start unblocked: a child inherits the caller's mask, and this process keeps them blocked in
// every thread (std::system's /bin/sh clears them when it is dash, not when it is bash). Returns
// waitpid's status, or -1 when the program could not be started.
int run_program(const std::vector<std::string>& argv);

}  // namespace convoy
