#include "datasets/shard_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include <xxhash.h>

#include "common/error.h"
#include "datasets/h5.h"

namespace convoy::datasets {
namespace {

constexpr const char* kRedo = "the shard is damaged: convert the data again";

ShardHeader read_header(hid_t root, const std::string& path, int64_t& version) {
  const std::string format = h5::read_string_attribute(root, "format", path);
  CONVOY_CHECK(format == kShardFormat,
               path << " is not a convoy shard (attribute format = \"" << format << "\", expected \"" << kShardFormat
                    << "\").");
  version = h5::read_int_attribute(root, "version", path);
  CONVOY_CHECK(version >= kOldestShardVersion && version <= kShardVersion,
               path << " is shard format version " << version << "; this convoy reads versions " << kOldestShardVersion
                    << " to " << kShardVersion << ": convert the data again or update convoy.");
  ShardHeader h;
  h.split = h5::read_string_attribute(root, "split", path);
  h.num_classes = h5::read_int_attribute(root, "num_classes", path);
  h.encoding = parse_encoding(h5::read_string_attribute(root, "encoding", path), path);
  CONVOY_CHECK(h.num_classes > 0, path << " has num_classes = " << h.num_classes << "; " << kRedo << ".");
  if (h.encoding == Encoding::raw) {
    h.height = h5::read_int_attribute(root, "height", path);
    h.width = h5::read_int_attribute(root, "width", path);
    h.channels = h5::read_int_attribute(root, "channels", path);
    h.mean = h5::read_double_array_attribute(root, "mean", path);
    h.std = h5::read_double_array_attribute(root, "std", path);
    CONVOY_CHECK(h.height > 0 && h.width > 0 && h.channels > 0 && h.height * h.width * h.channels < (1 << 30),
                 path << " has an invalid raw image shape " << h.height << "x" << h.width << "x" << h.channels << "; "
                      << kRedo << ".");
    CONVOY_CHECK(static_cast<int64_t>(h.mean.size()) == h.channels && static_cast<int64_t>(h.std.size()) == h.channels,
                 path << " needs one mean and std per channel; " << kRedo << ".");
  }
  return h;
}

}  // namespace

uint64_t record_checksum(const uint8_t* data, size_t bytes, int32_t label) {
  return XXH3_64bits_withSeed(data, bytes, static_cast<uint64_t>(static_cast<uint32_t>(label)));
}

ShardReader::ShardReader(std::string path) : path_(std::move(path)) {
  // The file comes from outside: HDF5 reads it in a child process (h5::contain), which sends the tables.
  h5::Bytes got(h5::contain(path_, [this] {
    read_tables();
    h5::Bytes b;
    b.put(version_), b.put(header_.split), b.put(header_.num_classes), b.put(header_.encoding);
    b.put(header_.height), b.put(header_.width), b.put(header_.channels), b.put(header_.mean), b.put(header_.std);
    b.put(labels_), b.put(offsets_), b.put(checksums_), b.put(record_size_), b.put(blob_offset_), b.put(blob_bytes_);
    return b.take();
  }));
  got.get(version_), got.get(header_.split), got.get(header_.num_classes), got.get(header_.encoding);
  got.get(header_.height), got.get(header_.width), got.get(header_.channels), got.get(header_.mean), got.get(header_.std);
  got.get(labels_), got.get(offsets_), got.get(checksums_), got.get(record_size_), got.get(blob_offset_), got.get(blob_bytes_);
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  CONVOY_CHECK(fd_ >= 0, "Cannot open " << path_ << ": " << std::strerror(errno)
                                        << (errno == EMFILE ? " (raise the open-file limit with `ulimit -n`)" : "")
                                        << ".");
  struct stat st {};
  ::fstat(fd_, &st);
  CONVOY_CHECK(blob_offset_ + blob_bytes_ <= st.st_size,
               path_ << " is truncated: `images` ends at byte " << blob_offset_ + blob_bytes_ << " but the file has "
                     << st.st_size << " bytes; copy the shard again.");
}

void ShardReader::read_tables() {
  h5::Handle file = h5::open_file_readonly(path_);
  const hid_t root = file.get();
  header_ = read_header(root, path_, version_);

  const auto label_dims = h5::dataset_dims(root, "labels", path_);
  CONVOY_CHECK(label_dims.size() == 1, path_ << ": `labels` must be 1-D; " << kRedo << ".");
  const int64_t n = static_cast<int64_t>(label_dims[0]);
  const auto key_dims = h5::dataset_dims(root, "keys", path_);
  CONVOY_CHECK(key_dims.size() == 1 && static_cast<int64_t>(key_dims[0]) == n,
               path_ << ": `keys` must be 1-D with one entry per record (" << n << "); " << kRedo << ".");
  labels_.resize(static_cast<size_t>(n));
  h5::read_dataset(root, "labels", H5T_NATIVE_INT32, labels_.data(), path_);
  if (version_ >= 2) {
    const auto sum_dims = h5::dataset_dims(root, "checksums", path_);
    CONVOY_CHECK(sum_dims.size() == 1 && static_cast<int64_t>(sum_dims[0]) == n,
                 path_ << ": `checksums` must be 1-D with one entry per record (" << n << "); " << kRedo << ".");
    checksums_.resize(static_cast<size_t>(n));
    h5::read_dataset(root, "checksums", H5T_NATIVE_UINT64, checksums_.data(), path_);
  }

  const auto image_dims = h5::dataset_dims(root, "images", path_);
  hsize_t blob_elems = 1;
  for (hsize_t d : image_dims) blob_elems *= d;
  blob_bytes_ = static_cast<int64_t>(blob_elems);
  if (header_.encoding == Encoding::jpeg) {
    CONVOY_CHECK(image_dims.size() == 1, path_ << ": `images` of a jpeg shard must be a 1-D byte blob; " << kRedo << ".");
    const auto offset_dims = h5::dataset_dims(root, "offsets", path_);
    CONVOY_CHECK(offset_dims.size() == 1 && static_cast<int64_t>(offset_dims[0]) == n + 1,
                 path_ << ": `offsets` must have " << n + 1 << " entries (records + 1), it has "
                       << (offset_dims.empty() ? 0 : offset_dims[0]) << "; " << kRedo << ".");
    offsets_.resize(static_cast<size_t>(n + 1));
    h5::read_dataset(root, "offsets", H5T_NATIVE_INT64, offsets_.data(), path_);
    CONVOY_CHECK(offsets_[0] == 0, path_ << ": offsets[0] = " << offsets_[0] << ", expected 0; " << kRedo << ".");
    for (int64_t i = 0; i < n; ++i) {
      const int64_t a = offsets_[static_cast<size_t>(i)], b = offsets_[static_cast<size_t>(i + 1)];
      CONVOY_CHECK(b > a, "Shard " << path_ << ", record " << i << ": offsets are not increasing (offsets[" << i
                                   << "] = " << a << ", offsets[" << i + 1 << "] = " << b << "); " << kRedo << ".");
      CONVOY_CHECK(b <= blob_bytes_, "Shard " << path_ << ", record " << i << " ends at byte " << b
                                              << ", past the end of `images` (" << blob_bytes_ << " bytes); " << kRedo
                                              << ".");
    }
    CONVOY_CHECK(offsets_[static_cast<size_t>(n)] == blob_bytes_,
                 path_ << ": the records end at byte " << offsets_[static_cast<size_t>(n)] << " but `images` has "
                       << blob_bytes_ << " bytes; " << kRedo << ".");
  } else {
    CONVOY_CHECK(image_dims.size() == 4 && static_cast<int64_t>(image_dims[0]) == n &&
                     static_cast<int64_t>(image_dims[1]) == header_.height &&
                     static_cast<int64_t>(image_dims[2]) == header_.width &&
                     static_cast<int64_t>(image_dims[3]) == header_.channels,
                 path_ << ": `images` must be uint8 [" << n << ", " << header_.height << ", " << header_.width << ", "
                       << header_.channels << "] as the attributes say; " << kRedo << ".");
    record_size_ = header_.height * header_.width * header_.channels;
  }
  for (int64_t i = 0; i < n; ++i) {
    const int32_t l = labels_[static_cast<size_t>(i)];
    if (l < 0 || l >= header_.num_classes)
      CONVOY_FAIL("Shard " << path_ << ", record " << i << " (key " << key(i) << ") has label " << l
                           << ", outside [0, num_classes = " << header_.num_classes << "); " << kRedo << ".");
  }

  // The blob must be one contiguous, unfiltered extent of bytes so that pread() can fetch records.
  h5::Handle images = h5::open_dataset(root, "images", path_);
  h5::Handle type(H5Dget_type(images.get()));
  CONVOY_CHECK(H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == 1,
               path_ << ": `images` must hold bytes (uint8); " << kRedo << ".");
  h5::Handle dcpl(H5Dget_create_plist(images.get()));
  CONVOY_CHECK(H5Pget_layout(dcpl.get()) == H5D_CONTIGUOUS && H5Pget_nfilters(dcpl.get()) == 0,
               path_ << ": `images` is chunked or compressed; convoy reads contiguous, uncompressed shards: convert "
                        "the data with `convoy convert`.");
  if (blob_bytes_ > 0) {
    const haddr_t offset = H5Dget_offset(images.get());
    CONVOY_CHECK(offset != HADDR_UNDEF, path_ << ": `images` has no storage in the file; " << kRedo << ".");
    blob_offset_ = static_cast<int64_t>(offset);
  }
}

ShardReader::~ShardReader() {
  if (fd_ >= 0) ::close(fd_);
}

int64_t ShardReader::record_bytes(int64_t i) const {
  if (header_.encoding == Encoding::raw) return record_size_;
  return offsets_[static_cast<size_t>(i + 1)] - offsets_[static_cast<size_t>(i)];
}

void ShardReader::read(int64_t i, uint8_t* out) const {
  if (!read_checked(i, out)) CONVOY_FAIL(mismatch(i, out));
}

bool ShardReader::intact(int64_t i, const uint8_t* data) const {
  return checksums_.empty() ||
         record_checksum(data, static_cast<size_t>(record_bytes(i)), label(i)) == checksums_[static_cast<size_t>(i)];
}

std::string ShardReader::mismatch(int64_t i, const uint8_t* data) const {
  std::ostringstream os;
  os << std::hex << "Shard " << path_ << ", record " << std::dec << i << " (key " << key(i) << ", label " << label(i)
     << ") is damaged: its checksum is " << std::hex << checksums_[static_cast<size_t>(i)] << " but its bytes give "
     << record_checksum(data, static_cast<size_t>(record_bytes(i)), label(i))
     << "; copy or convert the shard again, or set data.on_error: skip to train without it";
  return os.str();
}

bool ShardReader::read_checked(int64_t i, uint8_t* out) const {
  CONVOY_CHECK(i >= 0 && i < size(), "Record " << i << " is outside shard " << path_ << " (" << size() << " records).");
  const int64_t start = header_.encoding == Encoding::raw ? i * record_size_ : offsets_[static_cast<size_t>(i)];
  const int64_t bytes = record_bytes(i);
  int64_t done = 0;
  while (done < bytes) {
    const ssize_t r = ::pread(fd_, out + done, static_cast<size_t>(bytes - done), blob_offset_ + start + done);
    if (r < 0 && errno == EINTR) continue;
    CONVOY_CHECK(r > 0, "Cannot read " << where(i) << ": "
                                       << (r == 0 ? std::string("unexpected end of file") : std::strerror(errno))
                                       << "; the shard may have been truncated or removed.");
    done += r;
  }
  return intact(i, out);
}

std::string ShardReader::key(int64_t i) const {
  if (keys_unreadable_.load()) return "unreadable";
  try {  // for messages only: a process per call costs nothing that matters
    return h5::contain(path_, [&] {
      h5::Handle file = h5::open_file_readonly(path_);
      return h5::read_string_element(file.get(), "keys", static_cast<hsize_t>(i), path_);
    });
  } catch (const Error&) {
    keys_unreadable_.store(true);  // one wait for a key that HDF5 cannot read, not one per message
    return "unreadable";
  }
}

std::string ShardReader::where(int64_t i) const {
  return "shard " + path_ + ", record " + std::to_string(i) + " (key " + key(i) + ")";
}

}  // namespace convoy::datasets
