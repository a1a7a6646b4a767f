// Shard format v2: writer -> reader round trips, index.json, whole-file and per-record checksums (damage
// found on read, naming shard, record and key), version-1 shards still read, and the h5py example.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "datasets/dataset.h"
#include "datasets/index.h"
#include "datasets/sha256.h"
#include "datasets/shard_reader.h"
#include "datasets/shard_writer.h"
#include "test_util.h"

namespace convoy::datasets {
namespace {

using testing::TempDir;

TEST(Sha256, KnownDigests) {
  Sha256 empty;
  EXPECT_EQ(empty.hex_digest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 abc;
  abc.update("abc", 3);
  EXPECT_EQ(abc.hex_digest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // 1,000,000 x 'a', fed in uneven pieces to exercise the block buffering.
  Sha256 million;
  const std::string chunk(997, 'a');
  size_t left = 1000000;
  while (left > 0) {
    const size_t n = std::min(left, chunk.size());
    million.update(chunk.data(), n);
    left -= n;
  }
  EXPECT_EQ(million.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(ShardFormat, JpegRoundTripKeepsBytesExactly) {
  TempDir dir;
  std::vector<std::vector<uint8_t>> files;
  ShardHeader h;
  h.split = "train";
  h.num_classes = 5;
  ShardWriter w(dir.path(), "train-00000-of-00001.h5", h);
  for (int i = 0; i < 7; ++i) {
    files.push_back(testing::make_jpeg(40 + 13 * i, 30 + 7 * i, static_cast<uint32_t>(i)));
    w.add_jpeg(files.back().data(), files.back().size(), i % 5, "class/file" + std::to_string(i) + ".JPEG");
  }
  const ShardEntry e = w.finish();
  EXPECT_EQ(e.records, 7);
  EXPECT_EQ(e.sha256, sha256_file(dir / e.name));
  EXPECT_EQ(e.bytes, static_cast<int64_t>(std::filesystem::file_size(dir / e.name)));
  // Nothing but the shard is left in the folder (the temporary file was renamed).
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);

  ShardReader r(dir / e.name);
  ASSERT_EQ(r.size(), 7);
  EXPECT_EQ(r.encoding(), Encoding::jpeg);
  EXPECT_EQ(r.header().num_classes, 5);
  EXPECT_EQ(r.header().split, "train");
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(r.label(i), i % 5);
    EXPECT_EQ(r.key(i), "class/file" + std::to_string(i) + ".JPEG");
    ASSERT_EQ(r.record_bytes(i), static_cast<int64_t>(files[static_cast<size_t>(i)].size()));
    std::vector<uint8_t> got(static_cast<size_t>(r.record_bytes(i)));
    r.read(i, got.data());
    EXPECT_EQ(got, files[static_cast<size_t>(i)]) << "record " << i;
  }
}

TEST(ShardFormat, RawRoundTrip) {
  TempDir dir;
  ShardHeader h;
  h.split = "val";
  h.num_classes = 3;
  h.encoding = Encoding::raw;
  h.height = 4, h.width = 5, h.channels = 2;
  h.mean = {1.5, 2.5};
  h.std = {3.0, 4.0};
  ShardWriter w(dir.path(), "val-00000-of-00001.h5", h);
  std::vector<uint8_t> px(40);
  for (int i = 0; i < 3; ++i) {
    for (size_t k = 0; k < px.size(); ++k) px[k] = static_cast<uint8_t>(k * 3 + i);
    w.add_raw(px.data(), 2 - i, "r" + std::to_string(i));
  }
  w.finish();
  ShardReader r(dir / "val-00000-of-00001.h5");
  ASSERT_EQ(r.size(), 3);
  EXPECT_EQ(r.header().height, 4);
  EXPECT_EQ(r.header().channels, 2);
  EXPECT_EQ(r.header().mean, (std::vector<double>{1.5, 2.5}));
  std::vector<uint8_t> got(40);
  r.read(1, got.data());
  for (size_t k = 0; k < got.size(); ++k) EXPECT_EQ(got[k], static_cast<uint8_t>(k * 3 + 1));
  EXPECT_EQ(r.label(1), 1);
}

// Three jpeg records, labels 0, 1, 2: the shard's path.
std::string three_jpegs(const TempDir& dir) {
  ShardHeader h;
  h.split = "train";
  h.num_classes = 3;
  ShardWriter w(dir.path(), "train-00000-of-00001.h5", h);
  for (int i = 0; i < 3; ++i) {
    const auto j = testing::make_jpeg(32, 24, static_cast<uint32_t>(i));
    w.add_jpeg(j.data(), j.size(), i, "c/" + std::to_string(i) + ".JPEG");
  }
  return dir / w.finish().name;
}

TEST(ShardIntegrity, DamagedBytesAreFoundWhenTheRecordIsRead) {
  TempDir dir;
  const std::string path = three_jpegs(dir);
  int64_t second = 0;
  {
    ShardReader r(path);
    EXPECT_EQ(r.version(), 2);
    EXPECT_TRUE(r.checksummed());
    second = r.record_bytes(0);
  }
  testing::damage_images(path, second + 100, 16);  // inside record 1
  ShardReader r(path);                              // opening reads only the tables: it still opens
  std::vector<uint8_t> buf;
  auto sized = [&](int64_t i) { return buf.resize(static_cast<size_t>(r.record_bytes(i))), buf.data(); };
  r.read(0, sized(0));
  r.read(2, sized(2));
  EXPECT_FALSE(r.read_checked(1, sized(1)));
  try {
    r.read(1, sized(1));
    FAIL() << "a damaged record was read";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("Shard " + path + ", record 1 (key c/1.JPEG, label 1) is damaged"), std::string::npos)
        << e.message();
    EXPECT_NE(e.message().find("data.on_error: skip"), std::string::npos) << e.message();
  }
}

TEST(ShardIntegrity, AChangedLabelIsFound) {
  TempDir dir;
  const std::string path = three_jpegs(dir);
  testing::rewrite_label(path, 2, 0);  // still a valid class: only the checksum can tell
  ShardReader r(path);
  std::vector<uint8_t> one(static_cast<size_t>(r.record_bytes(1))), two(static_cast<size_t>(r.record_bytes(2)));
  EXPECT_TRUE(r.read_checked(1, one.data()));
  EXPECT_FALSE(r.read_checked(2, two.data()));
}

TEST(ShardIntegrity, RawRecordsAreChecked) {
  TempDir dir;
  ShardHeader h;
  h.split = "train";
  h.num_classes = 2;
  h.encoding = Encoding::raw;
  h.height = 3, h.width = 3, h.channels = 1;
  h.mean = {0};
  h.std = {1};
  ShardWriter w(dir.path(), "s.h5", h);
  std::vector<uint8_t> px(9, 7);
  for (int i = 0; i < 4; ++i) w.add_raw(px.data(), i % 2, "r" + std::to_string(i));
  w.finish();
  testing::damage_images(dir / "s.h5", 3 * 9 + 4, 1);  // one byte of record 3
  ShardReader r(dir / "s.h5");
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(r.read_checked(i, px.data())) << i;
  EXPECT_FALSE(r.read_checked(3, px.data()));
}

TEST(ShardIntegrity, Version1ShardsStillReadWithANotice) {
  TempDir dir;
  const std::string path = three_jpegs(dir);
  DatasetIndex idx;
  idx.classes = {"a", "b", "c"};
  idx.splits["train"].records = 3;
  idx.splits["train"].shards.push_back(
      {"train-00000-of-00001.h5", 3, static_cast<int64_t>(std::filesystem::file_size(path)), sha256_file(path)});
  write_index(dir.path(), idx);
  testing::make_version_1(path);
  testing::damage_images(path, 50, 8);
  ShardReader r(path);
  EXPECT_EQ(r.version(), 1);
  EXPECT_FALSE(r.checksummed());
  std::vector<uint8_t> buf(static_cast<size_t>(r.record_bytes(0)));
  EXPECT_TRUE(r.read_checked(0, buf.data()));  // no checksum: damage goes unnoticed, as the notice says
  ShardedDataset data(dir.path(), "train");
  EXPECT_NE(data.unchecked_notice().find("1 of 1 shards are format version 1, without per-record checksums"),
            std::string::npos)
      << data.unchecked_notice();
}

TEST(ShardFormat, EmptyShardIsReadable) {
  TempDir dir;
  ShardHeader h;
  h.split = "train";
  h.num_classes = 2;
  ShardWriter w(dir.path(), "s.h5", h);
  w.finish();
  ShardReader r(dir / "s.h5");
  EXPECT_EQ(r.size(), 0);
}

TEST(ShardFormat, WriterRejectsBadLabelAndLeavesNoFile) {
  TempDir dir;
  {
    ShardHeader h;
    h.split = "train";
    h.num_classes = 2;
    ShardWriter w(dir.path(), "s.h5", h);
    const auto j = testing::make_jpeg(16, 16, 1);
    EXPECT_THROW(w.add_jpeg(j.data(), j.size(), 2, "k"), Error);
    w.add_jpeg(j.data(), j.size(), 1, "k");
    // Destroyed without finish(): nothing may be left behind.
  }
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 0);
}

TEST(Index, RoundTripAndValidation) {
  TempDir dir;
  DatasetIndex idx;
  idx.encoding = Encoding::raw;
  idx.classes = {"a", "b"};
  SplitIndex s;
  s.shards = {{"train-00000-of-00002.h5", 3, 100, "00"}, {"train-00001-of-00002.h5", 2, 90, "11"}};
  s.records = 5;
  s.height = 2, s.width = 2, s.channels = 1, s.mean = {1}, s.std = {2};
  s.skipped = {{"x.JPEG", "the file is empty"}};
  idx.splits["train"] = s;
  write_index(dir.path(), idx);
  const DatasetIndex back = read_index(dir.path());
  EXPECT_EQ(back.classes, idx.classes);
  EXPECT_EQ(back.split("train", dir.path()).records, 5);
  EXPECT_EQ(back.split("train", dir.path()).shards[1].sha256, "11");
  EXPECT_EQ(back.split("train", dir.path()).skipped.size(), 1u);
  EXPECT_THROW(back.split("val", dir.path()), Error);

  // A record count that does not add up is an error that names the split.
  auto j = nlohmann::json::parse(testing::read_file(dir / "index.json"));
  j["splits"]["train"]["records"] = 6;
  const std::string text = j.dump();
  testing::write_file(dir / "index.json", std::vector<uint8_t>(text.begin(), text.end()));
  try {
    read_index(dir.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("split \"train\""), std::string::npos) << e.message();
  }
  testing::write_file(dir / "index.json", {'{', 'x'});
  EXPECT_THROW(read_index(dir.path()), Error);
}

}  // namespace
}  // namespace convoy::datasets
