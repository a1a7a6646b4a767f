// index.json: the table of contents of a converted dataset, beside its shards. Readers go through it,
// so shards that it does not list (left over from an interrupted conversion) are not part of the data.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "datasets/shard_format.h"

namespace convoy::datasets {

struct ShardEntry {
  std::string name;    // file name, relative to the dataset folder
  int64_t records = 0;
  int64_t bytes = 0;   // file size
  std::string sha256;  // hex digest of the whole file
};

// A source file the converter left out, and why.
struct SkippedFile {
  std::string file;
  std::string reason;
};

struct SplitIndex {
  std::vector<ShardEntry> shards;
  int64_t records = 0;
  int64_t height = 0, width = 0, channels = 0;  // raw only
  std::vector<double> mean, std;                 // raw only: per channel over this split, 0-255 units
  std::vector<SkippedFile> skipped;
};

struct DatasetIndex {
  Encoding encoding = Encoding::jpeg;
  std::vector<std::string> classes;  // label i is classes[i]
  std::map<std::string, SplitIndex> splits;

  int64_t num_classes() const { return static_cast<int64_t>(classes.size()); }
  // The split or an error that lists the splits there are.
  const SplitIndex& split(const std::string& name, const std::string& dir) const;
};

bool index_exists(const std::string& dir);
// Reads and validates DIR/index.json; throws naming the file and the field that is wrong.
DatasetIndex read_index(const std::string& dir);
// Writes DIR/index.json through a temporary file and a rename, so a reader never sees half of it.
void write_index(const std::string& dir, const DatasetIndex& index);

// Writes `content` to `path` via `path.tmp-PID`, fsync and rename.
void write_file_atomically(const std::string& path, const std::string& content);

}  // namespace convoy::datasets
