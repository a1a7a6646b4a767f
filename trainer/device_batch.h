// Loader batches moved to the backend's device, one batch ahead of compute: while step i runs on one
// device buffer, batch i+1 is copied into the other on a copy context (asynchronously on a GPU, from the
// loader's pinned staging memory; a plain copy on the CPU, the same code path). Labels and the
// evaluation's padding mask travel with the images.
#pragma once

#include <array>
#include <memory>

#include "datasets/batch.h"
#include "ops/backend.h"

namespace convoy::trainer {

struct DeviceBatch {
  ops::Tensor images;  // (N, H, W, C) f32
  ops::Tensor labels;  // (N) i32
  ops::Tensor valid;   // (N) u8: 0 for padding duplicates
  int64_t num_valid = 0;
  std::unique_ptr<ops::Event> copied;  // reached when the copy is done
  std::unique_ptr<ops::Event> released;  // recorded on compute when the buffer is next refilled
};

class DeviceBatches {
 public:
  DeviceBatches(ops::Backend& backend, const ops::Shape& images);
  // Starts copying `host` into the next of the two device buffers; returns that buffer.
  DeviceBatch& start(const datasets::Batch& host);
  // Blocks until the copy into b is done: the loader may then reuse the host batch.
  void wait_copied(DeviceBatch& b) { b.copied->synchronize(); }
  // The compute context runs nothing after this until b's copy is done (no host wait).
  void ready(DeviceBatch& b) { b.copied->wait_on(backend_.context()); }

 private:
  ops::Backend& backend_;
  std::unique_ptr<ops::ExecContext> copy_ctx_;
  std::array<DeviceBatch, 2> slots_;
  size_t next_ = 0;
};

// Loader memory from the backend's staging allocator (pinned host memory on a GPU).
datasets::BatchMemory staging_memory(ops::Backend& backend);

}  // namespace convoy::trainer
