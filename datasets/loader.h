// The prefetching data loader: a pool of decode threads fills a fixed pool of batch buffers that cycle
// through bounded free -> filling -> ready -> consumer queues, in batch order, prefetch_depth batches ahead.
//
//   datasets::LoaderOptions o;
//   o.data_dir = "/data/imagenet"; o.split = "train"; o.batch_size = 64;
//   o.rank = world.rank(); o.world_size = world.size(); o.seed = 42;
//   datasets::Loader loader(o);                 // opens and checks the shards, starts the threads
//   for (int64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);                // batches_per_epoch() batches follow, on every rank
//     while (const datasets::Batch* b = loader.next()) { ... use b until the next call of next() ... }
//   }
//
// Determinism: the order comes from the Sampler (seed, epoch) and every sample's random augmentation
// from its own stream Rng(seed, epoch, record index), so a batch is bit-identical whatever the number of
// threads. Errors in a decode thread (a damaged record) are rethrown by next(), naming shard and record.
// Destroying the Loader mid-epoch stops and joins the threads.
// The Loader calls cv::setNumThreads(0) once: OpenCV's own thread pool would compete with the decode
// threads (each resize is small; parallelism comes from decoding many images at once).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "datasets/batch.h"
#include "datasets/dataset.h"
#include "datasets/sample_decoder.h"
#include "datasets/sampler.h"

namespace convoy::datasets {

struct LoaderOptions {
  std::string data_dir;         // folder with index.json and the shards
  std::string split = "train";
  int64_t batch_size = 0;       // per rank
  int rank = 0, world_size = 1;
  uint64_t seed = 0;
  int threads = 0;              // decode threads; 0 = std::thread::hardware_concurrency()
  int prefetch_depth = 2;       // batches decoded ahead of the consumer (>= 2)
  bool train = true;            // training augmentation and shuffling; false = evaluation transforms, record order
  std::optional<bool> shuffle;  // default: = train
  bool drop_last = false;       // false: pad (wrap around) so every rank has the same batches; see sampler.h
  int64_t shuffle_window = 0;   // 0: full shuffle; W > 0: shuffle shards, then within windows of W records
  int output_size = 224;        // jpeg: output height = width (raw data keeps its own H x W)
  int eval_resize = 256;        // jpeg evaluation: short side before the center crop
  PixelType dtype = PixelType::f32;
  BatchMemory memory;           // where batch buffers are allocated (default: aligned host memory)
  // Normalization (0-255 units). Default: the ImageNet values for jpeg; for raw the per-channel mean/std
  // stored by the converter (of the "train" split when there is one, so every split is normalized alike).
  std::optional<std::vector<float>> mean, stddev;
  double flip_prob = 0.5;
  float jitter = 0.4f;          // brightness/contrast/saturation strength (jpeg training)
  float lighting_std = 0.1f;    // PCA lighting noise (jpeg training)
  int raw_pad = 4;              // raw training: pad-and-random-crop padding
  bool resize_raw = false;      // raw: resize records to output_size x output_size (bilinear) first
  // A damaged record (checksum mismatch, or undecodable): fail (stop with its shard, record and key) or
  // skip (take the next intact record of the split in its place, the same on every run and rank: the
  // steps do not change; counted by skipped_records()).
  enum class OnError { fail, skip } on_error = OnError::fail;

  // Throws convoy::Error naming the first invalid field.
  void validate() const;
};

class Loader {
 public:
  explicit Loader(LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  const LoaderOptions& options() const { return o_; }
  const ShardedDataset& dataset() const { return *dataset_; }
  const Sampler& sampler() const { return *sampler_; }
  int64_t batches_per_epoch() const { return sampler_->batches_per_epoch(); }
  int64_t height() const { return decoder_shape_.out_height(); }
  int64_t width() const { return decoder_shape_.out_width(); }
  int64_t channels() const { return decoder_shape_.out_channels(); }
  const std::vector<float>& mean() const { return augment_.mean; }
  const std::vector<float>& stddev() const { return augment_.stddev; }

  // Starts epoch `epoch` at its batch `first_step` (0: the beginning; a resumed run starts where its
  // checkpoint stopped, without decoding the batches before). Any order of epochs is allowed; an
  // unfinished epoch is abandoned first.
  void start_epoch(int64_t epoch, int64_t first_step = 0);

  // Records decoded since the Loader was made (a resumed epoch decodes none of the batches it skips).
  int64_t records_decoded() const { return decoded_.load(); }
  // Damaged records replaced under on_error = skip since the Loader was made.
  int64_t skipped_records() const { return skipped_.load(); }

  // The next batch of the current epoch, or nullptr when the epoch is over. The batch is the
  // consumer's until the next call of next() or start_epoch() (that call hands it back to the pool) or
  // the Loader's destruction. Rethrows a decode thread's error.
  const Batch* next();

 private:
  enum class State { free, filling, ready, consumer };
  struct Buffer {
    std::shared_ptr<uint8_t> images;  // released through LoaderOptions::memory
    std::vector<int32_t> labels;
    std::vector<uint8_t> valid;
    std::vector<int64_t> indices;
    Batch batch;
    State state = State::free;
    int64_t next_sample = 0;  // next slot to hand to a thread
    int64_t pending = 0;      // slots not finished yet
  };

  void worker(int thread_index);
  bool find_task(Buffer*& buffer, int64_t& slot);  // with mu_ held
  void process(SampleDecoder& decoder, std::vector<uint8_t>& record, Buffer& buffer, int64_t slot, int64_t epoch);
  // Reads and decodes record `index` into `out`; "" when it worked, else why not (on_error = skip only).
  std::string try_sample(SampleDecoder& decoder, std::vector<uint8_t>& record, int64_t index, int64_t epoch, void* out);

  LoaderOptions o_;
  std::unique_ptr<ShardedDataset> dataset_;
  std::unique_ptr<Sampler> sampler_;
  AugmentOptions augment_;
  SampleDecoder decoder_shape_;  // only for the output shape
  std::vector<Buffer> buffers_;

  std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_, idle_cv_;
  std::vector<SampleSlot> slots_;  // this epoch's slots for this rank
  int64_t epoch_ = -1;
  int64_t next_open_ = 0, next_consume_ = 0;
  uint64_t generation_ = 0;
  int64_t in_flight_ = 0;
  bool accepting_ = false;  // false while an epoch is being (re)started
  Buffer* held_ = nullptr;
  std::exception_ptr error_;
  std::atomic<int64_t> decoded_{0}, skipped_{0};
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace convoy::datasets
