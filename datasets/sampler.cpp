#include "datasets/sampler.h"

#include <numeric>
#include <utility>

#include "common/error.h"
#include "datasets/rng.h"

namespace convoy::datasets {
namespace {

template <typename T>
void shuffle_range(T* first, int64_t n, Rng& rng) {
  for (int64_t i = n - 1; i > 0; --i) std::swap(first[i], first[rng.below(static_cast<uint64_t>(i + 1))]);
}

}  // namespace

Sampler::Sampler(SamplerOptions options) : o_(std::move(options)) {
  CONVOY_CHECK(o_.num_samples > 0, "The sampler needs at least one record, got " << o_.num_samples << ".");
  CONVOY_CHECK(o_.batch_size > 0, "The batch size must be positive, got " << o_.batch_size << ".");
  CONVOY_CHECK(o_.world_size > 0 && o_.rank >= 0 && o_.rank < o_.world_size,
               "Rank " << o_.rank << " is not in a world of " << o_.world_size << " ranks.");
  CONVOY_CHECK(o_.shuffle_window >= 0, "shuffle_window must be >= 0, got " << o_.shuffle_window << ".");
  if (o_.shuffle && o_.shuffle_window > 0) {
    const int64_t sum = std::accumulate(o_.shard_sizes.begin(), o_.shard_sizes.end(), int64_t{0});
    CONVOY_CHECK(sum == o_.num_samples, "The shard sizes add up to " << sum << " records, not " << o_.num_samples
                                                                     << "; the window shuffle needs every shard's size.");
  }
  const int64_t global_batch = o_.batch_size * o_.world_size;
  if (o_.drop_last) {
    batches_ = o_.num_samples / global_batch;
    CONVOY_CHECK(batches_ > 0, "With drop_last, " << o_.num_samples << " records are fewer than one global batch ("
                                                  << o_.batch_size << " per rank x " << o_.world_size
                                                  << " ranks); use a smaller batch or turn drop_last off.");
  } else {
    batches_ = (o_.num_samples + global_batch - 1) / global_batch;
  }
}

int64_t Sampler::padding_per_epoch() const {
  const int64_t total = batches_ * o_.batch_size * o_.world_size;
  return total > o_.num_samples ? total - o_.num_samples : 0;
}

std::vector<int64_t> Sampler::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(static_cast<size_t>(o_.num_samples));
  const uint64_t e = static_cast<uint64_t>(epoch);
  if (!o_.shuffle) {
    std::iota(order.begin(), order.end(), int64_t{0});
    return order;
  }
  if (o_.shuffle_window == 0) {
    std::iota(order.begin(), order.end(), int64_t{0});
    Rng rng(o_.seed, Stream::permutation, e, 0);
    shuffle_range(order.data(), o_.num_samples, rng);
    return order;
  }
  // Shards in a random order, then a shuffle inside each window of W consecutive positions.
  std::vector<int64_t> starts(o_.shard_sizes.size() + 1, 0);
  for (size_t s = 0; s < o_.shard_sizes.size(); ++s) starts[s + 1] = starts[s] + o_.shard_sizes[s];
  std::vector<int64_t> shard_order(o_.shard_sizes.size());
  std::iota(shard_order.begin(), shard_order.end(), int64_t{0});
  Rng shard_rng(o_.seed, Stream::shard_order, e, 0);
  shuffle_range(shard_order.data(), static_cast<int64_t>(shard_order.size()), shard_rng);
  size_t p = 0;
  for (int64_t s : shard_order)
    for (int64_t i = starts[static_cast<size_t>(s)]; i < starts[static_cast<size_t>(s) + 1]; ++i) order[p++] = i;
  Rng rng(o_.seed, Stream::permutation, e, 0);
  for (int64_t w = 0; w < o_.num_samples; w += o_.shuffle_window)
    shuffle_range(order.data() + w, std::min(o_.shuffle_window, o_.num_samples - w), rng);
  return order;
}

std::vector<SampleSlot> Sampler::epoch_slots(int64_t epoch) const {
  const std::vector<int64_t> order = epoch_order(epoch);
  const int64_t per_rank = samples_per_rank(), B = o_.batch_size, G = B * o_.world_size;
  std::vector<SampleSlot> slots(static_cast<size_t>(per_rank));
  for (int64_t k = 0; k < per_rank; ++k) {
    // Global batch b is positions [b G, (b + 1) G); this rank's share of it is the r-th run of B.
    const int64_t p = (k / B) * G + static_cast<int64_t>(o_.rank) * B + k % B;
    slots[static_cast<size_t>(k)] = {order[static_cast<size_t>(p % o_.num_samples)], p < o_.num_samples};
  }
  return slots;
}

}  // namespace convoy::datasets
