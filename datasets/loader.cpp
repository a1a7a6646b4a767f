#include "datasets/loader.h"

#include <algorithm>
#include <cstdlib>
#include <opencv2/core.hpp>

#include "common/error.h"
#include "common/log.h"
#include "datasets/transforms.h"

namespace convoy::datasets {

void LoaderOptions::validate() const {
  CONVOY_CHECK(!data_dir.empty(), "The loader needs a data folder (data_dir).");
  check_split_name(split);
  CONVOY_CHECK(batch_size > 0, "The batch size must be positive, got " << batch_size << ".");
  CONVOY_CHECK(world_size > 0 && rank >= 0 && rank < world_size,
               "Rank " << rank << " is not in a world of " << world_size << " ranks.");
  CONVOY_CHECK(threads >= 0 && threads <= 1024, "threads must be in [0, 1024] (0 = all cores), got " << threads << ".");
  CONVOY_CHECK(prefetch_depth >= 2 && prefetch_depth <= 64,
               "prefetch_depth must be in [2, 64], got " << prefetch_depth << ".");
  CONVOY_CHECK(output_size > 0 && output_size <= 4096, "output_size must be in [1, 4096], got " << output_size << ".");
  CONVOY_CHECK(eval_resize >= output_size, "eval_resize (" << eval_resize << ") must be at least output_size ("
                                                            << output_size << ") for the center crop.");
  CONVOY_CHECK(shuffle_window >= 0, "shuffle_window must be >= 0, got " << shuffle_window << ".");
  CONVOY_CHECK(flip_prob >= 0 && flip_prob <= 1, "flip_prob must be in [0, 1], got " << flip_prob << ".");
  CONVOY_CHECK(jitter >= 0 && jitter < 1, "jitter must be in [0, 1), got " << jitter << ".");
  CONVOY_CHECK(lighting_std >= 0, "lighting_std must be >= 0, got " << lighting_std << ".");
  CONVOY_CHECK(raw_pad >= 0 && raw_pad <= 64, "raw_pad must be in [0, 64], got " << raw_pad << ".");
  CONVOY_CHECK(static_cast<bool>(memory.allocate) == static_cast<bool>(memory.release),
               "Give the batch memory both an allocate and a release function, or neither.");
  CONVOY_CHECK(mean.has_value() == stddev.has_value(), "Give both mean and stddev for normalization, or neither.");
  if (mean) {
    CONVOY_CHECK(mean->size() == stddev->size() && !mean->empty(), "mean and stddev need one value per channel.");
    for (float s : *stddev) CONVOY_CHECK(s > 0, "Every normalization stddev must be positive, got " << s << ".");
  }
}

namespace {

AugmentOptions make_augment(const LoaderOptions& o, const ShardedDataset& data) {
  AugmentOptions a;
  a.train = o.train;
  a.output_size = o.output_size;
  a.eval_resize = o.eval_resize;
  a.flip_prob = o.flip_prob;
  a.jitter = o.jitter;
  a.lighting_std = o.lighting_std;
  a.raw_pad = o.raw_pad;
  a.raw_resize = o.resize_raw ? o.output_size : 0;
  a.bf16 = o.dtype == PixelType::bf16;
  if (o.mean) {
    a.mean = *o.mean;
    a.stddev = *o.stddev;
  } else if (data.encoding() == Encoding::jpeg) {
    a.mean.assign(kImageNetMean.begin(), kImageNetMean.end());
    a.stddev.assign(kImageNetStd.begin(), kImageNetStd.end());
  } else {
    const auto& splits = data.index().splits;
    const SplitIndex& stats = splits.count("train") ? splits.at("train") : data.split_index();
    a.mean.assign(stats.mean.begin(), stats.mean.end());
    a.stddev.assign(stats.std.begin(), stats.std.end());
    for (float& s : a.stddev) s = std::max(s, 1e-3f);  // a constant channel would divide by zero
  }
  return a;
}

SamplerOptions make_sampler(const LoaderOptions& o, const ShardedDataset& data) {
  SamplerOptions s;
  s.num_samples = data.size();
  s.batch_size = o.batch_size;
  s.rank = o.rank;
  s.world_size = o.world_size;
  s.seed = o.seed;
  s.shuffle = o.shuffle.value_or(o.train);
  s.drop_last = o.drop_last;
  s.shuffle_window = o.shuffle_window;
  s.shard_sizes = data.shard_sizes();
  return s;
}

const LoaderOptions& validated(const LoaderOptions& o) {
  o.validate();
  return o;
}

}  // namespace

Loader::Loader(LoaderOptions options)
    : o_(validated(options)),
      dataset_(std::make_unique<ShardedDataset>(o_.data_dir, o_.split)),
      sampler_(std::make_unique<Sampler>(make_sampler(o_, *dataset_))),
      augment_(make_augment(o_, *dataset_)),
      decoder_shape_(augment_, dataset_->encoding(), static_cast<int>(dataset_->split_index().height),
                     static_cast<int>(dataset_->split_index().width),
                     static_cast<int>(dataset_->split_index().channels)) {
  cv::setNumThreads(0);
  const int64_t per_image = decoder_shape_.out_elements();
  const size_t elem = o_.dtype == PixelType::f32 ? 4 : 2;
  buffers_ = std::vector<Buffer>(static_cast<size_t>(o_.prefetch_depth) + 1);
  for (Buffer& b : buffers_) {
    const size_t bytes = (static_cast<size_t>(per_image * o_.batch_size) * elem + 63) / 64 * 64;
    if (o_.memory.allocate) {
      auto release = o_.memory.release;
      b.images = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(o_.memory.allocate(bytes)),
                                          [release, bytes](uint8_t* p) { release(p, bytes); });
    } else {
      b.images = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(std::aligned_alloc(64, bytes)), std::free);
    }
    CONVOY_CHECK(b.images != nullptr, "Cannot allocate " << bytes / (1 << 20) << " MB for a batch buffer.");
    b.labels.resize(static_cast<size_t>(o_.batch_size));
    b.valid.resize(static_cast<size_t>(o_.batch_size));
    b.indices.resize(static_cast<size_t>(o_.batch_size));
    Batch& v = b.batch;
    v.images = b.images.get();
    v.labels = b.labels.data();
    v.valid = b.valid.data();
    v.indices = b.indices.data();
    v.n = o_.batch_size;
    v.height = height(), v.width = width(), v.channels = channels();
    v.dtype = o_.dtype;
  }
  int threads = o_.threads > 0 ? o_.threads : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::max(threads, 1);
  for (int t = 0; t < threads; ++t) threads_.emplace_back([this, t] { worker(t); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  ready_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void Loader::start_epoch(int64_t epoch, int64_t first_step) {
  CONVOY_CHECK(epoch >= 0, "Epochs are numbered from 0, got " << epoch << ".");
  CONVOY_CHECK(first_step >= 0 && first_step <= batches_per_epoch(),
               "An epoch of " << batches_per_epoch() << " batches cannot start at batch " << first_step << ".");
  std::unique_lock<std::mutex> lock(mu_);
  // Abandon the current epoch: no new tasks, wait for the samples in flight, then recycle every buffer.
  ++generation_;
  accepting_ = false;
  idle_cv_.wait(lock, [&] { return in_flight_ == 0; });
  for (Buffer& b : buffers_) b.state = State::free;
  held_ = nullptr;
  error_ = nullptr;
  slots_ = sampler_->epoch_slots(epoch);
  epoch_ = epoch;
  next_open_ = next_consume_ = first_step;
  accepting_ = true;
  lock.unlock();
  work_cv_.notify_all();
}

const Batch* Loader::next() {
  std::unique_lock<std::mutex> lock(mu_);
  CONVOY_CHECK(epoch_ >= 0, "Call Loader::start_epoch(epoch) before next().");
  if (held_) {
    held_->state = State::free;
    held_ = nullptr;
    work_cv_.notify_all();
  }
  if (error_) std::rethrow_exception(error_);
  if (next_consume_ >= batches_per_epoch()) return nullptr;
  Buffer* ready = nullptr;
  ready_cv_.wait(lock, [&] {
    if (error_ || stop_) return true;
    for (Buffer& b : buffers_)
      if (b.state == State::ready && b.batch.step == next_consume_) ready = &b;
    return ready != nullptr;
  });
  if (error_) std::rethrow_exception(error_);
  CONVOY_CHECK(ready != nullptr, "The loader is shutting down.");
  ready->state = State::consumer;
  held_ = ready;
  ++next_consume_;
  return &ready->batch;
}

bool Loader::find_task(Buffer*& buffer, int64_t& slot) {
  if (!accepting_ || error_) return false;
  Buffer* best = nullptr;
  for (Buffer& b : buffers_)
    if (b.state == State::filling && b.next_sample < b.batch.n && (!best || b.batch.step < best->batch.step)) best = &b;
  if (!best && next_open_ < batches_per_epoch()) {
    for (Buffer& b : buffers_)
      if (b.state == State::free) {
        best = &b;
        break;
      }
    if (best) {  // open the next batch in this buffer
      Batch& v = best->batch;
      v.epoch = epoch_;
      v.step = next_open_++;
      v.num_valid = 0;
      for (int64_t i = 0; i < v.n; ++i) {
        const SampleSlot& s = slots_[static_cast<size_t>(v.step * v.n + i)];
        v.indices[i] = s.index;
        v.labels[i] = dataset_->label(s.index);
        v.valid[i] = s.valid ? 1 : 0;
        v.num_valid += s.valid ? 1 : 0;
      }
      best->state = State::filling;
      best->next_sample = 0;
      best->pending = v.n;
      work_cv_.notify_all();  // other idle threads can help with this batch
    }
  }
  if (!best) return false;
  buffer = best;
  slot = best->next_sample++;
  return true;
}

std::string Loader::try_sample(SampleDecoder& decoder, std::vector<uint8_t>& record, int64_t index, int64_t epoch,
                               void* out) {
  const bool skip = o_.on_error == LoaderOptions::OnError::skip;
  record.resize(static_cast<size_t>(dataset_->record_bytes(index)));
  if (!dataset_->read_checked(index, record.data())) {
    if (!skip) CONVOY_FAIL(dataset_->mismatch(index, record.data()));
    return "its checksum does not match its bytes";
  }
  Rng rng(o_.seed, Stream::sample, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index));
  decoded_.fetch_add(1, std::memory_order_relaxed);
  try {
    decoder.decode(record.data(), record.size(), rng, out);
  } catch (const Error& e) {
    if (skip) return "it cannot be decoded: " + e.message();
    CONVOY_FAIL("Cannot decode " << dataset_->where(index) << ": " << e.message()
                                 << "; run `convoy inspect --verify --decode N` on " << dataset_->dir()
                                 << " and convert the damaged source again, or set data.on_error: skip.");
  }
  return "";
}

void Loader::process(SampleDecoder& decoder, std::vector<uint8_t>& record, Buffer& buffer, int64_t slot,
                     int64_t epoch) {
  // Record positions the same on every run and rank: a damaged record's slot takes the next intact record
  // of the split (its image, augmentation and label), so the batch keeps its size and the steps their
  // count. Up to kReplacements records in a row may be damaged.
  constexpr int64_t kReplacements = 64, kListed = 10;
  const int64_t index = buffer.batch.indices[slot];
  void* out = buffer.images.get() + static_cast<size_t>(slot * decoder.out_elements()) * buffer.batch.bytes_per_element();
  std::string why = try_sample(decoder, record, index, epoch, out);
  if (why.empty()) return;
  for (int64_t k = 1; k <= kReplacements; ++k) {
    const int64_t other = (index + k) % dataset_->size();
    if (!try_sample(decoder, record, other, epoch, out).empty()) continue;
    const int64_t n = skipped_.fetch_add(1) + 1;
    if (n <= kListed)
      spdlog::warn("skipped {}: {}; record {} of the split takes its place (data.on_error: skip){}",
                   dataset_->where(index), why, other,
                   n == kListed ? "; further skipped records are counted, not listed" : "");
    buffer.batch.indices[slot] = other;
    buffer.batch.labels[slot] = dataset_->label(other);
    return;
  }
  CONVOY_FAIL(dataset_->where(index) << " and the " << kReplacements
                                     << " records after it are damaged (the first because " << why
                                     << "): the data is badly damaged; copy or convert it again.");
}

void Loader::worker(int /*thread_index*/) {
  const SplitIndex& s = dataset_->split_index();
  SampleDecoder decoder(augment_, dataset_->encoding(), static_cast<int>(s.height), static_cast<int>(s.width),
                        static_cast<int>(s.channels));
  std::vector<uint8_t> record;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    Buffer* buffer = nullptr;
    int64_t slot = 0;
    while (!stop_ && !find_task(buffer, slot)) work_cv_.wait(lock);
    if (stop_) return;
    const uint64_t generation = generation_;
    const int64_t epoch = epoch_;
    ++in_flight_;
    lock.unlock();
    std::exception_ptr error;
    try {
      process(decoder, record, *buffer, slot, epoch);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (--in_flight_ == 0) idle_cv_.notify_all();
    if (generation != generation_) continue;  // the epoch was abandoned meanwhile
    if (error) {
      if (!error_) error_ = error;
      ready_cv_.notify_all();
      continue;
    }
    if (--buffer->pending == 0) {
      buffer->state = State::ready;
      ready_cv_.notify_all();
    }
  }
}

}  // namespace convoy::datasets
