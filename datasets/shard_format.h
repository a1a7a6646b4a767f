// Shard format v2 (docs/shard-format.md): one HDF5 file per shard, an index.json beside them.
//   root attributes: format = "convoy-shard", version = 2, split, num_classes, encoding ("jpeg" | "raw");
//                    raw only: height, width, channels, mean[C], std[C] (0-255 units, over the split)
//   labels  int32 [N]          keys  variable-length UTF-8 strings [N] (the source of each record)
//   jpeg:   images uint8 [offsets[N]] (the JPEG files' bytes as they were), offsets int64 [N+1]
//   raw:    images uint8 [N, H, W, C]
//   checksums uint64 [N] (v2): XXH3-64 of record i's bytes with its label as the seed, so that damage to
//                              either is found when the record is read. Version 1 has no checksums.
// `images` is contiguous (unchunked, uncompressed), so it has one file offset and readers pread() it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace convoy::datasets {

inline constexpr const char* kShardFormat = "convoy-shard";
inline constexpr int64_t kShardVersion = 2;         // what convoy writes
inline constexpr int64_t kOldestShardVersion = 1;   // what it still reads (without per-record checks)
inline constexpr int64_t kIndexVersion = 1;
inline constexpr const char* kIndexFile = "index.json";

// The checksum of one record as the shard stores it (XXH3-64, seeded by the label).
uint64_t record_checksum(const uint8_t* data, size_t bytes, int32_t label);

enum class Encoding { jpeg, raw };

const char* encoding_name(Encoding e);
// Parses "jpeg" or "raw"; `where` names the file for the error message.
Encoding parse_encoding(const std::string& s, const std::string& where);

// "train-00003-of-00128.h5"
std::string shard_file_name(const std::string& split, int64_t index, int64_t count);

// What a shard's root attributes say about it.
struct ShardHeader {
  std::string split;
  int64_t num_classes = 0;
  Encoding encoding = Encoding::jpeg;
  int64_t height = 0, width = 0, channels = 0;  // raw only
  std::vector<double> mean, std;                 // raw only: per channel, 0-255 units
};

// Splits are named like files: letters, digits, '-', '_' (train, val, test, ...).
void check_split_name(const std::string& split);

}  // namespace convoy::datasets
