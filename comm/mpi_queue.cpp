#include "comm/mpi_queue.h"

#include <sched.h>

#include "common/timer.h"

namespace convoy::comm {
namespace {
// A collective that is done within this long is waited for by yielding the processor rather than by
// sleeping on a condition variable: on a core shared with the communication thread a sleep and wake-up
// pair costs more than a 1 MB all-reduce's margin (the comm thread runs while the waiter yields).
constexpr double kSpinSeconds = 50e-6;
}  // namespace

void MpiWork::wait() {
  // The communication thread enforces the timeout; this bound only catches a thread stuck inside MPI.
  if (!wait_for(safety_s_))
    CONVOY_FAIL("collective #" << seq_ << " is still running after " << safety_s_
                               << " s: the communication thread is stuck inside MPI; the job cannot continue");
}

bool MpiWork::wait_for(double seconds) {
  const double t0 = now_seconds();
  while (!done_fast_.load(std::memory_order_acquire) && now_seconds() - t0 < std::min(seconds, kSpinSeconds))
    sched_yield();
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, std::chrono::duration<double>(std::max(0.0, seconds - (now_seconds() - t0))),
                    [&] { return done_; }))
    return false;
  if (stalled_) throw StallError(error_, "comm/mpi_queue.cpp", "");
  if (!error_.empty()) throw Error(error_, "comm/mpi_queue.cpp", "");
  return true;
}

void MpiWork::finish(double started, double seconds, std::string error, bool stalled) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    started_ = started;
    seconds_ = seconds;
    error_ = std::move(error);
    stalled_ = stalled && !error_.empty();
    done_ = true;
    done_fast_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
}

JobQueue::JobQueue(Runner run, double safety_s) : run_(std::move(run)), safety_s_(safety_s) {
  thread_ = std::thread([this] { loop(); });
}

JobQueue::~JobQueue() {
  if (thread_.joinable()) stop(false);
}

void JobQueue::stop(bool abandon) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (!thread_.joinable()) return;
  if (abandon)
    thread_.detach();
  else
    thread_.join();
}

std::shared_ptr<Work> JobQueue::submit(Job j) {
  std::lock_guard<std::mutex> lock(mu_);
  j.status.seq = static_cast<int64_t>(next_seq_++);
  j.work = std::make_shared<MpiWork>(static_cast<uint64_t>(j.status.seq), safety_s_);
  auto w = j.work;
  if (const std::string f = failure(); !f.empty()) {  // see fail()
    w->finish(0, 0, f, stalled());
    return w;
  }
  queue_.push_back(std::move(j));
  queued_.fetch_add(1, std::memory_order_release);
  cv_.notify_one();
  return w;
}

void JobQueue::loop() {
  while (true) {
    // Buckets come in bursts: look for the next one for a moment before going to sleep.
    const double idle_since = now_seconds();
    while (queued_.load(std::memory_order_acquire) == 0 && now_seconds() - idle_since < kSpinSeconds) sched_yield();
    Job j;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      j = std::move(queue_.front());
      queue_.pop_front();
      queued_.fetch_sub(1, std::memory_order_release);
    }
    if (const std::string f = failure(); !f.empty()) {  // popped while fail() was about to drain the queue
      j.work->finish(0, 0, f, stalled());
      continue;
    }
    double started = 0, seconds = 0;
    try {
      started = run_(j);
      seconds = now_seconds() - started;
    } catch (const StallError& e) {
      fail(e.message(), true);
    } catch (const Error& e) {
      fail(e.message(), false);
    } catch (const std::exception& e) {
      fail(e.what(), false);
    }
    j.work->finish(started, seconds, failure(), stalled());
  }
}

std::string JobQueue::failure() const {
  std::lock_guard<std::mutex> lock(failure_mu_);
  return failure_;
}

bool JobQueue::stalled() const {
  std::lock_guard<std::mutex> lock(failure_mu_);
  return stalled_;
}

// After a failure the ranks are out of step for good: the first failure is kept, and every collective
// still queued fails with it, as does every later one in submit(). The queue is drained here because
// the communication thread may never take another job (the watchdog abandons it stuck inside MPI; the
// trainer waits on a gradient bucket queued behind the stop vote, for one). A job submitted meanwhile
// is either queued before this drain or sees the failure in submit(), which checks under mu_.
void JobQueue::fail(const std::string& message, bool stalled) {
  std::string first;
  bool first_stalled = false;
  {
    std::lock_guard<std::mutex> lock(failure_mu_);
    if (failure_.empty()) failure_ = message, stalled_ = stalled;
    first = failure_;
    first_stalled = stalled_;
  }
  std::deque<Job> stranded;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stranded.swap(queue_);
    queued_.store(0, std::memory_order_release);
  }
  for (Job& j : stranded) j.work->finish(0, 0, first, first_stalled);
}

}  // namespace convoy::comm
