#include "datasets/dataset.h"

#include <sys/resource.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"

namespace convoy::datasets {
namespace {

// Every shard keeps one file descriptor open; a large dataset can pass the usual soft limit of 1024.
void make_room_for_files(int64_t shards) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  const rlim_t want = static_cast<rlim_t>(shards) + 256;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

ShardedDataset::ShardedDataset(std::string dir, std::string split)
    : dir_(std::move(dir)), split_(std::move(split)), index_(read_index(dir_)) {
  const SplitIndex& s = index_.split(split_, dir_);
  make_room_for_files(static_cast<int64_t>(s.shards.size()));
  starts_.push_back(0);
  for (const ShardEntry& e : s.shards) {
    const std::string path = (std::filesystem::path(dir_) / e.name).string();
    CONVOY_CHECK(std::filesystem::exists(path), "Shard " << path << " is listed in " << dir_ << "/" << kIndexFile
                                                         << " but missing; copy or convert the data again.");
    auto reader = std::make_unique<ShardReader>(path);
    const ShardHeader& h = reader->header();
    CONVOY_CHECK(reader->size() == e.records, "Shard " << path << " has " << reader->size() << " records but "
                                                       << kIndexFile << " says " << e.records
                                                       << "; convert the data again.");
    CONVOY_CHECK(h.split == split_ && h.encoding == index_.encoding && h.num_classes == index_.num_classes(),
                 "Shard " << path << " (split " << h.split << ", " << encoding_name(h.encoding) << ", "
                          << h.num_classes << " classes) disagrees with " << kIndexFile << " (split " << split_ << ", "
                          << encoding_name(index_.encoding) << ", " << index_.num_classes()
                          << " classes); convert the data again.");
    if (index_.encoding == Encoding::raw)
      CONVOY_CHECK(h.height == s.height && h.width == s.width && h.channels == s.channels,
                   "Shard " << path << " holds " << h.height << "x" << h.width << "x" << h.channels << " images but "
                            << kIndexFile << " says " << s.height << "x" << s.width << "x" << s.channels << ".");
    if (!reader->checksummed()) ++unchecked_shards_;
    labels_.insert(labels_.end(), reader->labels().begin(), reader->labels().end());
    starts_.push_back(starts_.back() + reader->size());
    shards_.push_back(std::move(reader));
  }
  CONVOY_CHECK(size() > 0, "Split \"" << split_ << "\" of " << dir_ << " has no records.");
}

std::vector<int64_t> ShardedDataset::shard_sizes() const {
  std::vector<int64_t> v;
  for (const auto& s : shards_) v.push_back(s->size());
  return v;
}

ShardedDataset::Location ShardedDataset::locate(int64_t index) const {
  CONVOY_CHECK(index >= 0 && index < size(),
               "Record " << index << " is outside split \"" << split_ << "\" (" << size() << " records).");
  const auto it = std::upper_bound(starts_.begin(), starts_.end(), index);
  const int64_t shard = (it - starts_.begin()) - 1;
  return {shard, index - starts_[static_cast<size_t>(shard)]};
}

int64_t ShardedDataset::record_bytes(int64_t index) const {
  const Location l = locate(index);
  return shards_[static_cast<size_t>(l.shard)]->record_bytes(l.record);
}

void ShardedDataset::read(int64_t index, uint8_t* out) const {
  const Location l = locate(index);
  shards_[static_cast<size_t>(l.shard)]->read(l.record, out);
}

bool ShardedDataset::read_checked(int64_t index, uint8_t* out) const {
  const Location l = locate(index);
  return shards_[static_cast<size_t>(l.shard)]->read_checked(l.record, out);
}

std::string ShardedDataset::mismatch(int64_t index, const uint8_t* data) const {
  const Location l = locate(index);
  return shards_[static_cast<size_t>(l.shard)]->mismatch(l.record, data);
}

std::string ShardedDataset::unchecked_notice() const {
  if (unchecked_shards_ == 0) return "";
  return dir_ + " (split " + split_ + "): " + std::to_string(unchecked_shards_) + " of " +
         std::to_string(num_shards()) +
         " shards are format version 1, without per-record checksums: damage in them goes unnoticed; convert the "
         "data again for version 2";
}

std::string ShardedDataset::where(int64_t index) const {
  const Location l = locate(index);
  return shards_[static_cast<size_t>(l.shard)]->where(l.record);
}

}  // namespace convoy::datasets
