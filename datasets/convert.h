// What the converters share: how ranks talk (passed in, so the library needs no MPI), what each rank
// reports, and the last step on rank 0 that turns the ranks' shards into index.json.
//
// A conversion on R ranks: every rank computes the same plan (sorted sources, shard count); shard i is
// written by rank i % R; every rank sends its ConvertResult to rank 0 (also when it failed, so nobody
// waits forever); rank 0 writes index.json (the only file readers go by) and broadcasts the outcome, so
// every rank returns or throws alike.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "datasets/index.h"

namespace convoy::datasets {

struct ConvertComm {
  int rank = 0, size = 1;
  // Collect one string from every rank on rank 0 (in rank order); other ranks get an empty vector.
  std::function<std::vector<std::string>(const std::string&)> gather;
  // Rank 0's string, on every rank.
  std::function<std::string(const std::string&)> broadcast;
};
// One process, no MPI.
ConvertComm single_process_comm();

struct ConvertResult {
  std::vector<std::pair<int64_t, ShardEntry>> shards;  // shard number, entry
  std::vector<SkippedFile> skipped;
  int64_t sources = 0;  // source records this rank looked at
  std::string error;    // non-empty if this rank failed
};
std::string serialize(const ConvertResult& r);
ConvertResult parse_convert_result(const std::string& s);

// What index.json should say about the converted split besides its shards.
struct SplitMeta {
  Encoding encoding = Encoding::jpeg;
  std::vector<std::string> classes;
  int64_t shard_count = 0;
  int64_t height = 0, width = 0, channels = 0;  // raw
  std::vector<double> mean, std;                 // raw
};

// Summary of a finished conversion (every rank gets the same).
struct ConvertSummary {
  std::string split;
  int64_t records = 0, shards = 0, sources = 0;
  std::vector<SkippedFile> skipped;
};

// Runs `convert_my_shards` on this rank, then the gather / index / broadcast protocol above.
// convert_my_shards records every shard as soon as it is written, so that if it throws, the shards it
// did write are known and removed.
ConvertSummary run_conversion(const std::string& out_dir, const std::string& split, const SplitMeta& meta,
                              const ConvertComm& comm, const std::function<void(ConvertResult&)>& convert_my_shards);

// The classes an existing index.json in `out_dir` fixes (empty if there is none). Throws if that index
// holds another encoding (converting jpeg into a raw dataset's folder, or the reverse).
std::vector<std::string> existing_classes(const std::string& out_dir, Encoding encoding);

}  // namespace convoy::datasets
