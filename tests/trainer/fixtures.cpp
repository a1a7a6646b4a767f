#include "tests/trainer/fixtures.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "datasets/idx.h"

namespace convoy::test {
namespace fs = std::filesystem;

namespace {
const char* kFashion = "/usr/share/datasets/fashion-mnist";

void write_idx(const std::string& path, const std::vector<uint8_t>& data, std::vector<int32_t> dims) {
  std::ofstream out(path, std::ios::binary);
  const unsigned char magic[4] = {0, 0, 0x08, static_cast<unsigned char>(dims.size())};
  out.write(reinterpret_cast<const char*>(magic), 4);
  for (int32_t d : dims) {
    unsigned char be[4] = {static_cast<unsigned char>(d >> 24), static_cast<unsigned char>(d >> 16),
                           static_cast<unsigned char>(d >> 8), static_cast<unsigned char>(d)};
    out.write(reinterpret_cast<const char*>(be), 4);
  }
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

void convert(const std::string& dir, const std::string& images, const std::string& labels, const std::string& split,
             int n) {
  datasets::IdxImages im = datasets::read_idx_images(std::string(kFashion) + "/" + images);
  std::vector<uint8_t> lab = datasets::read_idx_labels(std::string(kFashion) + "/" + labels);
  const size_t per = static_cast<size_t>(im.height * im.width * im.channels);
  std::vector<uint8_t> px(im.pixels.begin(), im.pixels.begin() + static_cast<std::ptrdiff_t>(per * n));
  std::vector<uint8_t> lb(lab.begin(), lab.begin() + n);
  const std::string ip = dir + "/" + split + "-images.idx", lp = dir + "/" + split + "-labels.idx";
  write_idx(ip, px, {n, static_cast<int32_t>(im.height), static_cast<int32_t>(im.width)});
  write_idx(lp, lb, {n});
  datasets::IdxOptions o;
  o.images = ip, o.labels = lp, o.out = dir + "/shards", o.split = split, o.shard_size = 200;
  datasets::convert_idx(o, datasets::single_process_comm());
}
}  // namespace

std::string temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("convoy-test-" + std::to_string(getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string fashion_subset(int n_train, int n_val) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  const std::string dir = (fs::temp_directory_path() / ("convoy-test-" + std::to_string(getpid())) /
                           ("fashion-" + std::to_string(n_train) + "-" + std::to_string(n_val)))
                              .string();
  if (!fs::exists(dir + "/shards/index.json")) {
    fs::create_directories(dir);
    convert(dir, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "train", n_train);
    convert(dir, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "val", n_val);
  }
  return dir + "/shards";
}

std::string small_config(const std::string& data_dir, const std::string& train_extra) {
  return "model:\n  name: lenet5\n"
         "data:\n  dir: " + data_dir + "\n  threads: 1\n  prefetch: 2\n"
         "train:\n  epochs: 2\n  batch_size: 32\n  base_lr: 0.4\n  warmup_epochs: 0.5\n  schedule: cosine\n"
         "  weight_decay: 1.0e-4\n  no_bias_decay: true\n  seed: 3\n  threads: 1\n" + train_extra +
         "checkpoint:\n  every_epochs: 1\n  keep: 5\n"
         "log:\n  interval: 5\n";
}

}  // namespace convoy::test
