// Damaged shards and indexes: each gives a clear error naming the shard (and the record), never a crash
// or a hang. Shards are damaged with HDF5's own API after a normal conversion.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "datasets/dataset.h"
#include "datasets/h5.h"
#include "datasets/idx.h"
#include "datasets/shard_reader.h"
#include "datasets/imagefolder.h"
#include "datasets/inspect.h"
#include "datasets/loader.h"
#include "test_util.h"

namespace convoy::datasets {
namespace {

using testing::TempDir;

// 12 JPEGs in 3 classes -> 2 shards of 6 in tmp/out.
std::string convert_small(const TempDir& tmp) {
  for (int i = 0; i < 12; ++i)
    testing::write_file(tmp / ("src/c" + std::to_string(i % 3) + "/" + std::to_string(i) + ".JPEG"),
                        testing::make_jpeg(40 + i, 30 + i, static_cast<uint32_t>(i)));
  ImageFolderOptions o;
  o.root = tmp / "src";
  o.out = tmp / "out";
  o.shard_size = 6;
  convert_imagefolder(o, single_process_comm());
  return o.out;
}

template <typename T>
void overwrite(const std::string& path, const char* dataset, hid_t type, std::vector<T> values) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
  ASSERT_GE(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
  H5Dclose(d);
  H5Fclose(f);
}

template <typename T>
std::vector<T> read_all(const std::string& path, const char* dataset, hid_t type, size_t n) {
  std::vector<T> v(n);
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
  H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Dclose(d);
  H5Fclose(f);
  return v;
}

// Opening the split (what the Loader does) fails with a message that contains every `parts`.
void expect_open_error(const std::string& dir, std::initializer_list<std::string> parts) {
  try {
    ShardedDataset data(dir, "train");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(e.message().find(p), std::string::npos) << "'" << p << "' not in: " << e.message();
  }
  // inspect lists the same problem instead of stopping.
  const InspectReport r = inspect_dataset(dir, {});
  ASSERT_FALSE(r.problems.empty());
  bool found = false;
  for (const auto& p : r.problems) found = found || p.find(*parts.begin()) != std::string::npos;
  EXPECT_TRUE(found) << r.problems[0];
}

TEST(BadShards, MissingDataset) {
  TempDir tmp;
  const std::string dir = convert_small(tmp), shard = dir + "/train-00001-of-00002.h5";
  hid_t f = H5Fopen(shard.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(H5Ldelete(f, "offsets", H5P_DEFAULT), 0);
  H5Fclose(f);
  expect_open_error(dir, {shard, "no dataset `offsets`"});
}

TEST(BadShards, OffsetsNotMonotonic) {
  TempDir tmp;
  const std::string dir = convert_small(tmp), shard = dir + "/train-00000-of-00002.h5";
  auto off = read_all<int64_t>(shard, "offsets", H5T_NATIVE_INT64, 7);
  std::swap(off[3], off[4]);
  overwrite(shard, "offsets", H5T_NATIVE_INT64, off);
  expect_open_error(dir, {shard, "record 3", "not increasing"});
}

TEST(BadShards, OffsetsPastTheBlob) {
  TempDir tmp;
  const std::string dir = convert_small(tmp), shard = dir + "/train-00000-of-00002.h5";
  auto off = read_all<int64_t>(shard, "offsets", H5T_NATIVE_INT64, 7);
  off[5] = off[6] + 1000, off[6] = off[6] + 2000;
  overwrite(shard, "offsets", H5T_NATIVE_INT64, off);
  expect_open_error(dir, {shard, "record 4", "past the end"});
}

TEST(BadShards, LabelOutOfRange) {
  TempDir tmp;
  const std::string dir = convert_small(tmp), shard = dir + "/train-00001-of-00002.h5";
  auto labels = read_all<int32_t>(shard, "labels", H5T_NATIVE_INT32, 6);
  labels[2] = 3;  // num_classes = 3
  overwrite(shard, "labels", H5T_NATIVE_INT32, labels);
  expect_open_error(dir, {shard, "record 2", "label 3", "num_classes = 3"});
}

TEST(BadShards, TruncatedFile) {
  TempDir tmp;
  const std::string dir = convert_small(tmp), shard = dir + "/train-00001-of-00002.h5";
  std::filesystem::resize_file(shard, std::filesystem::file_size(shard) - 100);
  try {
    ShardedDataset data(dir, "train");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find(shard), std::string::npos) << e.message();
  }
}

TEST(BadShards, MissingShardAndNotAShard) {
  TempDir tmp;
  const std::string dir = convert_small(tmp), shard = dir + "/train-00001-of-00002.h5";
  std::filesystem::remove(shard);
  expect_open_error(dir, {shard, "missing"});
  testing::write_file(shard, {'n', 'o', 't', ' ', 'h', 'd', 'f', '5'});
  expect_open_error(dir, {shard, "HDF5"});
}

TEST(BadIndex, ChecksumMismatchIsFoundByVerify) {
  TempDir tmp;
  const std::string dir = convert_small(tmp);
  auto text = testing::read_file(dir + "/index.json");
  auto j = nlohmann::json::parse(text);
  j["splits"]["train"]["shards"][1]["sha256"] = std::string(64, '0');
  const std::string s = j.dump();
  testing::write_file(dir + "/index.json", std::vector<uint8_t>(s.begin(), s.end()));
  EXPECT_TRUE(inspect_dataset(dir, {}).problems.empty());  // without --verify the shards are consistent
  InspectOptions o;
  o.verify_checksums = true;
  const InspectReport r = inspect_dataset(dir, o);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_NE(r.problems[0].find("train-00001-of-00002.h5: checksum mismatch"), std::string::npos) << r.problems[0];
  EXPECT_EQ(r.splits[0].checksums_verified, 1);
  EXPECT_EQ(r.splits[0].records_verified, 12);  // every record matches its own checksum
}

TEST(BadIndex, RecordCountDisagreesWithShard) {
  TempDir tmp;
  const std::string dir = convert_small(tmp);
  auto j = nlohmann::json::parse(testing::read_file(dir + "/index.json"));
  j["splits"]["train"]["shards"][0]["records"] = 5;
  j["splits"]["train"]["shards"][1]["records"] = 7;
  const std::string s = j.dump();
  testing::write_file(dir + "/index.json", std::vector<uint8_t>(s.begin(), s.end()));
  expect_open_error(dir, {dir + "/train-00000-of-00002.h5", "6 records", "says 5"});
}

TEST(BadRecords, CorruptJpegInAShardIsAnErrorInTheLoaderAndInInspect) {
  TempDir tmp;
  const std::string dir = convert_small(tmp), shard = dir + "/train-00000-of-00002.h5";
  // A version-1 shard (no per-record checksums, which would find the damage first): the decoder must.
  testing::make_version_1(shard);
  // Overwrite record 1's bytes (all but its last two, the EOI marker) with zeros, in place: the shard's
  // structure stays consistent, its checksum does not.
  const auto off = read_all<int64_t>(shard, "offsets", H5T_NATIVE_INT64, 7);
  hid_t f = H5Fopen(shard.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "images", H5P_DEFAULT);
  const haddr_t base = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  const int fd = ::open(shard.c_str(), O_WRONLY);
  std::vector<uint8_t> zeros(static_cast<size_t>(off[2] - off[1] - 2), 0);
  ASSERT_EQ(::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(base + static_cast<haddr_t>(off[1]))),
            static_cast<ssize_t>(zeros.size()));
  ::close(fd);

  InspectOptions io;
  io.decode = 200;  // with 12 records, every one is drawn
  io.verify_checksums = true;
  const InspectReport r = inspect_dataset(dir, io);
  bool decode_problem = false;
  for (const auto& p : r.problems) decode_problem |= p.find("Cannot decode") != std::string::npos &&
                                                      p.find("record 1 (key") != std::string::npos;
  EXPECT_TRUE(decode_problem);
  EXPECT_EQ(r.splits[0].unchecked_shards, 1);

  LoaderOptions lo;
  lo.data_dir = dir;
  lo.batch_size = 4;
  lo.threads = 2;
  lo.train = false;  // record order: record 1 is in the first batch
  lo.output_size = 32;
  lo.eval_resize = 36;
  Loader loader(lo);
  loader.start_epoch(0);
  try {
    while (loader.next()) {
    }
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find(shard + ", record 1"), std::string::npos) << e.message();
  }
  // The loader is still usable: a new epoch restarts cleanly (and fails again at the same record).
  loader.start_epoch(1);
  EXPECT_THROW(
      {
        while (loader.next()) {
        }
      },
      Error);
  // data.on_error: skip: record 2 takes its place.
  lo.on_error = LoaderOptions::OnError::skip;
  Loader skipping(lo);
  skipping.start_epoch(0);
  const Batch* first = skipping.next();
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->indices[1], 2);
  while (skipping.next()) {
  }
  EXPECT_EQ(skipping.skipped_records(), 1);
}

// Inputs the fuzzers found (tools/fuzz.sh): each must be refused with convoy::Error, not crash (this
// test also runs under ASan and UBSan). tests/data/fuzz/<target>/ holds them, named by what they broke.
TEST(FuzzRegressions, IdxInputsAreRefusedWithAnError) {
  const std::filesystem::path dir = std::filesystem::path(testing::source_dir()) / "tests/data/fuzz/idx";
  int n = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    EXPECT_THROW(read_idx_images(f.path().string()), Error) << f.path();
    EXPECT_THROW(read_idx_labels(f.path().string()), Error) << f.path();
    ++n;
  }
  EXPECT_GE(n, 1);
}

TEST(FuzzRegressions, IndexFilesAreRefusedWithAnError) {
  const std::filesystem::path dir = std::filesystem::path(testing::source_dir()) / "tests/data/fuzz/index";
  TempDir tmp;
  int n = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    std::filesystem::copy_file(f.path(), tmp / "index.json", std::filesystem::copy_options::overwrite_existing);
    EXPECT_THROW(read_index(tmp.path()), Error) << f.path();
    ++n;
  }
  EXPECT_GE(n, 1);
}

// HDF5 1.10 crashes (SIGSEGV), loops forever or asks for 4 GB on these shards (fuzz_shard found them;
// some break the opening, others only the reading of a record's key for a message). Each must end as
// an error naming the file, or a key that reads "unreadable", from the child process that read it
// first: this process survives all of them. The time limit is lowered: the endless loop costs 2 s.
TEST(FuzzRegressions, ShardsThatBreakHdf5AreRefusedWithAnError) {
  const std::filesystem::path dir = std::filesystem::path(testing::source_dir()) / "tests/data/fuzz/shard";
  int n = 0, contained = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    ++n;
    try {
      ShardReader r(f.path().string());
      std::vector<uint8_t> record;
      for (int64_t i = 0; i < r.size(); ++i) {
        record.resize(static_cast<size_t>(r.record_bytes(i)));
        if (!r.read_checked(i, record.data())) (void)r.mismatch(i, record.data());
        contained += r.key(i) == "unreadable";
      }
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(f.path().string()), std::string::npos) << e.message();
      contained += 1;
    }
  }
  EXPECT_GE(n, 7);
  EXPECT_GE(contained, 7);  // every one of them breaks somewhere, and was contained
}

// A launcher that signals the whole process group (Slurm's USR1 before preemption, mpirun's TERM) reaches
// the HDF5 child too. The stop is the parent's to take (common/stop.h): the child's read finishes, and the
// file is not blamed for a crash that never happened.
TEST(Hdf5Child, AStopSignalDoesNotEndTheReadNorBlameTheFile) {
  for (int sig : {SIGUSR1, SIGTERM}) {
    const std::string got = h5::contain("/nonexistent/file.h5", [sig] {
      ::raise(sig);  // pending in the child until it exits
      return std::string("read");
    });
    EXPECT_EQ(got, "read") << strsignal(sig);
  }
}

}  // namespace
}  // namespace convoy::datasets
