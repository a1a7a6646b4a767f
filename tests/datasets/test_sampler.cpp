// Sampler properties: disjoint across ranks, covering, equal batch counts, padding marked, different per
// epoch, deterministic.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "common/error.h"
#include "datasets/sampler.h"

namespace convoy::datasets {
namespace {

SamplerOptions options(int64_t n, int64_t batch, int world, bool shuffle = true, bool drop_last = false,
                       int64_t window = 0) {
  SamplerOptions o;
  o.num_samples = n;
  o.batch_size = batch;
  o.world_size = world;
  o.seed = 1234;
  o.shuffle = shuffle;
  o.drop_last = drop_last;
  o.shuffle_window = window;
  if (window > 0) {  // shards of 7 records, the last one shorter
    for (int64_t left = n; left > 0; left -= 7) o.shard_sizes.push_back(std::min<int64_t>(7, left));
  }
  return o;
}

// Over all ranks: how often each record is read as a valid sample, and as padding.
struct Coverage {
  std::vector<int> valid, padding;
  int64_t batches = -1;
};

Coverage cover(SamplerOptions o, int64_t epoch) {
  Coverage c;
  c.valid.assign(static_cast<size_t>(o.num_samples), 0);
  c.padding.assign(static_cast<size_t>(o.num_samples), 0);
  for (int r = 0; r < o.world_size; ++r) {
    o.rank = r;
    Sampler s(o);
    if (c.batches < 0) c.batches = s.batches_per_epoch();
    EXPECT_EQ(s.batches_per_epoch(), c.batches) << "rank " << r;
    const auto slots = s.epoch_slots(epoch);
    EXPECT_EQ(static_cast<int64_t>(slots.size()), s.batches_per_epoch() * o.batch_size);
    for (const auto& slot : slots) (slot.valid ? c.valid : c.padding)[static_cast<size_t>(slot.index)]++;
  }
  return c;
}

TEST(Sampler, DisjointCoveringAndEqualBatchesForAwkwardSizes) {
  for (int64_t n : {1, 2, 7, 97, 100, 101, 1000, 1023}) {
    for (int world : {1, 2, 3, 8}) {
      for (int64_t batch : {1, 5, 32}) {
        for (bool shuffle : {false, true}) {
          for (int64_t window : {int64_t{0}, int64_t{16}}) {
            SCOPED_TRACE(testing::Message() << "n=" << n << " world=" << world << " batch=" << batch
                                            << " shuffle=" << shuffle << " window=" << window);
            const Coverage c = cover(options(n, batch, world, shuffle, false, window), 3);
            // Padding: every record exactly once as a valid sample; the rest of the slots are padding.
            EXPECT_EQ(c.batches, (n + batch * world - 1) / (batch * world));
            for (int64_t i = 0; i < n; ++i) ASSERT_EQ(c.valid[static_cast<size_t>(i)], 1) << "record " << i;
            const int64_t pads = std::accumulate(c.padding.begin(), c.padding.end(), int64_t{0});
            EXPECT_EQ(pads, c.batches * batch * world - n);
            EXPECT_LT(pads, batch * world);

            if (n >= batch * world) {  // drop_last: nothing twice, nothing padded, the rest dropped
              const Coverage d = cover(options(n, batch, world, shuffle, true, window), 3);
              EXPECT_EQ(d.batches, n / (batch * world));
              int64_t seen = 0;
              for (int64_t i = 0; i < n; ++i) {
                ASSERT_LE(d.valid[static_cast<size_t>(i)], 1);
                ASSERT_EQ(d.padding[static_cast<size_t>(i)], 0);
                seen += d.valid[static_cast<size_t>(i)];
              }
              EXPECT_EQ(seen, d.batches * batch * world);
            }
          }
        }
      }
    }
  }
}

TEST(Sampler, DropLastNeedsOneGlobalBatch) {
  EXPECT_THROW(Sampler(options(10, 4, 3, true, true)), Error);
  EXPECT_NO_THROW(Sampler(options(12, 4, 3, true, true)));
}

TEST(Sampler, OrderChangesEveryEpochAndIsDeterministic) {
  const Sampler s(options(500, 10, 1));
  const auto e0 = s.epoch_order(0), e1 = s.epoch_order(1), e2 = s.epoch_order(2);
  EXPECT_NE(e0, e1);
  EXPECT_NE(e1, e2);
  EXPECT_EQ(e0, Sampler(options(500, 10, 1)).epoch_order(0));  // a fresh sampler: same order
  // Every rank computes the same global order.
  auto o = options(500, 10, 4);
  o.rank = 3;
  EXPECT_EQ(Sampler(o).epoch_order(1), e1);
  // Another seed, another order.
  o.seed = 99;
  EXPECT_NE(Sampler(o).epoch_order(1), e1);
  // Without shuffle: record order, every epoch.
  const auto plain = Sampler(options(50, 10, 1, false)).epoch_order(7);
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(plain[static_cast<size_t>(i)], i);
}

TEST(Sampler, PermutationLooksUniform) {
  // Where record 0 lands, over many epochs: every quarter of the order about equally often.
  const Sampler s(options(40, 4, 1));
  int quarter[4] = {0, 0, 0, 0};
  for (int e = 0; e < 4000; ++e) {
    const auto order = s.epoch_order(e);
    const auto pos = std::find(order.begin(), order.end(), 0) - order.begin();
    quarter[pos / 10]++;
  }
  for (int q : quarter) EXPECT_NEAR(q, 1000, 150);  // ~5 sigma of a binomial(4000, 1/4)
}

TEST(Sampler, WindowShuffleKeepsReadsWithinFewShards) {
  // 100 shards of 7 and windows of 14 records: each window of reads touches 2 shards only.
  const auto o = options(700, 14, 1, true, false, 14);
  const Sampler s(o);
  for (int e = 0; e < 3; ++e) {
    const auto order = s.epoch_order(e);
    for (size_t w = 0; w + 14 <= order.size(); w += 14) {
      std::set<int64_t> shards;
      for (size_t k = w; k < w + 14; ++k) shards.insert(order[k] / 7);
      EXPECT_LE(shards.size(), 2u);
    }
  }
  EXPECT_NE(s.epoch_order(0), s.epoch_order(1));
  // Shard order itself changes from epoch to epoch.
  EXPECT_NE(s.epoch_order(0)[0] / 7, s.epoch_order(1)[0] / 7);
}

TEST(Sampler, EvaluationPaddingIsMarkedAndAtTheEnd) {
  // 10 records, 2 ranks, batch 4: global batches are positions 0-7 and 8-15; 6 padded slots, all in
  // the last global batch. Rank 0 reads positions 0-3 and 8-11, rank 1 reads 4-7 and 12-15.
  const int64_t want_index[2][8] = {{0, 1, 2, 3, 8, 9, 0, 1}, {4, 5, 6, 7, 2, 3, 4, 5}};
  const bool want_valid[2][8] = {{true, true, true, true, true, true, false, false},
                                 {true, true, true, true, false, false, false, false}};
  for (int r = 0; r < 2; ++r) {
    auto o = options(10, 4, 2, false);
    o.rank = r;
    const auto slots = Sampler(o).epoch_slots(0);
    ASSERT_EQ(slots.size(), 8u);
    for (size_t k = 0; k < 8; ++k) {
      EXPECT_EQ(slots[k].valid, want_valid[r][k]) << "rank " << r << " slot " << k;
      EXPECT_EQ(slots[k].index, want_index[r][k]) << "rank " << r << " slot " << k;
    }
  }
}

TEST(Sampler, InvalidOptions) {
  EXPECT_THROW(Sampler(options(0, 4, 1)), Error);
  EXPECT_THROW(Sampler(options(10, 0, 1)), Error);
  auto o = options(10, 4, 2);
  o.rank = 2;
  EXPECT_THROW(Sampler{o}, Error);
  o = options(10, 4, 1, true, false, 4);
  o.shard_sizes = {3, 3};
  EXPECT_THROW(Sampler{o}, Error);
}

// Data-parallel equivalence rests on this: at one global batch size, global batch b holds the same
// records in the same order however many ranks share it.
TEST(Sampler, GlobalBatchesDoNotDependOnTheRankCount) {
  for (bool drop_last : {false, true}) {
    const int64_t n = 203, global = 24;
    Sampler one(options(n, global, 1, true, drop_last));
    const auto whole = one.epoch_slots(3);
    for (int world : {2, 4}) {
      std::vector<std::vector<SampleSlot>> parts;
      for (int r = 0; r < world; ++r) {
        SamplerOptions o = options(n, global / world, world, true, drop_last);
        o.rank = r;
        Sampler s(o);
        ASSERT_EQ(s.batches_per_epoch(), one.batches_per_epoch());
        parts.push_back(s.epoch_slots(3));
      }
      const int64_t b_rank = global / world;
      for (int64_t b = 0; b < one.batches_per_epoch(); ++b)
        for (int r = 0; r < world; ++r)
          for (int64_t j = 0; j < b_rank; ++j) {
            const SampleSlot& want = whole[static_cast<size_t>(b * global + r * b_rank + j)];
            const SampleSlot& got = parts[static_cast<size_t>(r)][static_cast<size_t>(b * b_rank + j)];
            ASSERT_EQ(got.index, want.index) << "batch " << b << " rank " << r << " slot " << j;
            ASSERT_EQ(got.valid, want.valid);
          }
    }
  }
}

}  // namespace
}  // namespace convoy::datasets
