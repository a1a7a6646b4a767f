#include "datasets/shard_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "datasets/h5.h"
#include "datasets/sha256.h"
#include "datasets/shard_format.h"

namespace convoy::datasets {

ShardWriter::ShardWriter(std::string dir, std::string name, ShardHeader header)
    : dir_(std::move(dir)), name_(std::move(name)), header_(std::move(header)) {
  check_split_name(header_.split);
  CONVOY_CHECK(header_.num_classes > 0, "A shard needs num_classes > 0, got " << header_.num_classes << ".");
  if (header_.encoding == Encoding::raw)
    CONVOY_CHECK(header_.height > 0 && header_.width > 0 && header_.channels > 0 &&
                     static_cast<int64_t>(header_.mean.size()) == header_.channels &&
                     static_cast<int64_t>(header_.std.size()) == header_.channels,
                 "A raw shard needs a positive height, width and channels and one mean and std per channel.");
  // Hidden temporary name in the same folder (rename is atomic only within one file system).
  tmp_path_ = (std::filesystem::path(dir_) / ("." + name_ + ".tmp-" + std::to_string(::getpid()))).string();
}

ShardWriter::~ShardWriter() {
  if (!finished_) ::unlink(tmp_path_.c_str());
}

void ShardWriter::check_label(int32_t label, const std::string& key) const {
  CONVOY_CHECK(label >= 0 && label < header_.num_classes,
               "Record " << key << " has label " << label << ", outside [0, " << header_.num_classes << ").");
}

void ShardWriter::add_jpeg(const uint8_t* data, size_t bytes, int32_t label, std::string key) {
  CONVOY_CHECK(header_.encoding == Encoding::jpeg, "add_jpeg() on a raw shard.");
  CONVOY_CHECK(bytes > 0, "Record " << key << " is empty.");
  check_label(label, key);
  bytes_.insert(bytes_.end(), data, data + bytes);
  offsets_.push_back(static_cast<int64_t>(bytes_.size()));
  checksums_.push_back(record_checksum(data, bytes, label));
  labels_.push_back(label);
  keys_.push_back(std::move(key));
}

void ShardWriter::add_raw(const uint8_t* pixels, int32_t label, std::string key) {
  CONVOY_CHECK(header_.encoding == Encoding::raw, "add_raw() on a jpeg shard.");
  check_label(label, key);
  const size_t bytes = static_cast<size_t>(header_.height * header_.width * header_.channels);
  bytes_.insert(bytes_.end(), pixels, pixels + bytes);
  checksums_.push_back(record_checksum(pixels, bytes, label));
  labels_.push_back(label);
  keys_.push_back(std::move(key));
}

ShardEntry ShardWriter::finish() {
  CONVOY_CHECK(!finished_, "ShardWriter::finish() called twice for " << name_ << ".");
  const hsize_t n = labels_.size();
  {
    h5::Handle file = h5::create_file(tmp_path_);
    const hid_t root = file.get();
    h5::write_string_attribute(root, "format", kShardFormat);
    h5::write_int_attribute(root, "version", kShardVersion);
    h5::write_string_attribute(root, "split", header_.split);
    h5::write_int_attribute(root, "num_classes", header_.num_classes);
    h5::write_string_attribute(root, "encoding", encoding_name(header_.encoding));
    if (header_.encoding == Encoding::raw) {
      h5::write_int_attribute(root, "height", header_.height);
      h5::write_int_attribute(root, "width", header_.width);
      h5::write_int_attribute(root, "channels", header_.channels);
      h5::write_double_array_attribute(root, "mean", header_.mean);
      h5::write_double_array_attribute(root, "std", header_.std);
      h5::write_dataset(root, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8,
                        {n, static_cast<hsize_t>(header_.height), static_cast<hsize_t>(header_.width),
                         static_cast<hsize_t>(header_.channels)},
                        bytes_.data());
    } else {
      h5::write_dataset(root, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {bytes_.size()}, bytes_.data());
      h5::write_dataset(root, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, {n + 1}, offsets_.data());
    }
    h5::write_dataset(root, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {n}, labels_.data());
    h5::write_dataset(root, "checksums", H5T_STD_U64LE, H5T_NATIVE_UINT64, {n}, checksums_.data());
    h5::write_string_dataset(root, "keys", keys_);
    CONVOY_CHECK(H5Fflush(root, H5F_SCOPE_GLOBAL) >= 0, "Cannot flush " << tmp_path_ << "; is the disk full?");
  }
  // The file is closed; make it durable before it gets its final name.
  const int fd = ::open(tmp_path_.c_str(), O_RDONLY | O_CLOEXEC);
  CONVOY_CHECK(fd >= 0 && ::fsync(fd) == 0, "Cannot sync " << tmp_path_ << ": " << std::strerror(errno) << ".");
  struct stat st {};
  ::fstat(fd, &st);
  ::close(fd);
  ShardEntry entry{name_, static_cast<int64_t>(n), static_cast<int64_t>(st.st_size), sha256_file(tmp_path_)};
  const std::string final_path = (std::filesystem::path(dir_) / name_).string();
  CONVOY_CHECK(std::rename(tmp_path_.c_str(), final_path.c_str()) == 0,
               "Cannot rename " << tmp_path_ << " to " << final_path << ": " << std::strerror(errno) << ".");
  finished_ = true;
  bytes_ = {};
  return entry;
}

}  // namespace convoy::datasets
