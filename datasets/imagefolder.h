// `convoy convert imagefolder`: JPEG files -> jpeg shards, bytes kept exactly as they were.
// Sources: the ImageNet layout ROOT/<class>/<file> (classes = sub-folder names, sorted) or, with a
// labels CSV, files listed as `file,label` (paths relative to ROOT; label = a class name or an integer
// index). If the output folder already has an index.json (e.g. train converted before val), its class
// list is kept and every class must be in it. Every file is decoded to check it; an empty, corrupt or
// non-JPEG file is skipped and listed (with strict, it is an error).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "datasets/convert.h"

namespace convoy::datasets {

struct ImageFolderOptions {
  std::string root, out;
  std::string split = "train";
  std::string labels_csv;    // empty: class sub-folders
  int64_t shard_size = 1024; // records per shard (before skipping bad files)
  int threads = 0;           // file check threads per rank; 0 = all cores
  bool strict = false;
};

// The sources in shard order, the same on every rank.
struct ImageFolderPlan {
  std::vector<std::string> classes;
  std::vector<std::pair<std::string, int32_t>> files;  // path relative to root, label
  int64_t shard_count = 0;
};
ImageFolderPlan plan_imagefolder(const ImageFolderOptions& options);

// Writes this rank's shards (shard i where i % comm.size == comm.rank), then index.json on rank 0.
ConvertSummary convert_imagefolder(const ImageFolderOptions& options, const ConvertComm& comm);

}  // namespace convoy::datasets
