// Reads one shard. Opening checks everything a reader relies on (attributes, datasets and their shapes,
// offsets, labels, that `images` is contiguous and inside the file) and reads the small per-record
// tables; after that, records are read with pread() at the blob's file offset: no HDF5 call (and so no
// HDF5 global lock) on the per-sample path, and any number of threads may read at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/shard_format.h"

namespace convoy::datasets {

class ShardReader {
 public:
  // Throws convoy::Error naming the file (and the record, where one is at fault) on any inconsistency.
  explicit ShardReader(std::string path);
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  const std::string& path() const { return path_; }
  const ShardHeader& header() const { return header_; }
  Encoding encoding() const { return header_.encoding; }
  int64_t size() const { return static_cast<int64_t>(labels_.size()); }
  int32_t label(int64_t i) const { return labels_[static_cast<size_t>(i)]; }
  const std::vector<int32_t>& labels() const { return labels_; }

  // Bytes of record i: the JPEG file's size, or height * width * channels for raw.
  int64_t record_bytes(int64_t i) const;
  // Copies record i into out[0, record_bytes(i)) and checks it against its checksum (version 2), throwing
  // convoy::Error naming the shard, the record and its key on a mismatch. Thread-safe; no HDF5 call.
  void read(int64_t i, uint8_t* out) const;
  // The same, but a mismatch returns false (for data.on_error: skip); I/O errors still throw.
  bool read_checked(int64_t i, uint8_t* out) const;
  // Whether data (record i's bytes) matches record i's checksum; true for version 1 (no checksums).
  bool intact(int64_t i, const uint8_t* data) const;
  // The sentence for a record whose bytes `data` do not match its checksum.
  std::string mismatch(int64_t i, const uint8_t* data) const;
  int64_t version() const { return version_; }
  bool checksummed() const { return version_ >= 2; }

  // Source name of record i (read from the file on demand: for messages and inspection, not hot paths).
  std::string key(int64_t i) const;
  // "shard PATH, record I (key K)" for error messages.
  std::string where(int64_t i) const;

 private:
  void read_tables();  // every HDF5 read of the constructor
  std::string path_;
  ShardHeader header_;
  std::vector<int32_t> labels_;
  std::vector<int64_t> offsets_;  // jpeg: [N + 1]
  std::vector<uint64_t> checksums_;  // version 2: record_checksum() of each record; version 1: empty
  int64_t version_ = 0;
  mutable std::atomic<bool> keys_unreadable_{false};
  int64_t record_size_ = 0;       // raw: bytes per record
  int64_t blob_offset_ = 0;       // file offset of `images`
  int64_t blob_bytes_ = 0;
  int fd_ = -1;
};

}  // namespace convoy::datasets
