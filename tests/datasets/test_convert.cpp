// Converters -> reader round trips on generated JPEG folders and IDX files, and the h5py example.
#include <gtest/gtest.h>
#include <turbojpeg.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "datasets/dataset.h"
#include "datasets/idx.h"
#include "datasets/imagefolder.h"
#include "datasets/jpeg.h"
#include "datasets/sha256.h"
#include "test_util.h"

namespace convoy::datasets {
namespace {

using testing::JpegKind;
using testing::TempDir;

// An ImageNet-layout folder: 3 classes, JPEGs of several sizes and kinds; returns key -> bytes.
std::map<std::string, std::vector<uint8_t>> make_folder(const std::string& root) {
  std::map<std::string, std::vector<uint8_t>> files;
  const char* classes[] = {"n001", "n002", "n003"};
  const JpegKind kinds[] = {JpegKind::rgb420, JpegKind::rgb444, JpegKind::gray, JpegKind::cmyk, JpegKind::progressive};
  const int sizes[][2] = {{64, 48}, {33, 77}, {120, 90}, {17, 17}, {200, 150}};
  int n = 0;
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 5; ++i, ++n) {
      const std::string key = std::string(classes[c]) + "/" + classes[c] + "_" + std::to_string(i) + ".JPEG";
      files[key] = testing::make_jpeg(sizes[i][0], sizes[i][1], static_cast<uint32_t>(n), kinds[(i + c) % 5]);
      testing::write_file(root + "/" + key, files[key]);
    }
  return files;
}

void expect_matches(const ShardedDataset& data, const std::map<std::string, std::vector<uint8_t>>& files,
                    const std::vector<std::string>& classes) {
  ASSERT_EQ(data.size(), static_cast<int64_t>(files.size()));
  std::vector<uint8_t> got;
  for (int64_t i = 0; i < data.size(); ++i) {
    const auto loc = data.locate(i);
    const std::string key = data.shard(loc.shard).key(loc.record);
    ASSERT_TRUE(files.count(key)) << key;
    got.resize(static_cast<size_t>(data.record_bytes(i)));
    data.read(i, got.data());
    EXPECT_EQ(got, files.at(key)) << key;
    EXPECT_EQ(classes[static_cast<size_t>(data.label(i))], key.substr(0, key.find('/'))) << key;
  }
}

TEST(ConvertImageFolder, RoundTripSeveralSizesAndKinds) {
  TempDir tmp;
  const auto files = make_folder(tmp / "src");
  ImageFolderOptions o;
  o.root = tmp / "src";
  o.out = tmp / "out";
  o.shard_size = 4;
  o.threads = 2;
  const ConvertSummary s = convert_imagefolder(o, single_process_comm());
  EXPECT_EQ(s.records, 15);
  EXPECT_EQ(s.shards, 4);
  EXPECT_TRUE(s.skipped.empty());
  ShardedDataset data(o.out, "train");
  EXPECT_EQ(data.index().classes, (std::vector<std::string>{"n001", "n002", "n003"}));
  EXPECT_EQ(data.num_shards(), 4);
  expect_matches(data, files, data.index().classes);
  for (const auto& e : data.split_index().shards) EXPECT_EQ(e.sha256, sha256_file(o.out + "/" + e.name));
  EXPECT_TRUE(std::filesystem::exists(o.out + "/train-00003-of-00004.h5"));
}

TEST(ConvertImageFolder, RanksWriteDisjointShardsAndRankZeroWritesTheIndex) {
  // Three "ranks" run one after another with a comm that records their results; rank 0 goes last and
  // gathers everyone's (what mpirun does in parallel).
  TempDir tmp;
  const auto files = make_folder(tmp / "src");
  ImageFolderOptions o;
  o.root = tmp / "src";
  o.out = tmp / "out";
  o.shard_size = 2;
  std::vector<std::string> sent(3);
  std::string status;
  for (int rank : {1, 2, 0}) {
    ConvertComm c;
    c.rank = rank;
    c.size = 3;
    c.gather = [&, rank](const std::string& s) {
      sent[static_cast<size_t>(rank)] = s;
      return rank == 0 ? sent : std::vector<std::string>{};
    };
    c.broadcast = [&, rank](const std::string& s) {
      if (rank == 0) status = s;
      return rank == 0 ? s : std::string(R"({"error":"","records":0,"shards":0,"sources":0,"skipped":[]})");
    };
    convert_imagefolder(o, c);
    if (rank != 0) {
      EXPECT_FALSE(index_exists(o.out));
    }
  }
  for (int rank = 0; rank < 3; ++rank) {
    const ConvertResult r = parse_convert_result(sent[static_cast<size_t>(rank)]);
    for (const auto& [i, e] : r.shards) EXPECT_EQ(i % 3, rank) << e.name;
  }
  ShardedDataset data(o.out, "train");
  EXPECT_EQ(data.num_shards(), 8);
  expect_matches(data, files, data.index().classes);
}

TEST(ConvertImageFolder, BadFilesAreSkippedListedAndCounted) {
  TempDir tmp;
  const auto files = make_folder(tmp / "src");
  const auto good = testing::make_jpeg(100, 80, 99);
  testing::write_file(tmp / "src/n001/truncated.JPEG", std::vector<uint8_t>(good.begin(), good.begin() + good.size() / 2));
  std::vector<uint8_t> noise(5000);
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<uint8_t>((i * 7919u) >> 3);
  testing::write_file(tmp / "src/n002/random.JPEG", noise);
  testing::write_file(tmp / "src/n003/empty.JPEG", {});
  std::vector<uint8_t> bad_body = good;  // a valid header with garbage entropy-coded data
  for (size_t i = bad_body.size() / 3; i < bad_body.size() - 2; ++i) bad_body[i] = 0xFF;
  testing::write_file(tmp / "src/n003/garbage.JPEG", bad_body);

  ImageFolderOptions o;
  o.root = tmp / "src";
  o.out = tmp / "out";
  o.shard_size = 5;
  const ConvertSummary s = convert_imagefolder(o, single_process_comm());
  EXPECT_EQ(s.sources, 19);
  EXPECT_EQ(s.records, 15);
  ASSERT_EQ(s.skipped.size(), 4u);
  std::map<std::string, std::string> why;
  for (const auto& k : s.skipped) why[k.file] = k.reason;
  EXPECT_NE(why["n001/truncated.JPEG"].find("damaged"), std::string::npos) << why["n001/truncated.JPEG"];
  EXPECT_NE(why["n002/random.JPEG"].find("not a JPEG"), std::string::npos) << why["n002/random.JPEG"];
  EXPECT_EQ(why["n003/empty.JPEG"], "the file is empty");
  EXPECT_TRUE(why.count("n003/garbage.JPEG"));
  ShardedDataset data(o.out, "train");
  expect_matches(data, files, data.index().classes);
  EXPECT_EQ(data.split_index().skipped.size(), 4u);  // also listed in index.json

  // --strict: the same folder is an error naming the file, and nothing is left half-written.
  o.out = tmp / "strict";
  o.strict = true;
  try {
    convert_imagefolder(o, single_process_comm());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("truncated.JPEG"), std::string::npos) << e.message();
  }
  EXPECT_FALSE(index_exists(o.out));
  for (const auto& f : std::filesystem::directory_iterator(o.out))
    ADD_FAILURE() << "left behind: " << f.path();
}

TEST(ConvertImageFolder, FailedReconversionDropsTheSplitInsteadOfMixingShards) {
  TempDir tmp;
  make_folder(tmp / "src");
  ImageFolderOptions o;
  o.root = tmp / "src";
  o.out = tmp / "out";
  o.shard_size = 8;
  convert_imagefolder(o, single_process_comm());
  o.split = "val";
  convert_imagefolder(o, single_process_comm());
  // Re-convert train with a file that --strict rejects in the second shard, after the first was written.
  testing::write_file(tmp / "src/n003/zz.JPEG", {1, 2, 3});
  o.split = "train";
  o.strict = true;
  EXPECT_THROW(convert_imagefolder(o, single_process_comm()), Error);
  const DatasetIndex idx = read_index(o.out);
  EXPECT_EQ(idx.splits.count("train"), 0u);
  EXPECT_EQ(idx.splits.count("val"), 1u);
  ShardedDataset val(o.out, "val");
  EXPECT_EQ(val.size(), 15);
}

TEST(ConvertImageFolder, LabelsCsvAndValAfterTrainKeepTheClasses) {
  TempDir tmp;
  const auto files = make_folder(tmp / "src");
  ImageFolderOptions o;
  o.root = tmp / "src";
  o.out = tmp / "out";
  convert_imagefolder(o, single_process_comm());

  // A flat val folder with a CSV naming classes by name and by index.
  std::string csv = "file,label\n";
  std::map<std::string, std::vector<uint8_t>> val;
  for (int i = 0; i < 6; ++i) {
    const std::string name = "val_" + std::to_string(i) + ".JPEG";
    val[name] = testing::make_jpeg(50, 40, 100u + static_cast<uint32_t>(i));
    testing::write_file(tmp / ("flat/" + name), val[name]);
    csv += name + "," + (i % 2 ? std::string("n00") + std::to_string(i % 3 + 1) : std::to_string(i % 3)) + "\n";
  }
  testing::write_file(tmp / "labels.csv", std::vector<uint8_t>(csv.begin(), csv.end()));
  ImageFolderOptions v;
  v.root = tmp / "flat";
  v.out = o.out;
  v.split = "val";
  v.labels_csv = tmp / "labels.csv";
  v.shard_size = 4;
  convert_imagefolder(v, single_process_comm());
  ShardedDataset data(o.out, "val");
  ASSERT_EQ(data.size(), 6);
  for (int64_t i = 0; i < 6; ++i) {
    const auto loc = data.locate(i);
    const std::string key = data.shard(loc.shard).key(loc.record);
    const int k = key[4] - '0';
    EXPECT_EQ(data.label(i), k % 3) << key;
  }
  EXPECT_EQ(ShardedDataset(o.out, "train").size(), 15);  // train is still there

  // A class the existing index does not know is an error.
  testing::write_file(tmp / "src2/n999/a.JPEG", testing::make_jpeg(20, 20, 1));
  ImageFolderOptions bad;
  bad.root = tmp / "src2";
  bad.out = o.out;
  bad.split = "test";
  EXPECT_THROW(convert_imagefolder(bad, single_process_comm()), Error);
}

TEST(ConvertIdx, RoundTripGzipAndPlainWithStatistics) {
  TempDir tmp;
  const int n = 23, h = 28, w = 28;
  std::vector<uint8_t> px(static_cast<size_t>(n) * h * w), labels(n);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 31) % 251);
  for (int i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = static_cast<uint8_t>(i % 10);
  testing::write_idx_images(tmp / "img.gz", px, n, h, w, true);
  testing::write_idx_labels(tmp / "lab", labels, false);
  IdxOptions o;
  o.images = tmp / "img.gz";
  o.labels = tmp / "lab";
  o.out = tmp / "out";
  o.shard_size = 10;
  const ConvertSummary s = convert_idx(o, single_process_comm());
  EXPECT_EQ(s.records, n);
  EXPECT_EQ(s.shards, 3);
  ShardedDataset data(o.out, "train");
  EXPECT_EQ(data.encoding(), Encoding::raw);
  EXPECT_EQ(data.num_classes(), 10);
  std::vector<uint8_t> got(h * w);
  for (int i = 0; i < n; ++i) {
    data.read(i, got.data());
    EXPECT_TRUE(std::equal(got.begin(), got.end(), px.begin() + static_cast<std::ptrdiff_t>(i) * h * w)) << i;
    EXPECT_EQ(data.label(i), labels[static_cast<size_t>(i)]);
  }
  double sum = 0, sq = 0;
  for (uint8_t v : px) sum += v, sq += static_cast<double>(v) * v;
  const double mean = sum / static_cast<double>(px.size());
  EXPECT_NEAR(data.split_index().mean[0], mean, 1e-9);
  EXPECT_NEAR(data.split_index().std[0], std::sqrt(sq / static_cast<double>(px.size()) - mean * mean), 1e-9);
  EXPECT_EQ(data.shard(0).header().mean, data.split_index().mean);

  // Mismatched counts and truncated files are errors naming the file.
  testing::write_idx_labels(tmp / "short", std::vector<uint8_t>(5, 1), true);
  o.labels = tmp / "short";
  EXPECT_THROW(convert_idx(o, single_process_comm()), Error);
  auto bytes = testing::read_file(tmp / "lab");
  bytes.pop_back();
  testing::write_file(tmp / "cut", bytes);
  try {
    read_idx_labels(tmp / "cut");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("truncated"), std::string::npos) << e.message();
  }
}

// A validation part held out of a training set: two disjoint ranges into one folder, the second split
// keeping the first's classes even where its own labels do not reach them all.
TEST(ConvertIdx, FirstAndCountHoldOutAPart) {
  TempDir tmp;
  const int n = 30, h = 4, w = 4;
  std::vector<uint8_t> px(static_cast<size_t>(n) * h * w), labels(n);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 7) % 253);
  for (int i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = static_cast<uint8_t>(i < 25 ? i % 10 : 1);
  testing::write_idx_images(tmp / "img", px, n, h, w, false);
  testing::write_idx_labels(tmp / "lab", labels, false);
  IdxOptions o;
  o.images = tmp / "img";
  o.labels = tmp / "lab";
  o.out = tmp / "out";
  o.count = 25;
  EXPECT_EQ(convert_idx(o, single_process_comm()).records, 25);
  o.split = "holdout", o.first = 25, o.count = -1;
  EXPECT_EQ(convert_idx(o, single_process_comm()).records, 5);
  ShardedDataset train(o.out, "train"), held(o.out, "holdout");
  EXPECT_EQ(train.size(), 25);
  EXPECT_EQ(held.size(), 5);
  EXPECT_EQ(held.num_classes(), 10);
  std::vector<uint8_t> got(h * w);
  for (int i = 0; i < 5; ++i) {
    held.read(i, got.data());
    EXPECT_TRUE(std::equal(got.begin(), got.end(), px.begin() + static_cast<std::ptrdiff_t>(25 + i) * h * w)) << i;
  }
  double sum = 0;  // the statistics are the part's own
  for (size_t i = 25 * h * w; i < px.size(); ++i) sum += px[i];
  EXPECT_NEAR(held.split_index().mean[0], sum / (5.0 * h * w), 1e-9);
  // A range outside the files, or an empty one, is an error naming the file.
  for (auto [first, count] : {std::pair<int64_t, int64_t>{30, -1}, {-1, 5}, {20, 11}, {3, 0}}) {
    o.split = "bad", o.first = first, o.count = count;
    try {
      convert_idx(o, single_process_comm());
      ADD_FAILURE() << first << " " << count;
    } catch (const Error& e) {
      EXPECT_NE(e.message().find("img"), std::string::npos) << e.message();
    }
  }
}

TEST(H5pyExample, ReadsWhatTheConverterWrote) {
  if (testing::run("/usr/bin/python3 -c 'import h5py, PIL' 2>/dev/null") != 0)
    FAIL() << "/usr/bin/python3 lacks h5py or PIL: run tools/setup.sh (installs python3-h5py python3-pil)";
  TempDir tmp;
  const auto files = make_folder(tmp / "src");
  ImageFolderOptions o;
  o.root = tmp / "src";
  o.out = tmp / "out";
  o.shard_size = 8;
  convert_imagefolder(o, single_process_comm());
  ShardedDataset data(o.out, "train");
  for (int64_t g : {int64_t{3}, int64_t{11}}) {  // a gray JPEG and a CMYK one among them
    const auto loc = data.locate(g);
    const std::string shard = data.shard(loc.shard).path();
    std::string out;
    ASSERT_EQ(testing::run("/usr/bin/python3 " + testing::source_dir() + "/tools/read_shard_example.py " + shard + " " +
                               std::to_string(loc.record),
                           &out),
              0)
        << out;
    const auto j = nlohmann::json::parse(out);
    const std::string key = data.shard(loc.shard).key(loc.record);
    EXPECT_EQ(j["key"], key);
    EXPECT_EQ(j["label"], data.label(g));
    EXPECT_EQ(j["class"], key.substr(0, 4));
    EXPECT_EQ(j["intact"], true);  // h5py and python3-xxhash agree with the checksum convoy wrote
    Sha256 sha;
    sha.update(files.at(key).data(), files.at(key).size());
    EXPECT_EQ(j["sha256"], sha.hex_digest());
    JpegDecoder dec;
    const JpegInfo info = dec.header(files.at(key).data(), files.at(key).size());
    EXPECT_EQ(j["shape"], nlohmann::json::array({info.height, info.width, 3}));
  }
}

}  // namespace
}  // namespace convoy::datasets
