// The NCCL communicator: the data plane on GPUs. Collectives run on the communicator's own CUDA stream,
// which waits for each bucket's ready event (recorded on the compute stream after the bucket's last
// backward), so NCCL never reads a gradient whose kernels are only enqueued. A Work is a CUDA event
// recorded after the collective; waiting polls it and ncclCommGetAsyncError, and past the timeout (or on
// an asynchronous NCCL error) the communicator is aborted and the stall is diagnosed over MPI as the MPI
// communicator's are (which ranks never arrived, what each issued this step).
//
// None of this has run on a GPU on this project's machines (they have none): it compiles; the 1-rank test
// and tools/gpu-check.sh verify it where a GPU is.
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <atomic>
#include <cstring>
#include <map>
#include <sstream>
#include <thread>

#include "comm/communicator.h"
#include "comm/mpi_check.h"
#include "comm/mpi_watchdog.h"
#include "comm/world.h"
#include "common/stop.h"
#include "common/timer.h"
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cuda_check.h"

#define NCCL_CHECK(call)                                                                                      \
  do {                                                                                                        \
    ncclResult_t convoy_nccl_status_ = (call);                                                                \
    if (convoy_nccl_status_ != ncclSuccess && convoy_nccl_status_ != ncclInProgress)                          \
      ::convoy::detail::fail(__FILE__, __LINE__, #call,                                                       \
                             std::string("NCCL call failed: ") + ncclGetErrorString(convoy_nccl_status_));    \
  } while (0)

namespace convoy::comm {
namespace {

ncclDataType_t nccl_dtype(ops::DType t) {
  switch (t) {
    case ops::DType::f32: return ncclFloat32;
    case ops::DType::bf16: return ncclBfloat16;
    case ops::DType::f16: return ncclFloat16;
    case ops::DType::i32: return ncclInt32;
    case ops::DType::i64: return ncclInt64;
    case ops::DType::f64: return ncclFloat64;
    case ops::DType::u8: return ncclUint8;
  }
  CONVOY_FAIL("NCCL has no data type for " << ops::dtype_name(t));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::average: return ncclAvg;
    case ReduceOp::max: return ncclMax;
  }
  CONVOY_FAIL("unknown reduction");
}

class NcclCommunicator;

class NcclWork final : public Work {
 public:
  NcclWork(NcclCommunicator& c, uint64_t seq, Status status, double started)
      : c_(c), seq_(seq), status_(status), started_(started) {
    CUDA_CHECK(cudaEventCreateWithFlags(&done_event_, cudaEventDisableTiming));
  }
  ~NcclWork() override { cudaEventDestroy(done_event_); }
  cudaEvent_t event() const { return done_event_; }
  void wait() override;
  bool wait_for(double seconds) override;
  bool done() const override { return done_.load(); }
  double started_at() const override { return started_; }
  double seconds() const override { return seconds_; }
  uint64_t sequence() const override { return seq_; }
  const Status& status() const { return status_; }

 private:
  NcclCommunicator& c_;
  uint64_t seq_;
  Status status_;
  double started_, seconds_ = 0;
  cudaEvent_t done_event_ = nullptr;
  std::atomic<bool> done_{false};
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const World& world, ops::Device device, const CommOptions& o)
      : rank_(world.rank()), size_(world.size()), device_(device), o_(o), diag_(world.diagnosis_comm()) {
    CONVOY_CHECK(device.kind == ops::DeviceKind::cuda,
                 "communicator 'nccl' moves GPU memory, but the device is " << device.str()
                                                                            << ": use comm.backend: mpi");
    CUDA_CHECK(cudaSetDevice(device.index));
    check_one_gpu_per_rank(world);
    // Rank 0's id, with whether it could make one (the others must not wait for an id that never comes).
    struct {
      ncclUniqueId id;
      int32_t status;
    } hello{};
    if (rank_ == 0) hello.status = static_cast<int32_t>(ncclGetUniqueId(&hello.id));
    MPI_CHECK(MPI_Bcast(&hello, sizeof(hello), MPI_BYTE, 0, diag_));
    CONVOY_CHECK(hello.status == ncclSuccess, "rank 0 could not create NCCL's unique id: "
                                                  << ncclGetErrorString(static_cast<ncclResult_t>(hello.status)));
    const ncclUniqueId& id = hello.id;
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // initialisation is polled, so a rank that never arrives is an error, not a hang
    NCCL_CHECK(ncclCommInitRankConfig(&comm_, size_, id, rank_, &config));
    const double t0 = now_seconds();
    for (;;) {
      ncclResult_t state = ncclInProgress;
      NCCL_CHECK(ncclCommGetAsyncError(comm_, &state));
      if (state == ncclSuccess) break;
      if (state != ncclInProgress) {
        const std::string detail = ncclGetLastError(comm_);
        ncclCommAbort(comm_);
        comm_ = nullptr;
        CONVOY_FAIL("NCCL initialisation failed: " << ncclGetErrorString(state) << " (" << detail << ")");
      }
      if (now_seconds() - t0 > o.timeout_s) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        CONVOY_FAIL("not every one of the " << size_ << " ranks set up NCCL within " << o.timeout_s
                                            << " s: a rank failed at start-up; see its output");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaMalloc(&barrier_word_, sizeof(int32_t)));
  }

  // The collectives still in flight are waited for at most the timeout: when this rank is unwinding from
  // an error its peers may never issue theirs, so the communicator is aborted instead of hanging.
  ~NcclCommunicator() override {
    if (comm_ && !failed_.load()) {
      bool finished = false;
      for (const double t0 = now_seconds(); now_seconds() - t0 < o_.timeout_s;) {
        const cudaError_t s = cudaStreamQuery(stream_);
        if (s != cudaErrorNotReady) {
          finished = s == cudaSuccess;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      const ncclResult_t fin = finished ? ncclCommFinalize(comm_) : ncclInternalError;
      if (fin == ncclSuccess || fin == ncclInProgress) {  // a non-blocking finalize completes in the background
        ncclResult_t state = ncclInProgress;
        for (const double t0 = now_seconds(); state == ncclInProgress && now_seconds() - t0 < o_.timeout_s;) {
          if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) break;
          if (state == ncclInProgress) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (state == ncclSuccess) {
          ncclCommDestroy(comm_);
          comm_ = nullptr;
        }
      }
    }
    if (comm_) ncclCommAbort(comm_);
    if (barrier_word_) cudaFree(barrier_word_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "nccl"; }
  ops::Device device() const override { return device_; }
  void set_step(int64_t step) override {
    step_.store(step);
    if (o_.records && o_.record) o_.record->begin(step);
  }
  double timeout_s() const override { return o_.timeout_s; }

  std::shared_ptr<Work> all_reduce(const ops::Tensor& data, ReduceOp op, uint64_t fp, const std::string& what,
                                   ops::Event* ready) override {
    on_device(data, what);
    return enqueue(fp, what, data.bytes(), ready, [&] {
      NCCL_CHECK(ncclAllReduce(data.data(), data.data(), static_cast<size_t>(data.numel()), nccl_dtype(data.dtype()),
                               nccl_op(op), comm_, stream_));
    });
  }

  std::shared_ptr<Work> broadcast(const ops::Tensor& data, int root, uint64_t fp, const std::string& what,
                                  ops::Event* ready) override {
    on_device(data, what);
    CONVOY_CHECK(root >= 0 && root < size_, "broadcast root " << root << " is not a rank of " << size_);
    return enqueue(fp, what, data.bytes(), ready, [&] {
      NCCL_CHECK(ncclBroadcast(data.data(), data.data(), data.bytes(), ncclUint8, root, comm_, stream_));
    });
  }

  std::shared_ptr<Work> all_gather(const ops::Tensor& send, const ops::Tensor& recv, uint64_t fp,
                                   const std::string& what) override {
    on_device(send, what);
    on_device(recv, what);
    CONVOY_CHECK(recv.bytes() == send.bytes() * static_cast<size_t>(size_),
                 what << ": an all-gather of " << send.bytes() << " bytes from " << size_ << " ranks needs "
                      << send.bytes() * static_cast<size_t>(size_) << " bytes to receive into, got " << recv.bytes());
    return enqueue(fp, what, send.bytes(), nullptr, [&] {
      NCCL_CHECK(ncclAllGather(send.data(), recv.data(), send.bytes(), ncclUint8, comm_, stream_));
    });
  }

  std::shared_ptr<Work> barrier(const std::string& what) override {
    return enqueue(fingerprint("barrier", 0, 0), what, 0, nullptr, [&] {
      NCCL_CHECK(ncclAllReduce(barrier_word_, barrier_word_, 1, ncclInt32, ncclSum, comm_, stream_));
    });
  }

  // Polls w until done; past the timeout, after an asynchronous NCCL error or soon after a stop request
  // the communicator is aborted and the stall diagnosed.
  bool poll(NcclWork& w, double limit_s) {
    // After an abort the aborted kernels drain and their events fire: that is not a finished collective.
    CONVOY_CHECK(!failed_.load(), describe(w.status()) << ": the NCCL communicator was aborted after an earlier "
                                                          "failure; this collective did not complete");
    CUDA_CHECK(cudaSetDevice(device_.index));
    const double t0 = now_seconds();
    for (int spins = 0;; ++spins) {
      const cudaError_t s = cudaEventQuery(w.event());
      if (s == cudaSuccess) return true;
      if (s != cudaErrorNotReady) CUDA_CHECK(s);
      check_async(w);
      if (limit_s >= 0 && now_seconds() - t0 >= limit_s) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(spins < 200 ? 5 : 100));
    }
  }

 private:
  // An asynchronous NCCL error, or a collective past the timeout (or stuck after a stop request): abort
  // the communicator and fail with the diagnosis. Returns NCCL's state otherwise (success or in progress).
  ncclResult_t check_async(const NcclWork& w) {
    ncclResult_t async = ncclSuccess;
    NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
    if (async != ncclSuccess && async != ncclInProgress) {
      const std::string detail = ncclGetLastError(comm_);  // before the abort, which may overwrite it
      abort_comm();
      CONVOY_FAIL("NCCL failed in " << describe(w.status()) << " at step " << w.status().step << ": "
                                    << ncclGetErrorString(async) << " (" << detail << ")");
    }
    const double waited = now_seconds() - w.started_at();
    const double since_stop = seconds_since_stop_request();
    if (waited > o_.timeout_s || (since_stop > Watchdog::kStuckAfterStop && waited > Watchdog::kStuckAfterStop)) {
      abort_comm();
      const bool after_stop = waited <= o_.timeout_s;
      throw StallError(diagnose_stall(diag_, rank_, size_, with_record(w.status()), "moving data", waited,
                                      after_stop ? Watchdog::kAfterStop : "", o_.timeout_s),
                       __FILE__, "");
    }
    return async;
  }

  // NCCL refuses two ranks on one GPU ("Duplicate GPU detected"): say so in convoy's words first.
  void check_one_gpu_per_rank(const World& world) {
    char bus[64] = {};
    CUDA_CHECK(cudaDeviceGetPCIBusId(bus, sizeof(bus) - 1, device_.index));
    std::string key = world.host() + " " + bus;
    key.resize(127, '\0');
    std::vector<char> all(static_cast<size_t>(size_) * 128);
    MPI_CHECK(MPI_Allgather(key.c_str(), 128, MPI_CHAR, all.data(), 128, MPI_CHAR, diag_));
    std::map<std::string, std::vector<int>> by_gpu;
    for (int r = 0; r < size_; ++r) by_gpu[std::string(all.data() + r * 128)].push_back(r);
    for (const auto& [gpu, ranks] : by_gpu)
      CONVOY_CHECK(ranks.size() == 1, "communicator 'nccl': " << rank_list(ranks) << " share one GPU (" << gpu
                                                              << "); NCCL needs one GPU per rank: start one rank per "
                                                                 "GPU, or use comm.backend: mpi");
  }

  void on_device(const ops::Tensor& t, const std::string& what) const {
    CONVOY_CHECK(t.defined() && t.device() == device_, what << ": the NCCL communicator moves " << device_.str()
                                                            << " memory, but this tensor lives on "
                                                            << t.device().str());
  }

  template <typename Launch>
  std::shared_ptr<Work> enqueue(uint64_t fp, const std::string& what, size_t bytes, ops::Event* ready, Launch launch) {
    CONVOY_CHECK(!failed_.load(), what << ": the NCCL communicator failed earlier and cannot run collectives");
    CUDA_CHECK(cudaSetDevice(device_.index));
    Status st;
    st.seq = static_cast<int64_t>(seq_);
    st.fingerprint = fp;
    st.step = step_.load();
    st.rank = rank_;
    std::strncpy(st.plane, o_.plane.c_str(), sizeof(st.plane) - 1);
    std::strncpy(st.what, what.c_str(), sizeof(st.what) - 1);
    if (o_.records && o_.record) o_.record->add(fp, what, bytes);
    if (o_.check == CheckMode::collective) check_fingerprint(st);
    if (ready) {
      auto* ev = dynamic_cast<ops::cuda::CudaEvent*>(ready);
      CONVOY_CHECK(ev, what << ": the ready point must be a CUDA event of the GPU backend");
      CUDA_CHECK(cudaStreamWaitEvent(stream_, ev->get(), 0));
    }
    auto w = std::make_shared<NcclWork>(*this, seq_++, st, now_seconds());
    launch();
    // On a non-blocking communicator a call may return while NCCL still enqueues the collective in the
    // background (ncclInProgress): the done event may only be recorded once it is on the stream.
    while (check_async(*w) == ncclInProgress) std::this_thread::yield();
    CUDA_CHECK(cudaEventRecord(w->event(), stream_));
    return w;
  }

  // CheckMode::collective: every rank agrees on the collective before it is enqueued (over MPI).
  void check_fingerprint(const Status& st) {
    int64_t fp = static_cast<int64_t>(st.fingerprint & 0x3fffffffffffffffull);
    int64_t range[2] = {fp, -fp};
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, range, 2, MPI_INT64_T, MPI_MAX, diag_));
    if (range[0] == -range[1]) return;
    std::vector<Status> all(static_cast<size_t>(size_));
    MPI_CHECK(MPI_Allgather(&st, sizeof(Status), MPI_BYTE, all.data(), sizeof(Status), MPI_BYTE, diag_));
    CONVOY_FAIL(mismatch_message(all));
  }

  Status with_record(const Status& s) const { return comm::with_record(s, o_.record.get()); }

  void abort_comm() {
    if (!failed_.exchange(true) && comm_) ncclCommAbort(comm_), comm_ = nullptr;
  }

  int rank_, size_;
  ops::Device device_;
  CommOptions o_;
  MPI_Comm diag_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int32_t* barrier_word_ = nullptr;
  uint64_t seq_ = 0;
  std::atomic<int64_t> step_{-1};
  std::atomic<bool> failed_{false};
};

void NcclWork::wait() {
  if (done_.load()) return;
  c_.poll(*this, -1);
  seconds_ = now_seconds() - started_;
  done_.store(true);
}

bool NcclWork::wait_for(double seconds) {
  if (done_.load()) return true;
  if (!c_.poll(*this, seconds)) return false;
  seconds_ = now_seconds() - started_;
  done_.store(true);
  return true;
}

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const World& world, ops::Device device, const CommOptions& o) {
  return std::make_unique<NcclCommunicator>(world, device, o);
}

}  // namespace convoy::comm
