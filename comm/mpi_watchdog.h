// The MPI communicator's watchdog and stall diagnosis. The data phase of a collective runs as one
// blocking MPI call (MPI's tuned algorithms); this thread watches it, and past the timeout, or soon after
// a stop request (the launcher tears the job down when a rank dies), it finds out why and fails the
// collective. Diagnosis: every stalled rank sends its Status to every other rank on the process-wide
// diagnosis communicator (World::diagnosis_comm) and listens for a grace period. Ranks that never answer
// are missing (dead, or stuck outside the collectives); ranks that answer with another collective, on
// either plane, are out of step; and when the ranks' records of the step differ, the message lists what
// each issued.
#pragma once

#include <mpi.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "comm/mpi_queue.h"

namespace convoy::comm {

// "data-plane collective #3 'all-reduce of gradient bucket 1'"
std::string describe(const Status& s);

// s with the step's record (its summary), as a diagnosis reports it; record may be null.
Status with_record(Status s, const StepRecord* record);
// The error when ranks disagree on the next collective (CheckMode::collective), from every rank's status.
std::string mismatch_message(const std::vector<Status>& all);

// The message for a collective that did not finish: exchanges statuses with every other rank on `diag`.
// context: "" or what happened around it (" after the launcher asked this rank to stop").
std::string diagnose_stall(MPI_Comm diag, int rank, int size, const Status& mine, const char* phase, double waited,
                           const char* context, double timeout_s);

class Watchdog {
 public:
  // A launcher tearing a job down sends SIGTERM to the survivors and SIGKILL soon after: a collective
  // still stuck this long after the signal is diagnosed at once.
  static constexpr double kStuckAfterStop = 1.5;
  static constexpr const char* kAfterStop = " after the launcher asked this rank to stop (SIGTERM or SIGUSR1)";

  // diagnose(status, waited, context) builds the message; on_stall(message) fails the communicator. With
  // can_diagnose = false (MPI without MPI_THREAD_MULTIPLE) the message only says what stalled.
  // on_stuck_caller(message) runs when the stuck collective was being run by a waiting caller (see
  // comm/mpi_queue.h), which can never return: it must end the process.
  Watchdog(double timeout_s, bool can_diagnose,
           std::function<std::string(const Status&, double, const char*)> diagnose,
           std::function<void(const std::string&)> on_stall, std::function<void(const std::string&)> on_stuck_caller);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Around a collective's data phase; by_caller: a waiting caller runs it, not the communication thread.
  void begin(const Status& s, std::shared_ptr<MpiWork> work, bool by_caller);
  void end();
  // Whether it gave up on a collective stuck inside MPI (the communication thread is lost then).
  bool abandoned() const { return abandoned_.load(); }

 private:
  void watch();

  double timeout_s_;
  bool can_diagnose_;
  std::function<std::string(const Status&, double, const char*)> diagnose_;
  std::function<void(const std::string&)> on_stall_, on_stuck_caller_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, watching_ = false, by_caller_ = false;
  double start_ = 0;
  Status watched_;
  std::shared_ptr<MpiWork> work_;
  std::atomic<bool> abandoned_{false};
  std::thread thread_;
};

}  // namespace convoy::comm
