#include "comm/mpi_queue.h"

#include <sched.h>

#include "common/timer.h"

namespace convoy::comm {
namespace {
// A collective that is done within this long is waited for by yielding the processor rather than by
// sleeping on a condition variable: a sleep and wake-up pair costs about 5 us, 5 % of a 1 MB all-reduce
// here, and a waiter that yields gives its core to the communication thread when they share one.
constexpr double kWaitSpinSeconds = 5e-3;
// After a collective the communication thread looks for the next one this long before it sleeps: buckets
// come in bursts. It yields meanwhile, so a compute thread on its core loses next to nothing.
constexpr double kIdleSpinSeconds = 200e-6;
}  // namespace

void MpiWork::wait() {
  // The communication thread enforces the timeout; this bound only catches a thread stuck inside MPI.
  if (!wait_for(safety_s_))
    CONVOY_FAIL("collective #" << seq_ << " is still running after " << safety_s_
                               << " s: the communication thread is stuck inside MPI; the job cannot continue");
}

bool MpiWork::wait_for(double seconds) {
  const double t0 = now_seconds();
  auto left = [&] { return seconds - (now_seconds() - t0); };
  while (!done_fast_.load(std::memory_order_acquire) && left() > 0) {
    // Run queued collectives (this one, or those before it) when nobody else is running one.
    if (auto q = queue_.lock(); q && q->helpers) {
      std::unique_lock<std::mutex> exec(q->exec_mu, std::try_to_lock);
      if (exec.owns_lock() && !done_fast_.load(std::memory_order_acquire) && q->run_head()) continue;
    }
    if (now_seconds() - t0 < kWaitSpinSeconds) {
      sched_yield();
      continue;
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::duration<double>(std::min(std::max(0.0, left()), 0.01)), [&] { return done_; });
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (!done_) return false;
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

bool QueueCore::run_head() {
  Job j;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (queue.empty()) return false;
    j = std::move(queue.front());
    queue.pop_front();
    queued.fetch_sub(1, std::memory_order_release);
  }
  if (const std::string f = failure_message(); !f.empty()) {  // popped while fail() was about to drain the queue
    j.work->finish(0, 0, f, failure_stalled());
    return true;
  }
  double started = 0, seconds = 0;
  try {
    started = run(j);
    seconds = now_seconds() - started;
  } catch (const StallError& e) {
    fail(e.message(), true);
  } catch (const Error& e) {
    fail(e.message(), false);
  } catch (const std::exception& e) {
    fail(e.what(), false);
  }
  j.work->finish(started, seconds, failure_message(), failure_stalled());
  return true;
}

std::string QueueCore::failure_message() const {
  std::lock_guard<std::mutex> lock(failure_mu);
  return failure;
}

bool QueueCore::failure_stalled() const {
  std::lock_guard<std::mutex> lock(failure_mu);
  return stalled;
}

// After a failure the ranks are out of step for good: the first failure is kept, and every collective
// still queued fails with it, as does every later one in submit(). The queue is drained here because
// no thread may ever take another job (the watchdog abandons one stuck inside MPI; the trainer waits
// on a gradient bucket queued behind it). A job submitted meanwhile is either queued before this drain
// or sees the failure in submit(), which checks under mu.
void QueueCore::fail(const std::string& message, bool stall) {
  std::string first;
  bool first_stalled = false;
  {
    std::lock_guard<std::mutex> lock(failure_mu);
    if (failure.empty()) failure = message, stalled = stall;
    first = failure;
    first_stalled = stalled;
  }
  std::deque<Job> stranded;
  {
    std::lock_guard<std::mutex> lock(mu);
    stranded.swap(queue);
    queued.store(0, std::memory_order_release);
  }
  for (Job& j : stranded) j.work->finish(0, 0, first, first_stalled);
}

JobQueue::JobQueue(Runner run, double safety_s, bool helpers) : core_(std::make_shared<QueueCore>()) {
  core_->run = std::move(run);
  core_->safety_s = safety_s;
  core_->helpers = helpers;
  thread_ = std::thread([this] { loop(); });
}

JobQueue::~JobQueue() {
  if (thread_.joinable()) stop(false);
}

void JobQueue::stop(bool abandon) {
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->stop = true;
  }
  core_->cv.notify_all();
  if (!thread_.joinable()) return;
  if (abandon)
    thread_.detach();
  else
    thread_.join();
}

std::shared_ptr<Work> JobQueue::submit(Job j) {
  QueueCore& c = *core_;
  std::lock_guard<std::mutex> lock(c.mu);
  j.status.seq = static_cast<int64_t>(c.next_seq++);
  j.work = std::make_shared<MpiWork>(static_cast<uint64_t>(j.status.seq), c.safety_s, core_);
  auto w = j.work;
  if (const std::string f = c.failure_message(); !f.empty()) {  // see QueueCore::fail()
    w->finish(0, 0, f, c.failure_stalled());
    return w;
  }
  c.queue.push_back(std::move(j));
  c.queued.fetch_add(1, std::memory_order_release);
  c.cv.notify_one();
  return w;
}

void JobQueue::loop() {
  QueueCore& c = *core_;
  while (true) {
    // Buckets come in bursts: look for the next one for a moment before going to sleep.
    const double idle_since = now_seconds();
    while (c.queued.load(std::memory_order_acquire) == 0 && now_seconds() - idle_since < kIdleSpinSeconds)
      sched_yield();
    {
      std::unique_lock<std::mutex> lock(c.mu);
      c.cv.wait(lock, [&] { return c.stop || !c.queue.empty(); });
      if (c.queue.empty()) return;
    }
    std::lock_guard<std::mutex> exec(c.exec_mu);
    while (c.run_head()) {
    }
  }
}

}  // namespace convoy::comm
