// The gradient bucket plan (PyTorch DDP's reducer, Horovod's tensor fusion): byte ranges of a buffer,
// cut in reverse order of registration, the order backward finishes gradients in. The first bucket
// closes at about first_mb (so communication starts early in backward), every later one at about
// bucket_mb. The reducer plans the gradient arena with it; `convoy bench allreduce` cuts its buffer the
// same way.
#pragma once

#include <cstddef>
#include <span>
#include <utility>
#include <vector>

namespace convoy::comm {

struct BucketSpan {
  size_t offset = 0, bytes = 0;  // the bucket covers [offset, offset + bytes), gaps between items included
  std::vector<size_t> items;     // indices of the items it holds, last registered first
};

// items: (offset, bytes) in increasing offsets. A bucket closes once it holds at least its target.
std::vector<BucketSpan> plan_buckets(std::span<const std::pair<size_t, size_t>> items, double first_mb,
                                     double bucket_mb);

// A flat buffer of `bytes` bytes, seen as items of `item_bytes` each (the last one shorter).
std::vector<std::pair<size_t, size_t>> uniform_items(size_t bytes, size_t item_bytes);

}  // namespace convoy::comm
