// `convoy convert idx`: MNIST-style IDX files (images uint8 [N, H, W] or [N, H, W, C], labels uint8 [N];
// gzip-compressed or not) -> raw shards, uint8 [N, H, W, C]. The converter also stores the split's
// per-channel mean and standard deviation (0-255 units) in the shards and index.json; the Loader
// normalizes raw data with them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/convert.h"

namespace convoy::datasets {

struct IdxImages {
  int64_t count = 0, height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;  // (count, height, width, channels)
};
// Throws convoy::Error naming the file when it is not an IDX file of unsigned bytes or is truncated.
IdxImages read_idx_images(const std::string& path);
std::vector<uint8_t> read_idx_labels(const std::string& path);

struct IdxOptions {
  std::string images, labels, out;
  std::string split = "train";
  int64_t shard_size = 10000;  // records per shard
  // Only records [first, first + count) of the files (count -1: to the end), e.g. a validation part held
  // out of a training set; the statistics are those of the records converted.
  int64_t first = 0, count = -1;
};

ConvertSummary convert_idx(const IdxOptions& options, const ConvertComm& comm);

}  // namespace convoy::datasets
