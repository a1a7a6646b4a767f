// The MPI communicator: one thread makes every MPI call (Horovod's design), running queued collectives
// in order with non-blocking MPI and polling them, so that a collective that never finishes is caught by
// a timeout and diagnosed instead of hanging the job.
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "comm/mpi_check.h"
#include "comm/mpi_types.h"
#include "comm/world.h"
#include "common/stop.h"
#include "common/timer.h"
#include "ops/math/elementwise.h"

namespace convoy::comm {
namespace {

constexpr int kStatusTag = 7001;

// What a rank is doing, exchanged when a collective stalls or fingerprints disagree.
struct Status {
  int64_t seq = -1;
  uint64_t fingerprint = 0;
  int64_t step = -1;
  int32_t rank = -1;
  int32_t pad = 0;
  char what[96] = {};
};

std::string describe(const Status& s) {
  std::ostringstream os;
  os << "collective #" << s.seq << " '" << s.what << "'";
  return os.str();
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

void sum_bf16(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = math::f32_to_bf16(math::bf16_to_f32(a[i]) + math::bf16_to_f32(b[i]));
}

void sum_f16(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = math::f32_to_f16(math::f16_to_f32(a[i]) + math::f16_to_f32(b[i]));
}

class MpiWork final : public Work {
 public:
  MpiWork(uint64_t seq, double safety_s) : seq_(seq), safety_s_(safety_s) {}
  void wait() override {
    // The communication thread enforces the timeout; this bound only catches a thread stuck inside MPI.
    if (!wait_for(safety_s_))
      CONVOY_FAIL("collective #" << seq_ << " is still running after " << safety_s_
                                 << " s: the communication thread is stuck inside MPI; the job cannot continue");
  }
  bool wait_for(double seconds) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return done_; })) return false;
    if (!error_.empty()) throw Error(error_, "comm/mpi_communicator.cpp", "");
    return true;
  }
  bool done() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  double started_at() const override { return started_; }
  double seconds() const override { return seconds_; }
  uint64_t sequence() const override { return seq_; }
  // The first call wins: the watchdog may fail a collective that the communication thread is stuck in.
  void finish(double started, double seconds, std::string error) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (done_) return;
      started_ = started;
      seconds_ = seconds;
      error_ = std::move(error);
      done_ = true;
    }
    cv_.notify_all();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::string error_;
  double started_ = 0, seconds_ = 0;
  uint64_t seq_;
  double safety_s_;
};

enum class Kind { all_reduce, broadcast, all_gather, barrier };

struct Job {
  Kind kind;
  void* data = nullptr;
  const void* send = nullptr;
  size_t count = 0, bytes = 0;
  ops::DType dtype = ops::DType::f32;
  ReduceOp op = ReduceOp::sum;
  int root = 0;
  Status status;
  std::shared_ptr<MpiWork> work;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(const World& world, const CommOptions& o) : rank_(world.rank()), size_(world.size()), o_(o) {
    CONVOY_CHECK(o.timeout_s > 0, "the collective timeout must be positive, got " << o.timeout_s);
    data_ = dup_world("data");
    ctrl_ = dup_world("control");
    MPI_CHECK(MPI_Comm_set_errhandler(data_, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_set_errhandler(ctrl_, MPI_ERRORS_RETURN));
    multiple_ = world.thread_level() >= MPI_THREAD_MULTIPLE;
    thread_ = std::thread([this] { loop(); });
    watchdog_ = std::thread([this] { watch(); });
  }

  ~MpiCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    watch_cv_.notify_all();
    watchdog_.join();
    // A communication thread the watchdog gave up on is stuck inside MPI for good; the process is about
    // to end (convoy exits without MPI_Finalize after such a failure), so leave it.
    if (abandoned_.load())
      thread_.detach();
    else
      thread_.join();
    if (failure().empty()) {  // after a failure peers may be gone: leave the handles to MPI_Abort
      MPI_Comm_free(&data_);
      MPI_Comm_free(&ctrl_);
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "mpi"; }
  void set_step(int64_t step) override { step_.store(step); }
  double timeout_s() const override { return o_.timeout_s; }

  std::shared_ptr<Work> all_reduce(void* data, size_t count, ops::DType dtype, ReduceOp op, uint64_t fp,
                                   const std::string& what) override {
    Job j;
    j.kind = Kind::all_reduce, j.data = data, j.count = count, j.dtype = dtype, j.op = op;
    j.bytes = count * ops::dtype_size(dtype);
    return submit(std::move(j), fp, what);
  }
  std::shared_ptr<Work> broadcast(void* data, size_t bytes, int root, uint64_t fp, const std::string& what) override {
    CONVOY_CHECK(root >= 0 && root < size_, "broadcast root " << root << " is not a rank of " << size_);
    Job j;
    j.kind = Kind::broadcast, j.data = data, j.bytes = bytes, j.root = root;
    return submit(std::move(j), fp, what);
  }
  std::shared_ptr<Work> all_gather(const void* send, void* recv, size_t bytes, uint64_t fp,
                                   const std::string& what) override {
    Job j;
    j.kind = Kind::all_gather, j.send = send, j.data = recv, j.bytes = bytes;
    return submit(std::move(j), fp, what);
  }
  std::shared_ptr<Work> barrier(const std::string& what) override {
    Job j;
    j.kind = Kind::barrier;
    return submit(std::move(j), fingerprint("barrier", 0, 0), what);
  }

 private:
  // MPI_Comm_dup is collective: a rank that never arrives must not hang the others here either.
  MPI_Comm dup_world(const char* what) const {
    MPI_Comm c = MPI_COMM_NULL;
    MPI_Request req;
    MPI_CHECK(MPI_Comm_idup(MPI_COMM_WORLD, &c, &req));
    const double t0 = now_seconds();
    for (int flag = 0;;) {
      MPI_CHECK(MPI_Test(&req, &flag, MPI_STATUS_IGNORE));
      if (flag) return c;
      CONVOY_CHECK(now_seconds() - t0 < o_.timeout_s,
                   "not every one of the " << size_ << " ranks set up the " << what << " communicator within "
                                           << o_.timeout_s << " s: a rank failed at start-up; see its output");
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

  std::shared_ptr<Work> submit(Job j, uint64_t fp, const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    j.status.seq = static_cast<int64_t>(next_seq_++);
    j.status.fingerprint = fp;
    j.status.step = step_.load();
    j.status.rank = rank_;
    std::strncpy(j.status.what, what.c_str(), sizeof(j.status.what) - 1);
    j.work = std::make_shared<MpiWork>(static_cast<uint64_t>(j.status.seq), 2 * o_.timeout_s + 60);
    auto w = j.work;
    if (const std::string f = failure(); !f.empty()) {  // see fail()
      w->finish(0, 0, f);
      return w;
    }
    queue_.push_back(std::move(j));
    cv_.notify_one();
    return w;
  }

  void loop() {
    while (true) {
      Job j;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        j = std::move(queue_.front());
        queue_.pop_front();
      }
      if (const std::string f = failure(); !f.empty()) {  // popped while fail() was about to drain the queue
        j.work->finish(0, 0, f);
        continue;
      }
      double started = 0, seconds = 0;
      try {
        started = run(j);
        seconds = now_seconds() - started;
      } catch (const Error& e) {
        fail(e.message());
      } catch (const std::exception& e) {
        fail(e.what());
      }
      j.work->finish(started, seconds, failure());
    }
  }

  std::string failure() const {
    std::lock_guard<std::mutex> lock(failure_mu_);
    return failure_;
  }
  // After a failure the ranks are out of step for good: the first failure is kept, and every collective
  // still queued fails with it, as does every later one in submit(). The queue is drained here because
  // the communication thread may never take another job (the watchdog abandons it stuck inside MPI; the
  // trainer waits on a gradient bucket queued behind the stop vote, for one). A job submitted meanwhile
  // is either queued before this drain or sees the failure in submit(), which checks under mu_.
  void fail(const std::string& message) {
    std::string first;
    {
      std::lock_guard<std::mutex> lock(failure_mu_);
      if (failure_.empty()) failure_ = message;
      first = failure_;
    }
    std::deque<Job> stranded;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stranded.swap(queue_);
    }
    for (Job& j : stranded) j.work->finish(0, 0, first);
  }

  // When a launcher is tearing the job down (a rank died), the survivors get SIGTERM and, soon after,
  // SIGKILL: a collective still stuck this long after the signal is diagnosed at once.
  static constexpr double kStuckAfterStop = 1.5;
  static constexpr const char* kAfterStop = " after the launcher asked this rank to stop (SIGTERM or SIGUSR1)";

  // The data phase runs as one blocking MPI call (MPI's tuned algorithms; a polled non-blocking
  // collective only progresses inside MPI_Test and ran at half the bandwidth). This thread watches it:
  // past the timeout (or a stop request) it diagnoses on the control communicator (MPI_THREAD_MULTIPLE)
  // and fails the collective; the communication thread stays stuck in MPI and is abandoned.
  void watch() {
    std::unique_lock<std::mutex> lock(watch_mu_);
    while (!stop_watch()) {
      watch_cv_.wait_for(lock, std::chrono::milliseconds(100));
      if (!watching_) continue;
      const double waited = now_seconds() - watch_start_, since_stop = seconds_since_stop_request();
      const bool timed_out = waited > o_.timeout_s;
      const bool stopping = since_stop > kStuckAfterStop && waited > kStuckAfterStop;
      if (!timed_out && !stopping) continue;
      const Status status = watched_;
      std::shared_ptr<MpiWork> work = watched_work_;
      watching_ = false;
      abandoned_.store(true);
      lock.unlock();
      std::string message;
      if (multiple_) {
        try {
          message = diagnosis(status, "moving data", waited, stopping && !timed_out ? kAfterStop : "");
        } catch (const std::exception& e) {
          message = e.what();
        }
      } else {
        message = "step " + std::to_string(status.step) + ": " + describe(status) +
                  " did not finish moving data within " + std::to_string(static_cast<int>(waited)) +
                  " s (this MPI library lacks MPI_THREAD_MULTIPLE, so the missing ranks cannot be named)";
      }
      fail(message);
      work->finish(0, 0, message);
      return;
    }
  }

  bool stop_watch() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }

  void begin_data_phase(const Job& j) {
    std::lock_guard<std::mutex> lock(watch_mu_);
    watched_ = j.status;
    watched_work_ = j.work;
    watch_start_ = now_seconds();
    watching_ = true;
  }
  void end_data_phase() {
    std::lock_guard<std::mutex> lock(watch_mu_);
    watching_ = false;
    watched_work_.reset();
  }

  // Polls a request until it completes; past the timeout, finds out why and throws. After a stop
  // request (SIGTERM) a collective that stays stuck for kStuckAfterStop seconds is diagnosed at once:
  // launchers send SIGTERM to the survivors when a rank dies, and SIGKILL shortly after.
  void wait_for(MPI_Request& req, const Job& j, const char* phase) {
    const double t0 = now_seconds();
    for (int spins = 0;; ++spins) {
      int flag = 0;
      MPI_CHECK(MPI_Test(&req, &flag, MPI_STATUS_IGNORE));
      if (flag) return;
      if (spins < 200) continue;  // short collectives: stay hot
      const double waited = now_seconds() - t0, since_stop = seconds_since_stop_request();
      if (waited > o_.timeout_s) CONVOY_FAIL(diagnosis(j.status, phase, o_.timeout_s, ""));
      if (since_stop > kStuckAfterStop && waited > kStuckAfterStop)
        CONVOY_FAIL(diagnosis(j.status, phase, waited, kAfterStop));
      std::this_thread::sleep_for(std::chrono::microseconds(spins < 2000 ? 20 : 200));
    }
  }

  // Every stalled rank sends its status to every other rank on a separate communicator and listens for
  // a grace period: ranks that never answer are missing (dead, or stuck outside the collectives); ranks
  // that answer with another collective are out of step.
  std::string diagnosis(const Status& mine, const char* phase, double waited, const char* context) {
    // Peers that are stuck too answer within milliseconds; after a stop request the launcher's SIGKILL
    // is near, so the wait is short then.
    const double grace = *context ? 0.5 : std::clamp(o_.timeout_s / 6, 2.0, 10.0);
    std::vector<Status> theirs(static_cast<size_t>(size_));
    std::vector<MPI_Request> sends, recvs(static_cast<size_t>(size_), MPI_REQUEST_NULL);
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      MPI_Request s;
      MPI_Isend(&mine, sizeof(Status), MPI_BYTE, p, kStatusTag, ctrl_, &s);
      sends.push_back(s);
      MPI_Irecv(&theirs[static_cast<size_t>(p)], sizeof(Status), MPI_BYTE, p, kStatusTag, ctrl_,
                &recvs[static_cast<size_t>(p)]);
    }
    std::vector<bool> answered(static_cast<size_t>(size_), false);
    answered[static_cast<size_t>(rank_)] = true;
    const double t0 = now_seconds();
    while (now_seconds() - t0 < grace) {
      bool all = true;
      for (int p = 0; p < size_; ++p) {
        if (answered[static_cast<size_t>(p)]) continue;
        int flag = 0;
        MPI_Test(&recvs[static_cast<size_t>(p)], &flag, MPI_STATUS_IGNORE);
        answered[static_cast<size_t>(p)] = flag != 0;
        all = all && flag;
      }
      if (all) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::vector<int> missing;
    std::map<std::string, std::vector<int>> elsewhere;
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      const Status& s = theirs[static_cast<size_t>(p)];
      if (!answered[static_cast<size_t>(p)])
        missing.push_back(p);
      else if (s.seq != mine.seq || s.fingerprint != mine.fingerprint)
        elsewhere[describe(s) + " at step " + std::to_string(s.step)].push_back(p);
    }
    std::ostringstream os;
    os.setf(std::ios::fixed);
    os.precision(1);
    os << "step " << mine.step << ": " << describe(mine) << " (" << phase << ") did not finish within " << waited
       << " s" << context;
    if (!missing.empty())
      os << "; " << rank_list(missing) << " never joined it and did not answer (died, or stopped taking part)";
    for (const auto& [where, ranks] : elsewhere) os << "; " << rank_list(ranks) << " are at " << where << " instead";
    if (missing.empty() && elsewhere.empty())
      os << "; every rank is waiting in it (a network or MPI failure?)";
    os << ". The job cannot continue: restart it, with --resume auto to continue from the last checkpoint";
    return os.str();
  }

  // Ranks first agree on what the next collective is; a mismatch is reported with every rank's view.
  void check_fingerprints(const Job& j) {
    int64_t fp = static_cast<int64_t>(j.status.fingerprint & 0x3fffffffffffffffull);
    int64_t range[2] = {fp, -fp};  // max gives max and -min
    MPI_Request req;
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, range, 2, MPI_INT64_T, MPI_MAX, data_, &req));
    wait_for(req, j, "agreeing on the collective");
    if (range[0] == -range[1]) return;
    std::vector<Status> all(static_cast<size_t>(size_));
    MPI_CHECK(MPI_Iallgather(&j.status, sizeof(Status), MPI_BYTE, all.data(), sizeof(Status), MPI_BYTE, data_, &req));
    wait_for(req, j, "comparing collectives");
    std::map<std::string, std::vector<int>> groups;
    for (const Status& s : all) groups[describe(s) + " at step " + std::to_string(s.step)].push_back(s.rank);
    std::ostringstream os;
    os << "ranks issued different collectives (a rank skipped or added one):";
    for (const auto& [where, ranks] : groups) os << " " << rank_list(ranks) << " at " << where << ";";
    os << " the job cannot continue";
    CONVOY_FAIL(os.str());
  }

  // Returns when the data transfer started.
  double run(Job& j) {
    check_fingerprints(j);
    const double t0 = now_seconds();
    begin_data_phase(j);
    switch (j.kind) {
      case Kind::all_reduce:
        CONVOY_CHECK(j.count <= static_cast<size_t>(INT32_MAX), "an all-reduce of " << j.count
                                                                                    << " elements is too large for MPI");
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, j.data, static_cast<int>(j.count), mpi_datatype(j.dtype),
                                mpi_sum_op(j.dtype), data_));
        break;
      case Kind::broadcast:
        MPI_CHECK(MPI_Bcast(j.data, static_cast<int>(j.bytes), MPI_BYTE, j.root, data_));
        break;
      case Kind::all_gather:
        MPI_CHECK(MPI_Allgather(j.send, static_cast<int>(j.bytes), MPI_BYTE, j.data, static_cast<int>(j.bytes), MPI_BYTE,
                                data_));
        break;
      case Kind::barrier:
        MPI_CHECK(MPI_Barrier(data_));
        break;
    }
    end_data_phase();
    if (j.kind == Kind::all_reduce && j.op == ReduceOp::average) scale(j, 1.0 / size_);
    return t0;
  }

  void scale(Job& j, double f) {
    switch (j.dtype) {
      case ops::DType::f32: {
        float* p = static_cast<float*>(j.data);
        for (size_t i = 0; i < j.count; ++i) p[i] = static_cast<float>(p[i] * f);
        break;
      }
      case ops::DType::f64: {
        double* p = static_cast<double*>(j.data);
        for (size_t i = 0; i < j.count; ++i) p[i] *= f;
        break;
      }
      case ops::DType::bf16: {
        uint16_t* p = static_cast<uint16_t*>(j.data);
        for (size_t i = 0; i < j.count; ++i) p[i] = math::f32_to_bf16(static_cast<float>(math::bf16_to_f32(p[i]) * f));
        break;
      }
      case ops::DType::f16: {
        uint16_t* p = static_cast<uint16_t*>(j.data);
        for (size_t i = 0; i < j.count; ++i) p[i] = math::f32_to_f16(static_cast<float>(math::f16_to_f32(p[i]) * f));
        break;
      }
      default: CONVOY_FAIL("average is defined for floating-point data, not " << ops::dtype_name(j.dtype));
    }
  }

  int rank_, size_;
  CommOptions o_;
  MPI_Comm data_ = MPI_COMM_NULL, ctrl_ = MPI_COMM_NULL;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stop_ = false;
  uint64_t next_seq_ = 0;
  std::atomic<int64_t> step_{-1};
  bool multiple_ = false;  // MPI_THREAD_MULTIPLE: the watchdog may call MPI while the comm thread is in it
  mutable std::mutex failure_mu_;
  std::string failure_;
  std::thread watchdog_;
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool watching_ = false;
  double watch_start_ = 0;
  Status watched_;
  std::shared_ptr<MpiWork> watched_work_;
  std::atomic<bool> abandoned_{false};
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const World& world, const CommOptions& options) {
  return std::make_unique<MpiCommunicator>(world, options);
}

MPI_Datatype mpi_datatype(ops::DType t) {
  switch (t) {
    case ops::DType::f32: return MPI_FLOAT;
    case ops::DType::f64: return MPI_DOUBLE;
    case ops::DType::i64: return MPI_INT64_T;
    case ops::DType::i32: return MPI_INT32_T;
    case ops::DType::bf16:
    case ops::DType::f16: return MPI_UINT16_T;
    case ops::DType::u8: break;
  }
  CONVOY_FAIL("collectives do not support " << ops::dtype_name(t) << " data");
}

MPI_Op mpi_sum_op(ops::DType t) {
  static MPI_Op bf16 = MPI_OP_NULL, f16 = MPI_OP_NULL;
  static std::once_flag once;
  std::call_once(once, [] {
    MPI_CHECK(MPI_Op_create(sum_bf16, 1, &bf16));
    MPI_CHECK(MPI_Op_create(sum_f16, 1, &f16));
  });
  return t == ops::DType::bf16 ? bf16 : t == ops::DType::f16 ? f16 : MPI_SUM;
}

uint64_t fingerprint(const char* role, uint64_t id, uint64_t bytes) {
  uint64_t h = 1469598103934665603ull;
  for (const char* p = role; *p; ++p) h = (h ^ static_cast<unsigned char>(*p)) * 1099511628211ull;
  h = math::mix64(h ^ math::mix64(id ^ math::mix64(bytes)));
  return h;
}

}  // namespace convoy::comm
