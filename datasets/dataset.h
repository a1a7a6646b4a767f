// One split of a converted dataset: index.json plus every shard it lists, opened and checked, with
// records numbered globally in index order (shard 0's records first). This is what the sampler indexes
// and what the Loader's decode threads read from.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "datasets/index.h"
#include "datasets/shard_reader.h"

namespace convoy::datasets {

class ShardedDataset {
 public:
  // Throws convoy::Error naming the shard (and record) when a shard is missing, damaged, or disagrees
  // with the index (record count, split, encoding, classes, raw shape).
  ShardedDataset(std::string dir, std::string split);

  const std::string& dir() const { return dir_; }
  const std::string& split() const { return split_; }
  const DatasetIndex& index() const { return index_; }
  const SplitIndex& split_index() const { return index_.splits.at(split_); }
  Encoding encoding() const { return index_.encoding; }
  int64_t num_classes() const { return index_.num_classes(); }
  int64_t size() const { return static_cast<int64_t>(labels_.size()); }

  int64_t num_shards() const { return static_cast<int64_t>(shards_.size()); }
  const ShardReader& shard(int64_t s) const { return *shards_[static_cast<size_t>(s)]; }
  std::vector<int64_t> shard_sizes() const;

  struct Location {
    int64_t shard, record;
  };
  Location locate(int64_t index) const;
  int32_t label(int64_t index) const { return labels_[static_cast<size_t>(index)]; }
  int64_t record_bytes(int64_t index) const;
  // Thread-safe pread, no HDF5 call; the record is checked against its checksum (version 2 shards) and a
  // mismatch throws naming the shard, the record and its key.
  void read(int64_t index, uint8_t* out) const;
  bool read_checked(int64_t index, uint8_t* out) const;       // a mismatch returns false instead
  std::string mismatch(int64_t index, const uint8_t* data) const;  // the sentence for one
  // A one-line notice when some shards are version 1 (no per-record checks); empty otherwise.
  std::string unchecked_notice() const;
  std::string where(int64_t index) const;        // "shard ..., record ... (key ...)"

 private:
  std::string dir_, split_;
  DatasetIndex index_;
  std::vector<std::unique_ptr<ShardReader>> shards_;
  std::vector<int64_t> starts_;  // global index of each shard's first record, plus the total
  std::vector<int32_t> labels_;
  int64_t unchecked_shards_ = 0;
};

}  // namespace convoy::datasets
