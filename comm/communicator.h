// Communicator: the collectives data-parallel training needs, every one asynchronous. A call queues the
// collective and returns a Work handle at once; collectives run in call order (one MPI communication
// thread, as Horovod's background thread; an NCCL implementation runs them on its own CUDA stream), so
// buffers must stay untouched until wait() returns.
//
// Two planes use communicators: the *data plane* moves gradients and weights,
// which live in device memory, through the communicator the device wants (NCCL for a GPU, MPI
// otherwise); the *control plane* (the per-step vote, metric sums, the resume path, startup agreement)
// always uses an MPI communicator over host memory, whatever the device.
//
// Every collective carries a sequence number and a fingerprint (what it is: a bucket id and its size).
// With CheckMode::step the data plane writes each collective it issues into the step's StepRecord and
// the per-step vote (comm/step_vote.h) compares the records of all ranks once per step; with
// CheckMode::collective (for debugging) ranks compare fingerprints before every collective moves data.
// A collective that does not finish within the timeout is diagnosed (which ranks never arrived, which
// are elsewhere, and what each issued this step) and reported with the training step.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/step_record.h"
#include "ops/backend.h"

namespace convoy::comm {

class World;

enum class ReduceOp { sum, average, max };

// step: one check per step, by the vote; collective: every collective agreed on before it moves data.
enum class CheckMode { step, collective };
CheckMode parse_check_mode(const std::string& name);  // "step" | "collective"

// How the MPI data plane all-reduces: flat (one MPI_Allreduce over every rank) or hierarchical (Horovod's
// hierarchical mode: reduce within each node to its first rank, all-reduce among those leaders, broadcast
// within the node), which sends each node's sum over the network once instead of every rank's.
enum class Algorithm { flat, hierarchical };
Algorithm parse_algorithm(const std::string& name);  // "flat" | "hierarchical"

// A collective that did not finish in time (or was stuck when the launcher stopped the job): the message
// is the stall diagnosis, which already names every rank's whereabouts, and the peers are stalled or
// gone, so there is nothing more to ask them.
class StallError : public Error {
 public:
  using Error::Error;
};

class Work {
 public:
  virtual ~Work() = default;
  // Blocks until the collective is done; throws convoy::Error if it failed, StallError if it timed out
  // (the communicator's timeout, CommOptions::timeout_s, which every collective is held to).
  virtual void wait() = 0;
  // Waits at most `seconds`: true when done, false if still running; throws if it failed.
  virtual bool wait_for(double seconds) = 0;
  virtual bool done() const = 0;
  // When the data transfer started (common/timer.h clock) and how long it took, on the communication
  // thread (valid once done).
  virtual double started_at() const = 0;
  virtual double seconds() const = 0;
  virtual uint64_t sequence() const = 0;
};

struct CommOptions {
  double timeout_s = 60;  // a collective that takes longer is an error naming the missing ranks
  CheckMode check = CheckMode::step;
  std::string plane = "data";  // "data" or "control": named in messages
  // The step's record of data-plane collectives: the data plane writes every collective into it
  // (records = true); every plane reports it when it diagnoses a stall. May be null.
  std::shared_ptr<StepRecord> record;
  bool records = false;
  // MPI: all-reduces larger than this move in pieces of this size, which stay in the processor's cache
  // (on shared memory here a 64 MB MPI_Allreduce runs at a third of the speed of 4 MB pieces).
  size_t chunk_bytes = size_t{4} << 20;
  // MPI: when a thread waiting for a collective ran it itself (comm/mpi_queue.h) and it stalls, that
  // thread is stuck inside MPI for good and cannot throw: this gets the diagnosis and must end the
  // process. Null: print it as convoy's errors are printed and exit with status 1.
  std::function<void(const std::string&)> on_stuck_caller;
  // MPI: whether a waiting thread may run queued collectives itself (off: only the communication thread).
  bool waiters_help = true;
  // MPI: the all-reduce algorithm (NCCL builds its own hierarchy and refuses hierarchical).
  Algorithm algorithm = Algorithm::flat;
  // Hierarchical: what a node is. 0: the ranks that share memory (MPI_COMM_TYPE_SHARED); k: blocks of k
  // consecutive ranks (tests run several "nodes" on one machine with it).
  int ranks_per_node = 0;
};

// The options of one plane: "data" writes every collective into `record`, "control" only reports it.
CommOptions plane_options(const std::string& plane, double timeout_s, std::shared_ptr<StepRecord> record = nullptr,
                          CheckMode check = CheckMode::step);

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* name() const = 0;  // "mpi", "nccl"
  // The memory collectives take: host memory (cpu) for MPI, its GPU's for NCCL. A tensor elsewhere is
  // refused; comm/staging.h moves it through host memory.
  virtual ops::Device device() const = 0;

  // In place over `data` (f32, bf16, f16, i32, i64, f64) on device(). `ready`, when given, is an ordering
  // point recorded on the context that wrote `data`: the collective reads nothing before it is reached.
  // The tensor (and the event) must stay alive and untouched until the Work is done.
  virtual std::shared_ptr<Work> all_reduce(const ops::Tensor& data, ReduceOp op, uint64_t fingerprint,
                                           const std::string& what, ops::Event* ready = nullptr) = 0;
  virtual std::shared_ptr<Work> broadcast(const ops::Tensor& data, int root, uint64_t fingerprint,
                                          const std::string& what, ops::Event* ready = nullptr) = 0;
  // recv holds size() * send.bytes(): rank r's block at r * send.bytes().
  virtual std::shared_ptr<Work> all_gather(const ops::Tensor& send, const ops::Tensor& recv, uint64_t fingerprint,
                                           const std::string& what) = 0;
  virtual std::shared_ptr<Work> barrier(const std::string& what) = 0;

  // The training step named in errors from now on; with CheckMode::step the data plane's record of
  // collectives starts over (StepRecord::begin).
  virtual void set_step(int64_t step) = 0;
  virtual double timeout_s() const = 0;
};

// MPI over MPI_COMM_WORLD, host buffers, one communication thread.
std::unique_ptr<Communicator> make_mpi_communicator(const World& world, const CommOptions& options = {});
// NCCL over every rank, on `device` (a GPU), its own CUDA stream (comm/nccl_communicator.cpp; a build
// with the CUDA backend only).
std::unique_ptr<Communicator> make_nccl_communicator(const World& world, ops::Device device,
                                                     const CommOptions& options = {});

// The data plane's communicator by its config name (comm.backend): "mpi", "nccl", or "auto" (nccl for
// a GPU device, mpi otherwise). A build without NCCL answers "nccl" with what to do.
std::string resolve_comm_backend(const std::string& backend, ops::Device device);
// Throws, saying what to do, when this build cannot make that communicator (checked on one rank too).
void require_communicator(const std::string& backend, ops::Device device);
// Throws for an algorithm the communicator `backend` names does not run (hierarchical with NCCL).
void require_algorithm(const std::string& backend, ops::Device device, Algorithm algorithm);
std::unique_ptr<Communicator> make_communicator(const std::string& backend, ops::Device device, const World& world,
                                                const CommOptions& options = {});

// The two planes of a job on several ranks, sharing the step's record: control (always MPI over host
// memory) and data (the communicator `backend` names for `device`: comm.backend).
struct Planes {
  std::shared_ptr<StepRecord> record;
  std::unique_ptr<Communicator> control, data;
};
// algorithm: the data plane's (comm.algorithm); the control plane is always flat.
Planes make_planes(const std::string& backend, ops::Device device, const World& world, double timeout_s,
                   CheckMode check = CheckMode::step, Algorithm algorithm = Algorithm::flat);

// "rank 1", "ranks 0, 2": how messages name ranks.
std::string rank_list(const std::vector<int>& ranks);

// A fingerprint from a role and a size: fingerprint("bucket", 3, bytes).
uint64_t fingerprint(const char* role, uint64_t id, uint64_t bytes);

// A host tensor over n values at p (control-plane collectives on plain variables).
template <typename T>
ops::Tensor host_values(T* p, size_t n) {
  return ops::Tensor::wrap(const_cast<std::remove_const_t<T>*>(p), ops::Shape{static_cast<int64_t>(n)},
                           ops::dtype_of<std::remove_const_t<T>>());
}
inline ops::Tensor host_bytes(void* p, size_t n) {
  return ops::Tensor::wrap(p, ops::Shape{static_cast<int64_t>(n)}, ops::DType::u8);
}

}  // namespace convoy::comm
