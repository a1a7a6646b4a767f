#include "test_util.h"

#include <fcntl.h>
#include <hdf5.h>
#include <turbojpeg.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace convoy::datasets::testing {

TempDir::TempDir() {
  char tmpl[] = "/tmp/convoy-datasets-test-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<uint8_t> make_rgb(int width, int height, uint32_t seed) {
  std::vector<uint8_t> p(static_cast<size_t>(width) * height * 3);
  uint32_t s = seed * 2654435761u + 12345u;
  auto rnd = [&s] {
    s ^= s << 13, s ^= s >> 17, s ^= s << 5;
    return s;
  };
  const float cx[3] = {static_cast<float>(rnd() % width), static_cast<float>(rnd() % width),
                       static_cast<float>(rnd() % width)};
  const float cy[3] = {static_cast<float>(rnd() % height), static_cast<float>(rnd() % height),
                       static_cast<float>(rnd() % height)};
  const float r[3] = {width / 6.f + rnd() % 20, width / 8.f + rnd() % 20, width / 10.f + rnd() % 20};
  const float phase = static_cast<float>(rnd() % 100) / 10.f;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      float v[3] = {60.f + 120.f * x / width, 40.f + 150.f * y / height,
                    128.f + 60.f * std::sin(phase + 0.05f * (x + y))};
      for (int k = 0; k < 3; ++k) {
        const float dx = x - cx[k], dy = y - cy[k];
        if (dx * dx + dy * dy < r[k] * r[k]) v[k] = 230.f - 40.f * k, v[(k + 1) % 3] *= 0.5f;
      }
      for (int c = 0; c < 3; ++c) {
        const float noise = static_cast<float>(rnd() % 9) - 4.f;
        p[(static_cast<size_t>(y) * width + x) * 3 + c] =
            static_cast<uint8_t>(std::fmin(255.f, std::fmax(0.f, v[c] + noise)));
      }
    }
  return p;
}

std::vector<uint8_t> encode_jpeg(const std::vector<uint8_t>& pixels, int width, int height, int channels, int quality,
                                 bool progressive, bool subsample) {
  tjhandle h = tjInitCompress();
  const int format = channels == 1 ? TJPF_GRAY : channels == 4 ? TJPF_CMYK : TJPF_RGB;
  const int samp = channels == 1 ? TJSAMP_GRAY : subsample ? TJSAMP_420 : TJSAMP_444;
  unsigned char* out = nullptr;
  unsigned long size = 0;
  const int flags = progressive ? TJFLAG_PROGRESSIVE : 0;
  if (tjCompress2(h, pixels.data(), width, 0, height, format, &out, &size, samp, quality, flags) != 0) {
    const std::string msg = tjGetErrorStr2(h);
    tjDestroy(h);
    throw std::runtime_error("tjCompress2: " + msg);
  }
  std::vector<uint8_t> jpeg(out, out + size);
  tjFree(out);
  tjDestroy(h);
  return jpeg;
}

std::vector<uint8_t> make_jpeg(int width, int height, uint32_t seed, JpegKind kind) {
  const std::vector<uint8_t> rgb = make_rgb(width, height, seed);
  switch (kind) {
    case JpegKind::rgb420: return encode_jpeg(rgb, width, height, 3);
    case JpegKind::rgb444: return encode_jpeg(rgb, width, height, 3, 90, false, false);
    case JpegKind::progressive: return encode_jpeg(rgb, width, height, 3, 90, true);
    case JpegKind::gray: {
      std::vector<uint8_t> g(static_cast<size_t>(width) * height);
      for (size_t i = 0; i < g.size(); ++i)
        g[i] = static_cast<uint8_t>((299 * rgb[3 * i] + 587 * rgb[3 * i + 1] + 114 * rgb[3 * i + 2]) / 1000);
      return encode_jpeg(g, width, height, 1);
    }
    case JpegKind::cmyk: {
      // Adobe-style inverted CMYK with no black ink: stored (c, m, y, k) = (R, G, B, 255).
      std::vector<uint8_t> c(static_cast<size_t>(width) * height * 4);
      for (size_t i = 0; i < c.size() / 4; ++i) {
        c[4 * i] = rgb[3 * i], c[4 * i + 1] = rgb[3 * i + 1], c[4 * i + 2] = rgb[3 * i + 2], c[4 * i + 3] = 255;
      }
      return encode_jpeg(c, width, height, 4, 90, false, false);
    }
  }
  return {};
}

namespace {
hid_t open_rw(const std::string& shard) {
  const hid_t f = H5Fopen(shard.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) throw std::runtime_error("cannot open " + shard + " for writing");
  return f;
}
}  // namespace

void damage_images(const std::string& shard, int64_t at, int64_t count) {
  const hid_t f = H5Fopen(shard.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, "images", H5P_DEFAULT);
  const haddr_t offset = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  if (offset == HADDR_UNDEF) throw std::runtime_error(shard + ": `images` has no offset");
  const int fd = ::open(shard.c_str(), O_RDWR);
  std::vector<uint8_t> bytes(static_cast<size_t>(count));
  const off_t where = static_cast<off_t>(offset) + at;
  if (fd < 0 || ::pread(fd, bytes.data(), bytes.size(), where) != count) throw std::runtime_error("cannot read " + shard);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(~b);
  if (::pwrite(fd, bytes.data(), bytes.size(), where) != count) throw std::runtime_error("cannot write " + shard);
  ::close(fd);
}

void rewrite_label(const std::string& shard, int64_t record, int32_t label) {
  const hid_t f = open_rw(shard);
  const hid_t d = H5Dopen2(f, "labels", H5P_DEFAULT);
  const hid_t space = H5Dget_space(d);
  const hsize_t start = static_cast<hsize_t>(record), one = 1;
  H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nullptr, &one, nullptr);
  const hid_t mem = H5Screate_simple(1, &one, nullptr);
  const herr_t status = H5Dwrite(d, H5T_NATIVE_INT32, mem, space, H5P_DEFAULT, &label);
  H5Sclose(mem), H5Sclose(space), H5Dclose(d), H5Fclose(f);
  if (status < 0) throw std::runtime_error("cannot rewrite a label of " + shard);
}

void make_version_1(const std::string& shard) {
  const hid_t f = open_rw(shard);
  const int64_t one = 1;
  const hid_t a = H5Aopen(f, "version", H5P_DEFAULT);
  const herr_t status = std::min(H5Awrite(a, H5T_NATIVE_INT64, &one), H5Ldelete(f, "checksums", H5P_DEFAULT));
  H5Aclose(a), H5Fclose(f);
  if (status < 0) throw std::runtime_error("cannot make " + shard + " version 1");
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

namespace {

void put_be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

void write_maybe_gz(const std::string& path, const std::vector<uint8_t>& data, bool gzip) {
  if (!gzip) return write_file(path, data);
  gzFile f = gzopen(path.c_str(), "wb");
  if (!f || gzwrite(f, data.data(), static_cast<unsigned>(data.size())) != static_cast<int>(data.size()))
    throw std::runtime_error("cannot write " + path);
  gzclose(f);
}

}  // namespace

void write_idx_images(const std::string& path, const std::vector<uint8_t>& pixels, int count, int height, int width,
                      bool gzip) {
  std::vector<uint8_t> d = {0, 0, 0x08, 3};
  put_be32(d, static_cast<uint32_t>(count));
  put_be32(d, static_cast<uint32_t>(height));
  put_be32(d, static_cast<uint32_t>(width));
  d.insert(d.end(), pixels.begin(), pixels.end());
  write_maybe_gz(path, d, gzip);
}

void write_idx_labels(const std::string& path, const std::vector<uint8_t>& labels, bool gzip) {
  std::vector<uint8_t> d = {0, 0, 0x08, 1};
  put_be32(d, static_cast<uint32_t>(labels.size()));
  d.insert(d.end(), labels.begin(), labels.end());
  write_maybe_gz(path, d, gzip);
}

int run(const std::string& command, std::string* output) {
  FILE* p = popen(command.c_str(), "r");
  if (!p) return -1;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string source_dir() { return CONVOY_SOURCE_DIR; }

}  // namespace convoy::datasets::testing
