// GradReducer: sums gradients over the ranks while backward is still running (PyTorch DDP's reducer,
// Horovod's tensor fusion). Buckets are byte ranges of the gradient arena in reverse parameter order
// (comm/bucket_plan.h); the graph's backward hook marks a layer's gradients ready, and a bucket's
// all-reduce starts the moment its last gradient is ready, so it overlaps the backward of the layers
// before it. The sum is left in the arena: the optimizer folds the 1/world_size of the average into its
// gradient scale.
//
// Device-neutral: the gradients live on the graph's backend. A bucket's launch records an ordering point
// (an Event) on the compute context after the bucket's last layer's backward, so the collective never
// reads a gradient whose kernels are only enqueued. A 16-bit wire format is a backend cast into a wire
// buffer on the device; a communicator that cannot take the device's memory (MPI with a GPU or the
// strict device) gets a host staging buffer that the backend copies into and back. Every buffer is
// allocated once, here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "ops/graph.h"

namespace convoy::comm {

struct ReducerOptions {
  double first_bucket_mb = 1.0;
  double bucket_mb = 25.0;
  ops::DType wire = ops::DType::f32;  // f32, or bf16/f16 to halve the bytes sent
};

class GradReducer {
 public:
  struct Bucket {
    size_t offset = 0, bytes = 0;  // byte range of the gradient arena
    std::vector<size_t> entries;    // parameter entries it holds
    int pending = 0;                // gradients not ready yet in this step
    ops::Tensor grads;              // the bucket's slice of the gradient arena (f32, on the device)
    ops::Tensor wire;               // the 16-bit copy on the device, when the wire type is bf16/f16
    ops::Tensor staged;             // host memory the communicator reduces, when it cannot take the device's
    ops::Tensor sent;               // what the communicator reduces: grads, wire or staged
    std::unique_ptr<ops::Event> ready;
    std::shared_ptr<Work> work;
    std::string what;               // "all-reduce of gradient bucket 3 (1048576 bytes)"
    uint64_t fingerprint = 0;
  };

  GradReducer(ops::Graph& graph, Communicator& comm, const ReducerOptions& options);

  // The graph's backward hook. A layer's gradients marked ready twice in one step is an error.
  void on_layer_done(size_t layer);
  // Starts any bucket not started yet, waits for all of them and leaves the sums in the gradient arena
  // (enqueued on the compute context: the optimizer that follows sees them). Returns the seconds spent
  // waiting: communication that backward did not hide.
  double finish();

  const std::vector<Bucket>& buckets() const { return buckets_; }
  size_t total_bytes() const;
  // Whether gradients travel through host staging buffers (the communicator cannot take the device's memory).
  bool staged() const { return staged_; }

 private:
  void launch(size_t b);

  ops::Graph& graph_;
  ops::Backend& backend_;
  Communicator& comm_;
  ReducerOptions o_;
  bool staged_ = false;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // parameter entry -> bucket
  std::vector<uint8_t> ready_;     // parameter entry -> its gradient is final in this step
  size_t next_launch_ = 0;         // buckets start strictly in order, identically on every rank
};

}  // namespace convoy::comm
