// `convoy inspect`: reads a converted dataset the way the Loader will and reports what is there and
// what is wrong. Problems are collected (one line each, naming the shard and record) rather than
// stopping at the first, so one run lists everything to fix.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/index.h"

namespace convoy::datasets {

struct InspectOptions {
  bool verify_checksums = false;  // SHA-256 of every shard against index.json, and every record's checksum
  int64_t decode = 0;             // records per split to decode fully (chosen at random)
  uint64_t seed = 0;
};

struct SplitReport {
  std::string split;
  int64_t records = 0, shards = 0, bytes = 0;
  std::vector<int64_t> per_class;  // records per label
  int64_t checksums_verified = 0, decoded = 0, skipped_at_conversion = 0;
  int64_t records_verified = 0;    // records that matched their checksum (version-2 shards)
  int64_t unchecked_shards = 0;    // version-1 shards: no per-record checksums
  int64_t min_width = 0, max_width = 0, min_height = 0, max_height = 0;  // of the decoded records
};

struct InspectReport {
  DatasetIndex index;
  std::vector<SplitReport> splits;
  std::vector<std::string> problems;  // empty = consistent
};

// Throws only when DIR/index.json itself cannot be read; everything else lands in `problems`.
InspectReport inspect_dataset(const std::string& dir, const InspectOptions& options);

}  // namespace convoy::datasets
