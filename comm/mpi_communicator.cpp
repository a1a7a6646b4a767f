// The MPI communicator: host memory, one communication thread running queued collectives in order
// (comm/mpi_queue.h) and a watchdog that turns a stall into a diagnosis (comm/mpi_watchdog.h).
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <thread>

#include "comm/communicator.h"
#include "comm/mpi_check.h"
#include "comm/mpi_queue.h"
#include "comm/mpi_types.h"
#include "comm/mpi_watchdog.h"
#include "comm/world.h"
#include "common/stop.h"
#include "common/timer.h"
#include "ops/math/elementwise.h"

namespace convoy::comm {
namespace {

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(const World& world, const CommOptions& o)
      : rank_(world.rank()), size_(world.size()), o_(o), diag_(world.diagnosis_comm()) {
    CONVOY_CHECK(o.timeout_s > 0, "the collective timeout must be positive, got " << o.timeout_s);
    CONVOY_CHECK(o.chunk_bytes >= 4096, "the all-reduce chunk must be at least 4096 bytes, got " << o.chunk_bytes);
    CONVOY_CHECK(o.plane.size() < sizeof(Status::plane), "plane name '" << o.plane << "' is too long");
    data_ = dup_world();
    MPI_CHECK(MPI_Comm_set_errhandler(data_, MPI_ERRORS_RETURN));
    if (o.algorithm == Algorithm::hierarchical) {
      // Every rank got through dup_world(), so all are alive for these (blocking) splits. A node is what
      // MPI_COMM_TYPE_SHARED says it is, as for World's local rank.
      CONVOY_CHECK(o.ranks_per_node >= 0, "ranks per node must be 0 (as MPI sees them) or positive, got "
                                              << o.ranks_per_node);
      if (o.ranks_per_node > 0)
        MPI_CHECK(MPI_Comm_split(data_, rank_ / o.ranks_per_node, rank_, &node_));
      else
        MPI_CHECK(MPI_Comm_split_type(data_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node_));
      int local = 0;
      MPI_CHECK(MPI_Comm_rank(node_, &local));
      MPI_CHECK(MPI_Comm_split(data_, local == 0 ? 0 : MPI_UNDEFINED, rank_, &leaders_));
      MPI_CHECK(MPI_Comm_set_errhandler(node_, MPI_ERRORS_RETURN));
      if (leaders_ != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_set_errhandler(leaders_, MPI_ERRORS_RETURN));
    }
    const bool multiple = world.thread_level() >= MPI_THREAD_MULTIPLE;
    watchdog_ = std::make_unique<Watchdog>(
        o.timeout_s, multiple,
        [this](const Status& s, double waited, const char* context) {
          return diagnose_stall(diag_, rank_, size_, with_record(s), "moving data", waited, context, o_.timeout_s);
        },
        [this](const std::string& message) { queue_->fail(message, true); },
        [this](const std::string& message) {
          if (o_.on_stuck_caller) return o_.on_stuck_caller(message);
          // As trainer::run_with_world prints an error: the process has no other way out.
          std::fprintf(stderr, "convoy: error: %s\n", Error(message, "comm/mpi_watchdog.cpp", "").what());
          std::fflush(stderr);
          std::this_thread::sleep_for(std::chrono::seconds(1));  // the other ranks print their own diagnosis
          std::_Exit(1);
        });
    queue_ = std::make_unique<JobQueue>([this](Job& j) { return run(j); }, 2 * o.timeout_s + 60,
                                        multiple && o.waiters_help);
  }

  ~MpiCommunicator() override {
    // A communication thread the watchdog gave up on is stuck inside MPI for good; the process is about
    // to end (convoy exits without MPI_Finalize after such a failure), so leave it.
    queue_->stop(watchdog_->abandoned());
    const bool failed = !queue_->failure().empty();
    watchdog_.reset();
    if (!failed) {  // after a failure peers may be gone: leave the handles to MPI_Abort
      for (MPI_Comm* c : {&leaders_, &node_, &data_})
        if (*c != MPI_COMM_NULL) MPI_Comm_free(c);
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "mpi"; }
  ops::Device device() const override { return {}; }
  void set_step(int64_t step) override {
    step_.store(step);
    if (o_.records && o_.record) o_.record->begin(step);
  }
  double timeout_s() const override { return o_.timeout_s; }

  std::shared_ptr<Work> all_reduce(const ops::Tensor& data, ReduceOp op, uint64_t fp, const std::string& what,
                                   ops::Event* ready) override {
    host_memory(data, what);
    Job j;
    j.kind = Kind::all_reduce, j.data = data, j.op = op, j.ready = ready;
    return submit(std::move(j), fp, what, data.bytes());
  }
  std::shared_ptr<Work> broadcast(const ops::Tensor& data, int root, uint64_t fp, const std::string& what,
                                  ops::Event* ready) override {
    host_memory(data, what);
    CONVOY_CHECK(root >= 0 && root < size_, "broadcast root " << root << " is not a rank of " << size_);
    Job j;
    j.kind = Kind::broadcast, j.data = data, j.root = root, j.ready = ready;
    return submit(std::move(j), fp, what, data.bytes());
  }
  std::shared_ptr<Work> all_gather(const ops::Tensor& send, const ops::Tensor& recv, uint64_t fp,
                                   const std::string& what) override {
    host_memory(send, what);
    host_memory(recv, what);
    CONVOY_CHECK(recv.bytes() == send.bytes() * static_cast<size_t>(size_),
                 what << ": an all-gather of " << send.bytes() << " bytes from " << size_ << " ranks needs "
                      << send.bytes() * static_cast<size_t>(size_) << " bytes to receive into, got " << recv.bytes());
    Job j;
    j.kind = Kind::all_gather, j.send = send, j.data = recv;
    return submit(std::move(j), fp, what, send.bytes());
  }
  std::shared_ptr<Work> barrier(const std::string& what) override {
    Job j;
    j.kind = Kind::barrier;
    return submit(std::move(j), fingerprint("barrier", 0, 0), what, 0);
  }

 private:
  void host_memory(const ops::Tensor& t, const std::string& what) const {
    CONVOY_CHECK(t.defined() && t.device().is_cpu(),
                 what << ": the MPI communicator moves host memory, but this tensor lives on " << t.device().str()
                      << " (stage it through host memory: comm/staging.h)");
  }

  // MPI_Comm_dup is collective: a rank that never arrives must not hang the others here either.
  MPI_Comm dup_world() const {
    MPI_Comm c = MPI_COMM_NULL;
    MPI_Request req;
    MPI_CHECK(MPI_Comm_idup(MPI_COMM_WORLD, &c, &req));
    const double t0 = now_seconds();
    for (int flag = 0;;) {
      MPI_CHECK(MPI_Test(&req, &flag, MPI_STATUS_IGNORE));
      if (flag) return c;
      CONVOY_CHECK(now_seconds() - t0 < o_.timeout_s,
                   "not every one of the " << size_ << " ranks set up the " << o_.plane << "-plane communicator within "
                                           << o_.timeout_s << " s: a rank failed at start-up; see its output");
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

  std::shared_ptr<Work> submit(Job j, uint64_t fp, const std::string& what, size_t bytes) {
    j.status.fingerprint = fp;
    j.status.step = step_.load();
    j.status.rank = rank_;
    std::strncpy(j.status.plane, o_.plane.c_str(), sizeof(j.status.plane) - 1);
    std::strncpy(j.status.what, what.c_str(), sizeof(j.status.what) - 1);
    if (o_.records && o_.record) o_.record->add(fp, what, bytes);
    return queue_->submit(std::move(j));
  }

  Status with_record(const Status& s) const { return comm::with_record(s, o_.record.get()); }

  // Polls a request until it completes; past the timeout, or soon after a stop request, diagnoses.
  void wait_for(MPI_Request& req, const Job& j, const char* phase) {
    const double t0 = now_seconds();
    for (int spins = 0;; ++spins) {
      int flag = 0;
      MPI_CHECK(MPI_Test(&req, &flag, MPI_STATUS_IGNORE));
      if (flag) return;
      if (spins < 200) continue;  // short collectives: stay hot
      const double waited = now_seconds() - t0, since_stop = seconds_since_stop_request();
      if (waited > o_.timeout_s)
        throw StallError(diagnose_stall(diag_, rank_, size_, with_record(j.status), phase, o_.timeout_s, "", o_.timeout_s),
                         __FILE__, "");
      if (since_stop > Watchdog::kStuckAfterStop && waited > Watchdog::kStuckAfterStop)
        throw StallError(diagnose_stall(diag_, rank_, size_, with_record(j.status), phase, waited, Watchdog::kAfterStop,
                                        o_.timeout_s),
                         __FILE__, "");
      std::this_thread::sleep_for(std::chrono::microseconds(spins < 2000 ? 20 : 200));
    }
  }

  // CheckMode::collective: ranks first agree on what the next collective is; a mismatch is reported with
  // every rank's view.
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
    CONVOY_FAIL(mismatch_message(all));
  }

  // Runs on the communication thread; returns when the data transfer started.
  double run(Job& j) {
    if (o_.check == CheckMode::collective) check_fingerprints(j);
    if (j.ready) j.ready->synchronize();  // the data is written (a GPU's stream has reached the point)
    const double t0 = now_seconds();
    watchdog_->begin(j.status, j.work, !queue_->on_comm_thread());
    switch (j.kind) {
      case Kind::all_reduce: {
        // Large all-reduces move in cache-sized pieces (see CommOptions::chunk_bytes).
        const size_t esize = ops::dtype_size(j.data.dtype());
        const size_t count = static_cast<size_t>(j.data.numel());
        const size_t chunk = std::max<size_t>(o_.chunk_bytes / esize, 1);
        const MPI_Datatype type = mpi_datatype(j.data.dtype());
        const MPI_Op op = mpi_op(j.data.dtype(), j.op);
        char* p = static_cast<char*>(j.data.data());
        for (size_t off = 0; off < count; off += chunk) {
          const size_t n = std::min(chunk, count - off);
          if (node_ == MPI_COMM_NULL)
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p + off * esize, static_cast<int>(n), type, op, data_));
          else
            hierarchical_all_reduce(p + off * esize, static_cast<int>(n), type, op);
        }
        break;
      }
      case Kind::broadcast:
        CONVOY_CHECK(j.data.bytes() <= static_cast<size_t>(INT32_MAX), "a broadcast of " << j.data.bytes()
                                                                                       << " bytes is too large for MPI");
        MPI_CHECK(MPI_Bcast(j.data.data(), static_cast<int>(j.data.bytes()), MPI_BYTE, j.root, data_));
        break;
      case Kind::all_gather:
        MPI_CHECK(MPI_Allgather(j.send.data(), static_cast<int>(j.send.bytes()), MPI_BYTE, j.data.data(),
                                static_cast<int>(j.send.bytes()), MPI_BYTE, data_));
        break;
      case Kind::barrier:
        MPI_CHECK(MPI_Barrier(data_));
        break;
    }
    watchdog_->end();
    if (j.kind == Kind::all_reduce && j.op == ReduceOp::average) scale(j.data, 1.0 / size_);
    return t0;
  }

  // Reduce to the node's first rank, all-reduce among the nodes' first ranks, broadcast within the node.
  void hierarchical_all_reduce(void* p, int n, MPI_Datatype type, MPI_Op op) {
    const bool leader = leaders_ != MPI_COMM_NULL;
    MPI_CHECK(MPI_Reduce(leader ? MPI_IN_PLACE : p, leader ? p : nullptr, n, type, op, 0, node_));
    if (leader) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p, n, type, op, leaders_));
    MPI_CHECK(MPI_Bcast(p, n, type, 0, node_));
  }

  static void scale(ops::Tensor& t, double f) {
    const size_t n = static_cast<size_t>(t.numel());
    switch (t.dtype()) {
      case ops::DType::f32: {
        float* p = static_cast<float*>(t.data());
        for (size_t i = 0; i < n; ++i) p[i] = static_cast<float>(p[i] * f);
        break;
      }
      case ops::DType::f64: {
        double* p = static_cast<double*>(t.data());
        for (size_t i = 0; i < n; ++i) p[i] *= f;
        break;
      }
      case ops::DType::bf16: {
        uint16_t* p = static_cast<uint16_t*>(t.data());
        for (size_t i = 0; i < n; ++i) p[i] = math::f32_to_bf16(static_cast<float>(math::bf16_to_f32(p[i]) * f));
        break;
      }
      case ops::DType::f16: {
        uint16_t* p = static_cast<uint16_t*>(t.data());
        for (size_t i = 0; i < n; ++i) p[i] = math::f32_to_f16(static_cast<float>(math::f16_to_f32(p[i]) * f));
        break;
      }
      default: CONVOY_FAIL("average is defined for floating-point data, not " << ops::dtype_name(t.dtype()));
    }
  }

  int rank_, size_;
  CommOptions o_;
  MPI_Comm diag_;
  MPI_Comm data_ = MPI_COMM_NULL;
  MPI_Comm node_ = MPI_COMM_NULL, leaders_ = MPI_COMM_NULL;  // hierarchical only: this node's ranks, nodes' first ranks
  std::atomic<int64_t> step_{-1};
  std::unique_ptr<Watchdog> watchdog_;
  std::unique_ptr<JobQueue> queue_;  // last: its thread uses everything above
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const World& world, const CommOptions& options) {
  return std::make_unique<MpiCommunicator>(world, options);
}

}  // namespace convoy::comm
