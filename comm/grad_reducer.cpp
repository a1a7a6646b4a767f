#include "comm/grad_reducer.h"

#include "common/timer.h"
#include "ops/math/elementwise.h"

namespace convoy::comm {

GradReducer::GradReducer(ops::Graph& graph, Communicator& comm, const ReducerOptions& o)
    : graph_(graph), comm_(comm), o_(o) {
  CONVOY_CHECK(o.first_bucket_mb > 0 && o.bucket_mb > 0, "bucket sizes must be positive, got first "
                                                             << o.first_bucket_mb << " MB, then " << o.bucket_mb
                                                             << " MB");
  CONVOY_CHECK(o.wire == ops::DType::f32 || o.wire == ops::DType::bf16 || o.wire == ops::DType::f16,
               "gradients travel as f32, bf16 or f16, not " << ops::dtype_name(o.wire));
  const auto& entries = graph.param_layout().entries();
  bucket_of_.assign(entries.size(), 0);
  double target = o.first_bucket_mb * 1048576.0;
  for (size_t k = entries.size(); k-- > 0;) {
    if (buckets_.empty() || static_cast<double>(buckets_.back().bytes) >= target) {
      if (!buckets_.empty()) target = o.bucket_mb * 1048576.0;
      buckets_.emplace_back();
      buckets_.back().offset = entries[k].offset + entries[k].bytes;
    }
    Bucket& b = buckets_.back();
    // Entries come in decreasing offsets: the bucket grows downwards (over alignment gaps, which hold zeros).
    b.bytes += b.offset - entries[k].offset;
    b.offset = entries[k].offset;
    b.entries.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
  }
  for (Bucket& b : buckets_) {
    b.pending = static_cast<int>(b.entries.size());
    if (o.wire != ops::DType::f32) b.wire.resize(b.bytes / 4);
  }
}

size_t GradReducer::total_bytes() const {
  size_t n = 0;
  for (const Bucket& b : buckets_) n += b.bytes;
  return n;
}

void GradReducer::on_layer_done(size_t layer) {
  for (size_t e : graph_.layer_params(layer)) {
    Bucket& b = buckets_[bucket_of_[e]];
    if (--b.pending == 0) {
      // Launch in bucket order: a bucket whose predecessors are not ready waits for them.
      while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) launch(next_launch_++);
    }
  }
}

void GradReducer::launch(size_t i) {
  Bucket& b = buckets_[i];
  float* g = reinterpret_cast<float*>(static_cast<char*>(graph_.grads().flat().data()) + b.offset);
  const size_t n = b.bytes / 4;
  const uint64_t fp = fingerprint("gradient bucket", i, b.bytes);
  const std::string what = "all-reduce of gradient bucket " + std::to_string(i) + " (" + std::to_string(b.bytes) +
                           " bytes)";
  if (o_.wire == ops::DType::f32) {
    b.work = comm_.all_reduce(g, n, ops::DType::f32, ReduceOp::sum, fp, what);
    return;
  }
  const bool bf16 = o_.wire == ops::DType::bf16;
  for (size_t k = 0; k < n; ++k) b.wire[k] = bf16 ? math::f32_to_bf16(g[k]) : math::f32_to_f16(g[k]);
  b.work = comm_.all_reduce(b.wire.data(), n, o_.wire, ReduceOp::sum, fp, what);
}

double GradReducer::finish() {
  while (next_launch_ < buckets_.size()) launch(next_launch_++);
  const double t0 = now_seconds();
  for (size_t i = 0; i < buckets_.size(); ++i) {
    Bucket& b = buckets_[i];
    b.work->wait();
    if (o_.wire != ops::DType::f32) {
      float* g = reinterpret_cast<float*>(static_cast<char*>(graph_.grads().flat().data()) + b.offset);
      const bool bf16 = o_.wire == ops::DType::bf16;
      for (size_t k = 0; k < b.bytes / 4; ++k) g[k] = bf16 ? math::bf16_to_f32(b.wire[k]) : math::f16_to_f32(b.wire[k]);
    }
    b.pending = static_cast<int>(b.entries.size());
  }
  next_launch_ = 0;
  return now_seconds() - t0;
}

}  // namespace convoy::comm
