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
#include "comm/world.h"
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
    std::unique_lock<std::mutex> lock(mu_);
    // The communication thread enforces the timeout; this bound only catches a thread stuck inside MPI.
    if (!cv_.wait_for(lock, std::chrono::duration<double>(safety_s_), [&] { return done_; }))
      CONVOY_FAIL("collective #" << seq_ << " is still running after " << safety_s_
                                 << " s: the communication thread is stuck inside MPI; the job cannot continue");
    if (!error_.empty()) throw Error(error_, "comm/mpi_communicator.cpp", "");
  }
  bool done() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  double started_at() const override { return started_; }
  double seconds() const override { return seconds_; }
  uint64_t sequence() const override { return seq_; }
  void finish(double started, double seconds, std::string error) {
    {
      std::lock_guard<std::mutex> lock(mu_);
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
    MPI_CHECK(MPI_Op_create(sum_bf16, 1, &bf16_sum_));
    MPI_CHECK(MPI_Op_create(sum_f16, 1, &f16_sum_));
    thread_ = std::thread([this] { loop(); });
  }

  ~MpiCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    if (failure_.empty()) {  // after a failure peers may be gone: leave the handles to MPI_Abort
      MPI_Op_free(&bf16_sum_);
      MPI_Op_free(&f16_sum_);
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
      if (!failure_.empty()) {  // once a collective failed, the ranks are out of step for good
        j.work->finish(0, 0, failure_);
        continue;
      }
      double started = 0, seconds = 0;
      try {
        started = run(j);
        seconds = now_seconds() - started;
      } catch (const Error& e) {
        failure_ = e.message();
      } catch (const std::exception& e) {
        failure_ = e.what();
      }
      j.work->finish(started, seconds, failure_);
    }
  }

  // Polls a request until it completes; past the timeout, finds out why and throws.
  void wait_for(MPI_Request& req, const Job& j, const char* phase) {
    const double t0 = now_seconds();
    for (int spins = 0;; ++spins) {
      int flag = 0;
      MPI_CHECK(MPI_Test(&req, &flag, MPI_STATUS_IGNORE));
      if (flag) return;
      if (spins < 200) continue;  // short collectives: stay hot
      if (now_seconds() - t0 > o_.timeout_s) diagnose_stall(j, phase);
      std::this_thread::sleep_for(std::chrono::microseconds(spins < 2000 ? 20 : 200));
    }
  }

  // Every stalled rank sends its status to every other rank on a separate communicator and listens for
  // a grace period: ranks that never answer are missing (dead, or stuck outside the collectives); ranks
  // that answer with another collective are out of step.
  [[noreturn]] void diagnose_stall(const Job& j, const char* phase) {
    const double grace = std::clamp(o_.timeout_s / 6, 2.0, 10.0);
    std::vector<Status> theirs(static_cast<size_t>(size_));
    std::vector<MPI_Request> sends, recvs(static_cast<size_t>(size_), MPI_REQUEST_NULL);
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      MPI_Request s;
      MPI_Isend(&j.status, sizeof(Status), MPI_BYTE, p, kStatusTag, ctrl_, &s);
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
      else if (s.seq != j.status.seq || s.fingerprint != j.status.fingerprint)
        elsewhere[describe(s) + " at step " + std::to_string(s.step)].push_back(p);
    }
    std::ostringstream os;
    os << "step " << j.status.step << ": " << describe(j.status) << " (" << phase << ") did not finish within "
       << o_.timeout_s << " s";
    if (!missing.empty())
      os << "; " << rank_list(missing) << " never joined it and did not answer (died, or stopped taking part)";
    for (const auto& [where, ranks] : elsewhere) os << "; " << rank_list(ranks) << " are at " << where << " instead";
    if (missing.empty() && elsewhere.empty())
      os << "; every rank is waiting in it (a network or MPI failure?)";
    os << ". The job cannot continue: restart it, with --resume auto to continue from the last checkpoint";
    CONVOY_FAIL(os.str());
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

  MPI_Datatype mpi_type(ops::DType t) const {
    switch (t) {
      case ops::DType::f32: return MPI_FLOAT;
      case ops::DType::f64: return MPI_DOUBLE;
      case ops::DType::i64: return MPI_INT64_T;
      case ops::DType::i32: return MPI_INT32_T;
      case ops::DType::bf16:
      case ops::DType::f16: return MPI_UINT16_T;
      case ops::DType::u8: break;
    }
    CONVOY_FAIL("all-reduce does not support " << ops::dtype_name(t));
  }

  // Returns when the data transfer started.
  double run(Job& j) {
    check_fingerprints(j);
    const double t0 = now_seconds();
    MPI_Request req = MPI_REQUEST_NULL;
    switch (j.kind) {
      case Kind::all_reduce: {
        MPI_Op op = j.dtype == ops::DType::bf16 ? bf16_sum_ : j.dtype == ops::DType::f16 ? f16_sum_ : MPI_SUM;
        CONVOY_CHECK(j.count <= static_cast<size_t>(INT32_MAX), "an all-reduce of " << j.count
                                                                                    << " elements is too large for MPI");
        MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, j.data, static_cast<int>(j.count), mpi_type(j.dtype), op, data_, &req));
        break;
      }
      case Kind::broadcast:
        MPI_CHECK(MPI_Ibcast(j.data, static_cast<int>(j.bytes), MPI_BYTE, j.root, data_, &req));
        break;
      case Kind::all_gather:
        MPI_CHECK(MPI_Iallgather(j.send, static_cast<int>(j.bytes), MPI_BYTE, j.data, static_cast<int>(j.bytes),
                                 MPI_BYTE, data_, &req));
        break;
      case Kind::barrier:
        MPI_CHECK(MPI_Ibarrier(data_, &req));
        break;
    }
    wait_for(req, j, "moving data");
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
  MPI_Op bf16_sum_ = MPI_OP_NULL, f16_sum_ = MPI_OP_NULL;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stop_ = false;
  uint64_t next_seq_ = 0;
  std::atomic<int64_t> step_{-1};
  std::string failure_;  // touched by the communication thread only
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const World& world, const CommOptions& options) {
  return std::make_unique<MpiCommunicator>(world, options);
}

uint64_t fingerprint(const char* role, uint64_t id, uint64_t bytes) {
  uint64_t h = 1469598103934665603ull;
  for (const char* p = role; *p; ++p) h = (h ^ static_cast<unsigned char>(*p)) * 1099511628211ull;
  h = math::mix64(h ^ math::mix64(id ^ math::mix64(bytes)));
  return h;
}

}  // namespace convoy::comm
