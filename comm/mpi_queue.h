// The MPI communicator's job queue: collectives queued by any thread run in order, one at a time, on one
// communication thread (Horovod's background thread) -- or on a thread that waits for one: a waiter
// whose collective has not started yet runs the queue's head itself when the communication thread is
// not running anything, which saves the two thread switches a hand-off costs (5 % of a 1 MB all-reduce
// on a core the two threads share). Whoever runs a job holds the executor lock and takes the head of
// the queue under it, so the order is the same on every rank. After a failure the queue is poisoned:
// the first failure is kept and every queued or later collective fails with it, because the ranks are
// out of step for good.
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

class JobQueue;
struct QueueCore;

class MpiWork final : public Work {
 public:
  MpiWork(uint64_t seq, double safety_s, std::weak_ptr<QueueCore> queue)
      : seq_(seq), safety_s_(safety_s), queue_(std::move(queue)) {}
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
  std::weak_ptr<QueueCore> queue_;  // to run queued jobs while waiting
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

// The queue's state, shared with the Works that may help run it.
struct QueueCore {
  std::function<double(Job&)> run;
  double safety_s = 0;
  bool helpers = true;           // waiters may run jobs (needs MPI_THREAD_MULTIPLE)
  std::mutex exec_mu;            // held by whoever runs a job
  std::mutex mu;                 // the queue
  std::condition_variable cv;
  std::deque<Job> queue;
  std::atomic<size_t> queued{0};
  bool stop = false;
  uint64_t next_seq = 0;
  mutable std::mutex failure_mu;
  std::string failure;
  bool stalled = false;

  // With exec_mu held: runs the head of the queue if there is one; false if the queue is empty.
  bool run_head();
  void fail(const std::string& message, bool stalled);
  std::string failure_message() const;
  bool failure_stalled() const;
};

class JobQueue {
 public:
  // run(job) makes the job's MPI calls and returns when its data transfer started; it throws on failure.
  // helpers: whether waiting threads may run jobs themselves.
  using Runner = std::function<double(Job&)>;
  JobQueue(Runner run, double safety_s, bool helpers);
  ~JobQueue();
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Queues the job (its status filled in, but for seq) and returns its Work; after a failure the Work
  // fails at once.
  std::shared_ptr<Work> submit(Job job);
  // Fails every queued collective with the first failure message; later submissions fail at once.
  // stalled: the failure is a stall diagnosis.
  void fail(const std::string& message, bool stalled) { core_->fail(message, stalled); }
  std::string failure() const { return core_->failure_message(); }
  bool stalled() const { return core_->failure_stalled(); }
  // Stops the thread: joins it, or leaves it (abandon = true) when it is stuck inside MPI for good.
  void stop(bool abandon);
  bool on_comm_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void loop();

  std::shared_ptr<QueueCore> core_;
  std::thread thread_;
};

}  // namespace convoy::comm
