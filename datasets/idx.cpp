#include "datasets/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "common/error.h"
#include "datasets/shard_writer.h"

namespace convoy::datasets {
namespace {

// The whole file, gunzipped if it is gzip (zlib reads plain files through the same calls).
std::vector<uint8_t> read_maybe_gzipped(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  CONVOY_CHECK(f != nullptr, "Cannot open " << path << ".");
  std::vector<uint8_t> data;
  std::vector<uint8_t> chunk(1 << 20);
  while (true) {
    const int n = gzread(f, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int code = 0;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      CONVOY_FAIL("Cannot read " << path << ": " << msg << "; is the download complete?");
    }
    if (n == 0) break;
    data.insert(data.end(), chunk.begin(), chunk.begin() + n);
  }
  gzclose(f);
  return data;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// Parses the IDX header: magic 0 0 0x08 (unsigned byte) ndims, then ndims big-endian sizes.
std::vector<int64_t> idx_dims(const std::vector<uint8_t>& data, const std::string& path) {
  CONVOY_CHECK(data.size() >= 4 && data[0] == 0 && data[1] == 0,
               path << " is not an IDX file (it does not start with the IDX magic number).");
  CONVOY_CHECK(data[2] == 0x08, path << " holds IDX element type 0x" << std::hex << int{data[2]}
                                     << "; convoy converts unsigned-byte (0x08) IDX files.");
  const size_t ndims = data[3];
  CONVOY_CHECK(ndims >= 1 && data.size() >= 4 + 4 * ndims, path << " has a truncated IDX header.");
  std::vector<int64_t> dims;
  uint64_t total = 1;  // stops growing past the file's size, so it cannot overflow (found by fuzz_idx)
  for (size_t i = 0; i < ndims; ++i) {
    dims.push_back(be32(data.data() + 4 + 4 * i));
    const uint64_t d = static_cast<uint64_t>(dims.back()), cap = uint64_t{1} << 48;
    total = d != 0 && total > cap / d ? cap : total * d;
  }
  const uint64_t expected = 4 + 4 * ndims + total;
  CONVOY_CHECK(data.size() == expected, path << " should hold " << expected << " bytes for its dimensions but holds "
                                             << data.size() << "; the file is truncated or damaged.");
  return dims;
}

}  // namespace

IdxImages read_idx_images(const std::string& path) {
  std::vector<uint8_t> data = read_maybe_gzipped(path);
  const std::vector<int64_t> dims = idx_dims(data, path);
  CONVOY_CHECK(dims.size() == 3 || dims.size() == 4,
               path << " has " << dims.size() << " dimensions; IDX images are [N, H, W] or [N, H, W, C].");
  IdxImages im;
  im.count = dims[0], im.height = dims[1], im.width = dims[2], im.channels = dims.size() == 4 ? dims[3] : 1;
  CONVOY_CHECK(im.count > 0 && im.height > 0 && im.width > 0 && im.channels > 0, path << " holds no images.");
  const size_t header = 4 + 4 * dims.size();
  im.pixels.assign(data.begin() + static_cast<std::ptrdiff_t>(header), data.end());
  return im;
}

std::vector<uint8_t> read_idx_labels(const std::string& path) {
  std::vector<uint8_t> data = read_maybe_gzipped(path);
  const std::vector<int64_t> dims = idx_dims(data, path);
  CONVOY_CHECK(dims.size() == 1, path << " has " << dims.size() << " dimensions; IDX labels are [N].");
  return {data.begin() + 8, data.end()};
}

ConvertSummary convert_idx(const IdxOptions& o, const ConvertComm& comm) {
  check_split_name(o.split);
  CONVOY_CHECK(o.shard_size > 0, "--shard-size must be positive, got " << o.shard_size << ".");
  // Every rank reads both files (they are small) and so computes the same statistics and plan.
  IdxImages im = read_idx_images(o.images);
  std::vector<uint8_t> labels = read_idx_labels(o.labels);
  CONVOY_CHECK(static_cast<int64_t>(labels.size()) == im.count,
               o.images << " holds " << im.count << " images but " << o.labels << " holds " << labels.size()
                        << " labels; pass the matching pair of files.");
  const int64_t offset = o.first;  // records keep their index in the files in their keys
  if (o.first != 0 || o.count >= 0) {
    CONVOY_CHECK(o.first >= 0 && o.first < im.count && o.count != 0 && o.count >= -1 &&
                     (o.count < 0 || o.count <= im.count - o.first),
                 "--first " << o.first << " --count " << o.count << " is not a non-empty part of the "
                            << im.count << " records in " << o.images);
    const int64_t n = o.count < 0 ? im.count - o.first : o.count;
    const int64_t record = im.height * im.width * im.channels;
    im.pixels.erase(im.pixels.begin() + (o.first + n) * record, im.pixels.end());
    im.pixels.erase(im.pixels.begin(), im.pixels.begin() + o.first * record);
    labels.erase(labels.begin() + o.first + n, labels.end());
    labels.erase(labels.begin(), labels.begin() + o.first);
    im.count = n;
  }
  std::vector<std::string> classes = existing_classes(o.out, Encoding::raw);
  const int max_label = *std::max_element(labels.begin(), labels.end());
  if (classes.empty())
    for (int i = 0; i <= max_label; ++i) classes.push_back(std::to_string(i));
  CONVOY_CHECK(max_label < static_cast<int>(classes.size()),
               o.labels << " has label " << max_label << " but the index.json already in " << o.out << " has "
                        << classes.size() << " classes; convert into a new folder.");

  SplitMeta meta;
  meta.encoding = Encoding::raw;
  meta.classes = classes;
  meta.shard_count = (im.count + o.shard_size - 1) / o.shard_size;
  meta.height = im.height, meta.width = im.width, meta.channels = im.channels;
  std::vector<double> sum(static_cast<size_t>(im.channels)), sq(static_cast<size_t>(im.channels));
  for (size_t i = 0; i < im.pixels.size(); ++i) {
    const double v = im.pixels[i];
    sum[i % static_cast<size_t>(im.channels)] += v;
    sq[i % static_cast<size_t>(im.channels)] += v * v;
  }
  const double per_channel = static_cast<double>(im.pixels.size()) / static_cast<double>(im.channels);
  for (int64_t c = 0; c < im.channels; ++c) {
    const double mean = sum[static_cast<size_t>(c)] / per_channel;
    meta.mean.push_back(mean);
    meta.std.push_back(std::sqrt(std::max(0.0, sq[static_cast<size_t>(c)] / per_channel - mean * mean)));
  }
  if (comm.rank == 0) std::filesystem::create_directories(o.out);

  const std::string source = std::filesystem::path(o.images).filename().string();
  return run_conversion(o.out, o.split, meta, comm, [&](ConvertResult& result) {
    std::filesystem::create_directories(o.out);
    const int64_t record = im.height * im.width * im.channels;
    for (int64_t shard = comm.rank; shard < meta.shard_count; shard += comm.size) {
      ShardHeader header;
      header.split = o.split;
      header.num_classes = static_cast<int64_t>(classes.size());
      header.encoding = Encoding::raw;
      header.height = im.height, header.width = im.width, header.channels = im.channels;
      header.mean = meta.mean, header.std = meta.std;
      ShardWriter writer(o.out, shard_file_name(o.split, shard, meta.shard_count), header);
      const int64_t first = shard * o.shard_size, last = std::min(im.count, first + o.shard_size);
      for (int64_t i = first; i < last; ++i)
        writer.add_raw(im.pixels.data() + i * record, labels[static_cast<size_t>(i)], source + "#" + std::to_string(offset + i));
      result.sources += last - first;
      result.shards.emplace_back(shard, writer.finish());
    }
  });
}

}  // namespace convoy::datasets
