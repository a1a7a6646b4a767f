// Which records each rank reads in each epoch.
//
// For (seed, epoch) every rank computes the same global order of the split's N records. Global batch b
// is positions [b G, (b + 1) G) of it (G = world_size * batch_size), and rank r's batch b is the r-th
// run of batch_size positions inside it. So the global batches are the same whatever the number of
// ranks (2 ranks x batch b train on exactly what 1 rank x batch 2b does), and every rank gets exactly
// batches_per_epoch() batches, so collectives never wait on a rank that ran out of data. Ranks' parts
// are disjoint, and together they cover every record once, except:
//   - padding (drop_last = false, the default): batches = ceil(N / (world * batch)); the positions past
//     N wrap around to the start of the order (position p reads order[p mod N]). Those slots are
//     duplicates and are marked valid = false: evaluation must skip them (so top-1 counts are exact);
//     training may train on them (they are real samples) or skip them.
//   - drop_last = true: batches = floor(N / (world * batch)); the last N mod (world * batch) positions of
//     the order are not read this epoch (a different set each epoch when shuffling). Needs
//     N >= world * batch.
// Orders:
//   - shuffle = false: record order (evaluation).
//   - shuffle, shuffle_window = 0: a uniform random permutation per epoch.
//   - shuffle, shuffle_window = W > 0: shards in a random order, records concatenated, then shuffled
//     within consecutive windows of W positions. Reads stay within a few shards at a time (mostly
//     sequential I/O) at the price of a less thorough shuffle; needs shard_sizes.
// Everything is a pure function of the options and the epoch: no state, no threads.
#pragma once

#include <cstdint>
#include <vector>

namespace convoy::datasets {

struct SamplerOptions {
  int64_t num_samples = 0;  // records in the split
  int64_t batch_size = 0;   // per rank
  int rank = 0;
  int world_size = 1;
  uint64_t seed = 0;
  bool shuffle = true;
  bool drop_last = false;
  int64_t shuffle_window = 0;         // 0: full shuffle; W > 0: shard order + windows of W records
  std::vector<int64_t> shard_sizes;   // records per shard, in index order (needed when shuffle_window > 0)
};

// One slot of a batch: the global record index and whether it is a real sample (false = padding).
struct SampleSlot {
  int64_t index;
  bool valid;
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions options);  // validates; throws convoy::Error

  const SamplerOptions& options() const { return o_; }
  int64_t batches_per_epoch() const { return batches_; }
  int64_t samples_per_rank() const { return batches_ * o_.batch_size; }
  // Padded slots per epoch summed over all ranks (0 with drop_last).
  int64_t padding_per_epoch() const;

  // The global order of epoch `epoch` (all N records, before the split between ranks).
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  // This rank's samples_per_rank() slots of epoch `epoch`, in reading order (batch b is slots
  // [b * batch_size, (b + 1) * batch_size)).
  std::vector<SampleSlot> epoch_slots(int64_t epoch) const;

 private:
  SamplerOptions o_;
  int64_t batches_ = 0;
};

}  // namespace convoy::datasets
