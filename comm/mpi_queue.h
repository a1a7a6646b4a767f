// The MPI communicator's job queue: collectives queued by any thread run in order on one communication
// thread (Horovod's background thread). After a failure the queue is poisoned: the first failure is kept
// and every queued or later collective fails with it, because the ranks are out of step for good.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "comm/communicator.h"

namespace convoy::comm {

// What a rank is doing, exchanged when a collective stalls (comm/mpi_watchdog.h).
struct Status {
  int64_t seq = -1;
  uint64_t fingerprint = 0;
  int64_t step = -1;
  int32_t rank = -1;
  int32_t pad = 0;
  char plane[16] = {};    // "data", "control"
  char what[96] = {};
  char record[448] = {};  // the step's data-plane collectives so far (StepRecord's summary)
};

class MpiWork final : public Work {
 public:
  MpiWork(uint64_t seq, double safety_s) : seq_(seq), safety_s_(safety_s) {}
  void wait() override;
  bool wait_for(double seconds) override;
  bool done() const override { return done_fast_.load(std::memory_order_acquire); }
  double started_at() const override { return started_; }
  double seconds() const override { return seconds_; }
  uint64_t sequence() const override { return seq_; }
  // The first call wins: the watchdog may fail a collective that the communication thread is stuck in.
  // stalled: the error is a stall diagnosis (wait() throws StallError).
  void finish(double started, double seconds, std::string error, bool stalled = false);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<bool> done_fast_{false};  // done_, readable without the lock (waiters spin on it briefly)
  std::string error_;
  bool stalled_ = false;
  double started_ = 0, seconds_ = 0;
  uint64_t seq_;
  double safety_s_;
};

enum class Kind { all_reduce, broadcast, all_gather, barrier };

struct Job {
  Kind kind = Kind::barrier;
  ops::Tensor data;  // all_reduce, broadcast: in place; all_gather: the receive buffer
  ops::Tensor send;  // all_gather
  ReduceOp op = ReduceOp::sum;
  int root = 0;
  ops::Event* ready = nullptr;  // reached before the data is read
  Status status;
  std::shared_ptr<MpiWork> work;
};

class JobQueue {
 public:
  // run(job) makes the job's MPI calls and returns when its data transfer started; it throws on failure.
  using Runner = std::function<double(Job&)>;
  JobQueue(Runner run, double safety_s);
  ~JobQueue();
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Queues the job (its status filled in, but for seq) and returns its Work; after a failure the Work
  // fails at once.
  std::shared_ptr<Work> submit(Job job);
  // Fails every queued collective with the first failure message; later submissions fail at once.
  // stalled: the failure is a stall diagnosis.
  void fail(const std::string& message, bool stalled);
  std::string failure() const;
  bool stalled() const;
  // Stops the thread: joins it, or leaves it (abandon = true) when it is stuck inside MPI for good.
  void stop(bool abandon);

 private:
  void loop();

  Runner run_;
  double safety_s_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::atomic<size_t> queued_{0};
  bool stop_ = false;
  uint64_t next_seq_ = 0;
  mutable std::mutex failure_mu_;
  std::string failure_;
  bool stalled_ = false;
  std::thread thread_;
};

}  // namespace convoy::comm
