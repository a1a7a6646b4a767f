#include "comm/bucket_plan.h"

#include <algorithm>

#include "common/error.h"

namespace convoy::comm {

std::vector<BucketSpan> plan_buckets(std::span<const std::pair<size_t, size_t>> items, double first_mb,
                                     double bucket_mb) {
  CONVOY_CHECK(first_mb > 0 && bucket_mb > 0, "bucket sizes must be positive, got first " << first_mb << " MB, then "
                                                                                         << bucket_mb << " MB");
  std::vector<BucketSpan> buckets;
  double target = first_mb * 1048576.0;
  for (size_t k = items.size(); k-- > 0;) {
    const auto [offset, bytes] = items[k];
    if (buckets.empty() || static_cast<double>(buckets.back().bytes) >= target) {
      if (!buckets.empty()) target = bucket_mb * 1048576.0;
      buckets.emplace_back();
      buckets.back().offset = offset + bytes;
    }
    BucketSpan& b = buckets.back();
    CONVOY_CHECK(offset + bytes <= b.offset, "internal: bucket items must come in increasing offsets");
    // Items come in decreasing offsets: the bucket grows downwards (over alignment gaps between them).
    b.bytes += b.offset - offset;
    b.offset = offset;
    b.items.push_back(k);
  }
  return buckets;
}

std::vector<std::pair<size_t, size_t>> uniform_items(size_t bytes, size_t item_bytes) {
  CONVOY_CHECK(item_bytes > 0, "items must have a size");
  std::vector<std::pair<size_t, size_t>> v;
  for (size_t off = 0; off < bytes; off += item_bytes) v.emplace_back(off, std::min(item_bytes, bytes - off));
  return v;
}

}  // namespace convoy::comm
