// Writes one shard (format: shard_format.h). Records are collected in memory (a shard is ~1,000 images)
// and written in one go by finish(), into a temporary file that is renamed only once complete: a crash
// or an error never leaves a half-written shard under the final name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/index.h"
#include "datasets/shard_format.h"

namespace convoy::datasets {

class ShardWriter {
 public:
  // The shard will be `dir`/`name`; `header` fixes the encoding (and for raw the image shape).
  ShardWriter(std::string dir, std::string name, ShardHeader header);
  ~ShardWriter();  // removes the temporary file if finish() did not complete
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // jpeg: the file's bytes exactly as they were (not re-encoded).
  void add_jpeg(const uint8_t* data, size_t bytes, int32_t label, std::string key);
  // raw: height * width * channels bytes, (H, W, C) order.
  void add_raw(const uint8_t* pixels, int32_t label, std::string key);

  int64_t records() const { return static_cast<int64_t>(labels_.size()); }

  // Writes the file (temporary name, fsync, rename) and returns its index entry with size and SHA-256.
  ShardEntry finish();

 private:
  void check_label(int32_t label, const std::string& key) const;

  std::string dir_, name_, tmp_path_;
  ShardHeader header_;
  std::vector<uint8_t> bytes_;
  std::vector<int64_t> offsets_{0};
  std::vector<int32_t> labels_;
  std::vector<uint64_t> checksums_;  // record_checksum() of each record
  std::vector<std::string> keys_;
  bool finished_ = false;
};

}  // namespace convoy::datasets
