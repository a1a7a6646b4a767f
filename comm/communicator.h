// Communicator: the collectives data-parallel training needs, every one asynchronous. A call queues the
// collective and returns a Work handle at once; collectives run in call order (one MPI communication
// thread, as Horovod's background thread; an NCCL implementation runs them on its own CUDA stream), so
// buffers must stay untouched until wait() returns.
//
// Every collective carries a sequence number and a fingerprint (what it is: a bucket id and its size).
// Ranks compare fingerprints before moving data: ranks that issue different collectives are named in
// an error instead of hanging, and a collective that does not finish within the timeout is diagnosed
// (which ranks never arrived, which are elsewhere) and reported with the training step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ops/tensor.h"

namespace convoy::comm {

class World;

enum class ReduceOp { sum, average };

class Work {
 public:
  virtual ~Work() = default;
  // Blocks until the collective is done; throws convoy::Error if it failed or timed out (the
  // communicator's timeout, CommOptions::timeout_s, which every collective is held to).
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
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* name() const = 0;  // "mpi", "nccl"

  // In place over `count` elements of `dtype` (f32, bf16, f16, i64, f64). data is device memory of the
  // backend the communicator was made for (host memory for MPI).
  virtual std::shared_ptr<Work> all_reduce(void* data, size_t count, ops::DType dtype, ReduceOp op,
                                           uint64_t fingerprint, const std::string& what) = 0;
  virtual std::shared_ptr<Work> broadcast(void* data, size_t bytes, int root, uint64_t fingerprint,
                                          const std::string& what) = 0;
  // recv holds size() * bytes: rank r's block at r * bytes.
  virtual std::shared_ptr<Work> all_gather(const void* send, void* recv, size_t bytes, uint64_t fingerprint,
                                           const std::string& what) = 0;
  virtual std::shared_ptr<Work> barrier(const std::string& what) = 0;

  // The training step named in errors from now on.
  virtual void set_step(int64_t step) = 0;
  virtual double timeout_s() const = 0;
};

// MPI over MPI_COMM_WORLD, host buffers, one communication thread.
std::unique_ptr<Communicator> make_mpi_communicator(const World& world, const CommOptions& options = {});

// A fingerprint from a role and a size: fingerprint("bucket", 3, bytes).
uint64_t fingerprint(const char* role, uint64_t id, uint64_t bytes);

}  // namespace convoy::comm
