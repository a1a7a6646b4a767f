// Helpers for the dataset tests: a temporary folder, synthetic images, JPEG encoding with TurboJPEG,
// IDX files. Test inputs are generated here, never downloaded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace convoy::datasets::testing {

// A fresh folder under /tmp, removed (with its contents) when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A natural-looking test image: smooth gradients, a few discs and a little noise. (h, w, channels) RGB.
std::vector<uint8_t> make_rgb(int width, int height, uint32_t seed);

enum class JpegKind { rgb420, rgb444, gray, cmyk, progressive };
// Encodes make_rgb(width, height, seed) as a JPEG of the given kind (quality 90).
std::vector<uint8_t> make_jpeg(int width, int height, uint32_t seed, JpegKind kind = JpegKind::rgb420);
// Encodes the given pixels: channels 3 (RGB), 1 (gray) or 4 (CMYK as Adobe writes it, inverted).
std::vector<uint8_t> encode_jpeg(const std::vector<uint8_t>& pixels, int width, int height, int channels,
                                 int quality = 90, bool progressive = false, bool subsample = true);

void write_file(const std::string& path, const std::vector<uint8_t>& bytes);
// Damage after conversion, as a disk or a copy makes it: inverts `count` bytes of a shard's `images`
// starting at its byte `at`, in place (found with HDF5's H5Dget_offset, written with pwrite).
void damage_images(const std::string& shard, int64_t at, int64_t count);
// Rewrites label `record` of a shard to `label` (HDF5, in place).
void rewrite_label(const std::string& shard, int64_t record, int32_t label);
// Turns a version-2 shard into version 1: drops `checksums`, sets the version attribute to 1.
void make_version_1(const std::string& shard);
std::vector<uint8_t> read_file(const std::string& path);

// IDX files as MNIST ships them (optionally gzipped).
void write_idx_images(const std::string& path, const std::vector<uint8_t>& pixels, int count, int height, int width,
                      bool gzip);
void write_idx_labels(const std::string& path, const std::vector<uint8_t>& labels, bool gzip);

// Runs a shell command; returns its exit status and stdout.
int run(const std::string& command, std::string* output = nullptr);

// The source tree (for tools/ scripts).
std::string source_dir();

}  // namespace convoy::datasets::testing
