// The Loader: batches match the records, determinism whatever the thread count, epochs, padding, bf16,
// several ranks, shutdown and restart mid-epoch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>
#include <vector>

#include "common/error.h"
#include "datasets/idx.h"
#include "datasets/imagefolder.h"
#include "datasets/loader.h"
#include "datasets/transforms.h"
#include "test_util.h"

namespace convoy::datasets {
namespace {

using testing::TempDir;

// 50 raw 8 x 6 images, labels i % 4, split train; another 10 as val.
std::string make_raw(const TempDir& tmp) {
  for (auto [split, n] : {std::pair{std::string("train"), 50}, std::pair{std::string("val"), 10}}) {
    std::vector<uint8_t> px(static_cast<size_t>(n) * 48), labels(static_cast<size_t>(n));
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 37) % 256);
    for (int i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = static_cast<uint8_t>(i % 4);
    testing::write_idx_images(tmp / (split + "-img"), px, n, 8, 6, true);
    testing::write_idx_labels(tmp / (split + "-lab"), labels, true);
    IdxOptions o;
    o.images = tmp / (split + "-img");
    o.labels = tmp / (split + "-lab");
    o.out = tmp / "raw";
    o.split = split;
    o.shard_size = 16;
    convert_idx(o, single_process_comm());
  }
  return tmp / "raw";
}

// 30 JPEGs of assorted sizes and kinds in 3 classes.
std::string make_jpegs(const TempDir& tmp) {
  const testing::JpegKind kinds[] = {testing::JpegKind::rgb420, testing::JpegKind::gray, testing::JpegKind::cmyk,
                                     testing::JpegKind::progressive, testing::JpegKind::rgb444};
  for (int i = 0; i < 30; ++i)
    testing::write_file(tmp / ("src/c" + std::to_string(i % 3) + "/" + std::to_string(i) + ".JPEG"),
                        testing::make_jpeg(50 + 7 * i, 120 - 2 * i, static_cast<uint32_t>(i), kinds[i % 5]));
  ImageFolderOptions o;
  o.root = tmp / "src";
  o.out = tmp / "jpeg";
  o.shard_size = 8;
  convert_imagefolder(o, single_process_comm());
  return o.out;
}

LoaderOptions jpeg_options(const std::string& dir, int threads) {
  LoaderOptions o;
  o.data_dir = dir;
  o.batch_size = 7;
  o.threads = threads;
  o.seed = 42;
  o.output_size = 40;
  o.eval_resize = 48;
  return o;
}

// Every batch of an epoch, copied out.
struct EpochCopy {
  std::vector<std::vector<uint8_t>> images;
  std::vector<std::vector<int32_t>> labels;
  std::vector<std::vector<int64_t>> indices;
  std::vector<std::vector<uint8_t>> valid;
};

EpochCopy read_epoch(Loader& loader, int64_t epoch) {
  EpochCopy c;
  loader.start_epoch(epoch);
  int64_t step = 0;
  while (const Batch* b = loader.next()) {
    EXPECT_EQ(b->step, step++);
    EXPECT_EQ(b->epoch, epoch);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b->images) % 64, 0u);
    const auto* p = static_cast<const uint8_t*>(b->images);
    c.images.emplace_back(p, p + b->image_elements() * static_cast<int64_t>(b->bytes_per_element()));
    c.labels.emplace_back(b->labels, b->labels + b->n);
    c.indices.emplace_back(b->indices, b->indices + b->n);
    c.valid.emplace_back(b->valid, b->valid + b->n);
  }
  EXPECT_EQ(step, loader.batches_per_epoch());
  return c;
}

TEST(Loader, RawBatchesHoldTheRecordsNormalized) {
  TempDir tmp;
  const std::string dir = make_raw(tmp);
  LoaderOptions o;
  o.data_dir = dir;
  o.split = "val";
  o.batch_size = 4;
  o.train = false;
  o.threads = 2;
  Loader loader(o);
  EXPECT_EQ(loader.height(), 8);
  EXPECT_EQ(loader.width(), 6);
  EXPECT_EQ(loader.channels(), 1);
  // Raw data is normalized with the train split's statistics.
  const SplitIndex& train = loader.dataset().index().splits.at("train");
  EXPECT_FLOAT_EQ(loader.mean()[0], static_cast<float>(train.mean[0]));
  EXPECT_EQ(loader.batches_per_epoch(), 3);  // 10 records: 4 + 4 + 2 valid (+ 2 padding)
  loader.start_epoch(0);
  std::vector<uint8_t> px(48);
  int64_t total_valid = 0;
  for (int64_t b = 0; const Batch* batch = loader.next(); ++b) {
    total_valid += batch->num_valid;
    for (int64_t i = 0; i < batch->n; ++i) {
      const int64_t index = batch->indices[i];
      EXPECT_EQ(index, (b * 4 + i) % 10);
      EXPECT_EQ(batch->valid[i], b * 4 + i < 10 ? 1 : 0);
      EXPECT_EQ(batch->labels[i], index % 4);
      loader.dataset().read(index, px.data());
      for (int k = 0; k < 48; ++k)
        ASSERT_NEAR(batch->images_f32()[i * 48 + k], (px[static_cast<size_t>(k)] - train.mean[0]) / train.std[0], 1e-4);
    }
  }
  EXPECT_EQ(total_valid, 10);

  // Mean/std given by the caller take precedence.
  o.mean = std::vector<float>{100.f};
  o.stddev = std::vector<float>{2.f};
  Loader custom(o);
  custom.start_epoch(0);
  const Batch* b = custom.next();
  custom.dataset().read(b->indices[1], px.data());
  EXPECT_FLOAT_EQ(b->images_f32()[48 + 5], (px[5] - 100.f) / 2.f);
}

TEST(Loader, BitIdenticalWhateverTheThreadCount) {
  TempDir tmp;
  const std::string dir = make_jpegs(tmp);
  Loader one(jpeg_options(dir, 1)), three(jpeg_options(dir, 3));
  const EpochCopy a0 = read_epoch(one, 0), b0 = read_epoch(three, 0);
  EXPECT_EQ(a0.indices, b0.indices);
  EXPECT_EQ(a0.labels, b0.labels);
  ASSERT_EQ(a0.images.size(), b0.images.size());
  for (size_t i = 0; i < a0.images.size(); ++i) EXPECT_TRUE(a0.images[i] == b0.images[i]) << "batch " << i;
  // Another epoch: another order and other augmentations, still identical between the two.
  const EpochCopy a1 = read_epoch(one, 1), b1 = read_epoch(three, 1);
  EXPECT_NE(a0.indices, a1.indices);
  EXPECT_TRUE(a1.images == b1.images);
  // Epoch 0 again gives epoch 0 again.
  EXPECT_TRUE(read_epoch(three, 0).images == a0.images);
  // Labels are the records' labels (class folder c<k> -> k).
  for (size_t b = 0; b < a0.labels.size(); ++b)
    for (size_t i = 0; i < a0.labels[b].size(); ++i)
      EXPECT_EQ(a0.labels[b][i], one.dataset().label(a0.indices[b][i]));
}

TEST(Loader, Bf16IsTheRoundedFloatOutput) {
  TempDir tmp;
  const std::string dir = make_jpegs(tmp);
  LoaderOptions o = jpeg_options(dir, 2);
  Loader f32(o);
  o.dtype = PixelType::bf16;
  Loader bf16(o);
  const EpochCopy a = read_epoch(f32, 0), b = read_epoch(bf16, 0);
  for (size_t k = 0; k < a.images.size(); ++k) {
    const auto* f = reinterpret_cast<const float*>(a.images[k].data());
    const auto* h = reinterpret_cast<const uint16_t*>(b.images[k].data());
    ASSERT_EQ(a.images[k].size(), 2 * b.images[k].size());
    for (size_t i = 0; i < b.images[k].size() / 2; ++i) ASSERT_EQ(h[i], float_to_bf16(f[i]));
  }
}

TEST(Loader, EvaluationPadsAndMarksTheLastBatchAndCoversEveryRecordOnce) {
  TempDir tmp;
  const std::string dir = make_jpegs(tmp);
  std::multiset<int64_t> seen;
  int64_t batches = -1;
  for (int rank = 0; rank < 2; ++rank) {
    LoaderOptions o = jpeg_options(dir, 2);
    o.train = false;
    o.rank = rank;
    o.world_size = 2;
    o.batch_size = 4;  // 30 records, 2 ranks x 4: 4 batches each, 2 padded slots
    Loader loader(o);
    if (batches < 0) batches = loader.batches_per_epoch();
    EXPECT_EQ(loader.batches_per_epoch(), batches);
    const EpochCopy c = read_epoch(loader, 0);
    for (size_t b = 0; b < c.indices.size(); ++b)
      for (size_t i = 0; i < c.indices[b].size(); ++i)
        if (c.valid[b][i]) seen.insert(c.indices[b][i]);
  }
  EXPECT_EQ(batches, 4);
  ASSERT_EQ(seen.size(), 30u);
  for (int64_t i = 0; i < 30; ++i) EXPECT_EQ(seen.count(i), 1u);
}

TEST(Loader, TrainingRanksAreDisjointWithEqualBatches) {
  TempDir tmp;
  const std::string dir = make_jpegs(tmp);
  std::vector<std::set<int64_t>> per_rank(3);
  for (int rank = 0; rank < 3; ++rank) {
    LoaderOptions o = jpeg_options(dir, 1);
    o.rank = rank;
    o.world_size = 3;
    o.batch_size = 4;
    o.drop_last = true;  // 30 records, global batch 12: 2 batches per rank, 6 records dropped
    Loader loader(o);
    EXPECT_EQ(loader.batches_per_epoch(), 2);
    const EpochCopy c = read_epoch(loader, 5);
    for (const auto& b : c.indices) per_rank[static_cast<size_t>(rank)].insert(b.begin(), b.end());
    EXPECT_EQ(per_rank[static_cast<size_t>(rank)].size(), 8u);
  }
  for (int a = 0; a < 3; ++a)
    for (int b = a + 1; b < 3; ++b)
      for (int64_t i : per_rank[static_cast<size_t>(a)]) EXPECT_EQ(per_rank[static_cast<size_t>(b)].count(i), 0u);
}

TEST(Loader, ShutdownAndRestartMidEpoch) {
  TempDir tmp;
  const std::string dir = make_jpegs(tmp);
  LoaderOptions o = jpeg_options(dir, 3);
  o.prefetch_depth = 3;
  const EpochCopy full = [&] {
    Loader l(o);
    return read_epoch(l, 2);
  }();
  {
    Loader loader(o);
    loader.start_epoch(2);
    ASSERT_NE(loader.next(), nullptr);
    // Restart the same epoch halfway: the batches are the same as from a fresh loader.
    loader.start_epoch(2);
    const Batch* b = loader.next();
    ASSERT_NE(b, nullptr);
    const auto* p = static_cast<const uint8_t*>(b->images);
    EXPECT_TRUE(std::equal(full.images[0].begin(), full.images[0].end(), p));
    loader.next();
    // Destroyed here with batches in flight: must not hang or crash.
  }
  {
    Loader loader(o);  // destroyed before any epoch
  }
  {
    Loader loader(o);
    loader.start_epoch(0);  // destroyed right after starting
  }
}

// A resumed run starts its epoch at the checkpoint's batch: the same batches as a full epoch from there
// on, and none of the skipped ones decoded.
TEST(Loader, StartsAnEpochMidwayWithoutDecodingTheBatchesBefore) {
  TempDir tmp;
  const std::string dir = make_jpegs(tmp);
  LoaderOptions o = jpeg_options(dir, 2);
  const EpochCopy full = [&] {
    Loader l(o);
    return read_epoch(l, 1);
  }();
  Loader loader(o);
  const int64_t first = 2;
  ASSERT_GT(loader.batches_per_epoch(), first);
  loader.start_epoch(1, first);
  int64_t step = first;
  while (const Batch* b = loader.next()) {
    EXPECT_EQ(b->step, step);
    const auto* p = static_cast<const uint8_t*>(b->images);
    EXPECT_TRUE(std::equal(full.images[static_cast<size_t>(step)].begin(), full.images[static_cast<size_t>(step)].end(), p))
        << "batch " << step;
    EXPECT_EQ(std::vector<int64_t>(b->indices, b->indices + b->n), full.indices[static_cast<size_t>(step)]);
    ++step;
  }
  EXPECT_EQ(step, loader.batches_per_epoch());
  EXPECT_EQ(loader.records_decoded(), (loader.batches_per_epoch() - first) * o.batch_size);
  EXPECT_THROW(loader.start_epoch(1, loader.batches_per_epoch() + 1), Error);
}

// Batch buffers come from the memory the loader is given (a GPU backend's pinned staging memory).
// make_raw's val split with record 5 damaged (its shard holds records 0-9, 48 bytes each).
LoaderOptions damaged_val(const TempDir& tmp, int threads) {
  const std::string dir = make_raw(tmp);
  testing::damage_images(dir + "/val-00000-of-00001.h5", 5 * 48 + 10, 3);
  LoaderOptions o;
  o.data_dir = dir;
  o.split = "val";
  o.batch_size = 4;
  o.train = false;
  o.threads = threads;
  return o;
}

TEST(LoaderOnError, FailStopsAtTheDamagedRecordNamingIt) {
  TempDir tmp;
  Loader loader(damaged_val(tmp, 2));
  loader.start_epoch(0);
  try {
    while (loader.next()) {
    }
    FAIL() << "an epoch over a damaged record ended without an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("val-00000-of-00001.h5, record 5 (key"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("is damaged"), std::string::npos) << e.message();
  }
}

TEST(LoaderOnError, SkipPutsTheNextRecordInItsPlaceAndCountsIt) {
  TempDir tmp;
  LoaderOptions o = damaged_val(tmp, 1);
  o.on_error = LoaderOptions::OnError::skip;
  Loader loader(o);
  const EpochCopy got = read_epoch(loader, 0);
  EXPECT_EQ(loader.skipped_records(), 1);
  // Batch 1, slot 1 was record 5: it holds record 6, its label and its pixels.
  EXPECT_EQ(got.indices[1][1], 6);
  EXPECT_EQ(got.labels[1][1], 6 % 4);
  EXPECT_EQ(got.images[1].size(), 4u * 48 * sizeof(float));
  EXPECT_EQ(std::vector<uint8_t>(got.images[1].begin() + 48 * 4, got.images[1].begin() + 96 * 4),
            std::vector<uint8_t>(got.images[1].begin() + 96 * 4, got.images[1].begin() + 144 * 4));
  EXPECT_EQ(got.indices.size(), 3u);  // the epoch keeps its steps
  // The same on another run with another thread count, shuffled training included.
  for (const bool train : {false, true}) {
    o.train = train;
    o.threads = 1;
    Loader one(o);
    o.threads = 3;
    Loader three(o);
    const EpochCopy a = read_epoch(one, 1), b = read_epoch(three, 1);
    EXPECT_EQ(a.images, b.images);
    EXPECT_EQ(a.labels, b.labels);
    EXPECT_EQ(a.indices, b.indices);
    EXPECT_EQ(one.skipped_records(), 1);
  }
}

TEST(Loader, AllocatesBatchesFromTheMemoryItIsGiven) {
  TempDir tmp;
  const std::string dir = make_raw(tmp);
  LoaderOptions o;
  o.data_dir = dir;
  o.batch_size = 8;
  o.threads = 1;
  int live = 0;
  std::vector<void*> given;
  o.memory.allocate = [&](size_t bytes) {
    ++live;
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    given.push_back(p);
    return p;
  };
  o.memory.release = [&](void* p, size_t) {
    --live;
    std::free(p);
  };
  {
    Loader loader(o);
    EXPECT_EQ(live, o.prefetch_depth + 1);
    loader.start_epoch(0);
    const Batch* b = loader.next();
    ASSERT_NE(b, nullptr);
    EXPECT_NE(std::find(given.begin(), given.end(), b->images), given.end());
  }
  EXPECT_EQ(live, 0);
  o.memory.release = nullptr;
  EXPECT_THROW(Loader bad(o), Error);
}

TEST(Loader, OptionsAreValidated) {
  TempDir tmp;
  const std::string dir = make_raw(tmp);
  LoaderOptions o;
  o.data_dir = dir;
  o.batch_size = 4;
  EXPECT_NO_THROW(o.validate());
  auto bad = [&](auto change) {
    LoaderOptions c = o;
    change(c);
    EXPECT_THROW(Loader{c}, Error);
  };
  bad([](LoaderOptions& c) { c.prefetch_depth = 1; });
  bad([](LoaderOptions& c) { c.batch_size = 0; });
  bad([](LoaderOptions& c) { c.rank = 2; });
  bad([](LoaderOptions& c) { c.mean = std::vector<float>{1.f}; });
  bad([](LoaderOptions& c) { c.eval_resize = 100; });
  bad([](LoaderOptions& c) { c.split = "test"; });
  bad([](LoaderOptions& c) { c.mean = c.stddev = std::vector<float>{1.f, 2.f, 3.f}; });  // raw data has 1 channel
  bad([](LoaderOptions& c) { c.data_dir = "/nonexistent"; });
  Loader loader(o);
  EXPECT_THROW(loader.next(), Error);  // next() before start_epoch()
}

}  // namespace
}  // namespace convoy::datasets
