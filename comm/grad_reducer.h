// GradReducer: sums gradients over the ranks while backward is still running (PyTorch DDP's reducer,
// Horovod's tensor fusion). Buckets are byte ranges of the gradient arena in reverse parameter order
// (about first_bucket_mb for the first, bucket_mb after it); the graph's backward hook marks a layer's
// gradients ready, and a bucket's all-reduce starts the moment its last gradient is ready, so it
// overlaps the backward of the layers before it. The sum is left in the arena: the optimizer folds the
// 1/world_size of the average into its gradient scale.
#pragma once

#include <memory>
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
    std::shared_ptr<Work> work;
    std::vector<uint16_t> wire;     // 16-bit copy sent instead, when the wire type is bf16/f16
  };

  GradReducer(ops::Graph& graph, Communicator& comm, const ReducerOptions& options);

  // The graph's backward hook.
  void on_layer_done(size_t layer);
  // Starts any bucket not started yet, waits for all of them and leaves the sums in the gradient arena.
  // Returns the seconds spent waiting: communication that backward did not hide.
  double finish();

  const std::vector<Bucket>& buckets() const { return buckets_; }
  size_t total_bytes() const;

 private:
  void launch(size_t b);

  ops::Graph& graph_;
  Communicator& comm_;
  ReducerOptions o_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // parameter entry -> bucket
  size_t next_launch_ = 0;         // buckets start strictly in order, identically on every rank
};

}  // namespace convoy::comm
