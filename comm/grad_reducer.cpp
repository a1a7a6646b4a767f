#include "comm/grad_reducer.h"

#include <algorithm>

#include "comm/bucket_plan.h"
#include "common/timer.h"

namespace convoy::comm {

GradReducer::GradReducer(ops::Graph& graph, Communicator& comm, const ReducerOptions& o)
    : graph_(graph), backend_(graph.backend()), comm_(comm), o_(o) {
  CONVOY_CHECK(o.wire == ops::DType::f32 || o.wire == ops::DType::bf16 || o.wire == ops::DType::f16,
               "gradients travel as f32, bf16 or f16, not " << ops::dtype_name(o.wire));
  const auto& entries = graph.param_layout().entries();
  std::vector<std::pair<size_t, size_t>> items;
  for (const auto& e : entries) items.emplace_back(e.offset, e.bytes);
  staged_ = comm.device() != backend_.device();
  bucket_of_.assign(entries.size(), 0);
  ready_.assign(entries.size(), 0);
  for (BucketSpan& span : plan_buckets(items, o.first_bucket_mb, o.bucket_mb)) {
    Bucket& b = buckets_.emplace_back();
    b.offset = span.offset, b.bytes = span.bytes, b.entries = std::move(span.items);
    for (size_t e : b.entries) bucket_of_[e] = buckets_.size() - 1;
    const ops::Shape n{static_cast<int64_t>(b.bytes / 4)};
    b.grads = graph.grads().flat().view(b.offset, n);
    b.sent = b.grads;
    if (o.wire != ops::DType::f32) b.sent = b.wire = ops::Tensor::empty(n, o.wire, backend_.allocator());
    if (staged_) b.sent = b.staged = ops::Tensor::empty(n, o.wire, backend_.staging_allocator());
    b.ready = backend_.make_event();
    const size_t i = buckets_.size() - 1;
    b.what = "all-reduce of gradient bucket " + std::to_string(i) + " (" + std::to_string(b.bytes) + " bytes)";
    b.fingerprint = fingerprint("gradient bucket", i, b.bytes);
    b.pending = static_cast<int>(b.entries.size());
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
    CONVOY_CHECK(!ready_[e], "the gradient of '" << graph_.param_layout().entry(e).name
                                                 << "' was marked ready twice in one step (layer '"
                                                 << graph_.layer_name(layer) << "')");
    ready_[e] = 1;
    if (--b.pending == 0) {
      // Launch in bucket order: a bucket whose predecessors are not ready waits for them.
      while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) launch(next_launch_++);
    }
  }
}

void GradReducer::launch(size_t i) {
  Bucket& b = buckets_[i];
  ops::ExecContext& ctx = backend_.context();
  if (b.wire.defined()) backend_.cast(ctx, b.grads, b.wire);
  if (b.staged.defined()) backend_.copy(ctx, b.wire.defined() ? b.wire : b.grads, b.staged);
  b.ready->record(ctx);  // after the bucket's last backward kernel (and its cast and copy)
  b.work = comm_.all_reduce(b.sent, ReduceOp::sum, b.fingerprint, b.what, b.ready.get());
}

double GradReducer::finish() {
  while (next_launch_ < buckets_.size()) launch(next_launch_++);
  ops::ExecContext& ctx = backend_.context();
  const double t0 = now_seconds();
  // Collectives finish in order: waiting for the last first wakes this thread once, not once per bucket
  // (on a core it shares with the communication thread, each wake-up costs that thread time).
  buckets_.back().work->wait();
  for (Bucket& b : buckets_) {
    b.work->wait();
    if (b.staged.defined()) {
      if (b.wire.defined())
        backend_.copy(ctx, b.staged, b.wire);
      else
        backend_.copy(ctx, b.staged, b.grads);
    }
    if (b.wire.defined()) backend_.cast(ctx, b.wire, b.grads);
    b.pending = static_cast<int>(b.entries.size());
  }
  next_launch_ = 0;
  std::fill(ready_.begin(), ready_.end(), 0);
  return now_seconds() - t0;
}

}  // namespace convoy::comm
