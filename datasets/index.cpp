#include "datasets/index.h"

#include <type_traits>

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"

namespace convoy::datasets {

const char* encoding_name(Encoding e) { return e == Encoding::jpeg ? "jpeg" : "raw"; }

Encoding parse_encoding(const std::string& s, const std::string& where) {
  if (s == "jpeg") return Encoding::jpeg;
  if (s == "raw") return Encoding::raw;
  CONVOY_FAIL(where << " names encoding \"" << s << "\"; this convoy reads \"jpeg\" and \"raw\".");
}

std::string shard_file_name(const std::string& split, int64_t index, int64_t count) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "-%05ld-of-%05ld.h5", static_cast<long>(index), static_cast<long>(count));
  return split + buf;
}

void check_split_name(const std::string& split) {
  bool ok = !split.empty() && split.size() <= 64;
  for (char c : split) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
  CONVOY_CHECK(ok, "Split name \"" << split << "\" is not valid; use letters, digits, '-' or '_' (e.g. train, val).");
}

const SplitIndex& DatasetIndex::split(const std::string& name, const std::string& dir) const {
  auto it = splits.find(name);
  if (it == splits.end()) {
    std::string have;
    for (const auto& [k, v] : splits) have += (have.empty() ? "" : ", ") + k;
    CONVOY_FAIL(dir << "/" << kIndexFile << " has no split \"" << name << "\" (it has: " << have
                    << "); convert that split first or choose another.");
  }
  return it->second;
}

bool index_exists(const std::string& dir) { return std::filesystem::exists(std::filesystem::path(dir) / kIndexFile); }

namespace {

using nlohmann::json;

template <typename T>
T field(const json& j, const char* key, const std::string& where) {
  CONVOY_CHECK(j.is_object() && j.contains(key), where << " has no field \"" << key
                                                       << "\"; the index is damaged: convert the data again.");
  // nlohmann converts a floating-point number to an integer with a cast, undefined out of range
  // (fuzz_index found 5.6e83): integers must be written as integers.
  if constexpr (std::is_integral_v<T>)
    CONVOY_CHECK(j.at(key).is_number_integer(), where << ": field \"" << key << "\" must be an integer, not "
                                                      << j.at(key).dump().substr(0, 40)
                                                      << "; the index is damaged: convert the data again.");
  try {
    return j.at(key).get<T>();
  } catch (const json::exception& e) {
    CONVOY_FAIL(where << ": field \"" << key << "\" has the wrong type (" << e.what()
                      << "); the index is damaged: convert the data again.");
  }
}

}  // namespace

namespace {
DatasetIndex parse_index(const nlohmann::json& j, const std::string& path);
}  // namespace

DatasetIndex read_index(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / kIndexFile).string();
  std::ifstream in(path);
  CONVOY_CHECK(in.good(), "Cannot open " << path << "; is " << dir
                                         << " a folder written by `convoy convert` (it has an index.json)?");
  json j;
  try {
    in >> j;
  } catch (const json::exception& e) {
    CONVOY_FAIL(path << " is not valid JSON (" << e.what() << "); convert the data again.");
  }
  try {
    return parse_index(j, path);
  } catch (const json::exception& e) {  // a value of the wrong kind where no field<> check looks (fuzz_index)
    CONVOY_FAIL(path << " is damaged (" << e.what() << "); convert the data again.");
  }
}

namespace {

DatasetIndex parse_index(const json& j, const std::string& path) {
  CONVOY_CHECK(j.is_object() && j.value("format", "") == "convoy-index",
               path << " is not a convoy index (its \"format\" is not \"convoy-index\").");
  const int64_t version = field<int64_t>(j, "version", path);
  CONVOY_CHECK(version == kIndexVersion, path << " is format version " << version << "; this convoy reads version "
                                              << kIndexVersion << ": convert the data again or update convoy.");
  DatasetIndex index;
  index.encoding = parse_encoding(field<std::string>(j, "encoding", path), path);
  index.classes = field<std::vector<std::string>>(j, "classes", path);
  CONVOY_CHECK(!index.classes.empty(), path << " lists no classes; convert the data again.");
  CONVOY_CHECK(field<int64_t>(j, "num_classes", path) == index.num_classes(),
               path << ": \"num_classes\" does not match the length of \"classes\"; the index is damaged.");
  const json& splits = j.contains("splits") ? j.at("splits") : json();
  CONVOY_CHECK(splits.is_object() && !splits.empty(), path << " lists no splits; convert the data again.");
  for (const auto& [name, s] : splits.items()) {
    const std::string where = path + " split \"" + name + "\"";
    SplitIndex split;
    split.records = field<int64_t>(s, "records", where);
    int64_t sum = 0;
    for (const json& e : field<json>(s, "shards", where)) {
      ShardEntry entry;
      entry.name = field<std::string>(e, "name", where);
      entry.records = field<int64_t>(e, "records", where + " shard " + entry.name);
      entry.bytes = field<int64_t>(e, "bytes", where + " shard " + entry.name);
      entry.sha256 = field<std::string>(e, "sha256", where + " shard " + entry.name);
      CONVOY_CHECK(entry.records >= 0 && entry.name.find('/') == std::string::npos,
                   where << " shard " << entry.name << " has an invalid name or record count; the index is damaged.");
      sum += entry.records;
      split.shards.push_back(std::move(entry));
    }
    CONVOY_CHECK(sum == split.records, where << " says " << split.records << " records but its shards add up to "
                                             << sum << "; the index is damaged: convert the data again.");
    if (index.encoding == Encoding::raw) {
      split.height = field<int64_t>(s, "height", where);
      split.width = field<int64_t>(s, "width", where);
      split.channels = field<int64_t>(s, "channels", where);
      split.mean = field<std::vector<double>>(s, "mean", where);
      split.std = field<std::vector<double>>(s, "std", where);
      CONVOY_CHECK(split.height > 0 && split.width > 0 && split.channels > 0 &&
                       static_cast<int64_t>(split.mean.size()) == split.channels &&
                       static_cast<int64_t>(split.std.size()) == split.channels,
                   where << " has an invalid image shape or mean/std; the index is damaged: convert the data again.");
    }
    if (s.contains("skipped"))
      for (const json& k : s.at("skipped"))
        split.skipped.push_back({k.value("file", ""), k.value("reason", "")});
    index.splits.emplace(name, std::move(split));
  }
  return index;
}

}  // namespace

void write_index(const std::string& dir, const DatasetIndex& index) {
  json splits = json::object();
  for (const auto& [name, s] : index.splits) {
    json shards = json::array();
    for (const auto& e : s.shards)
      shards.push_back({{"name", e.name}, {"records", e.records}, {"bytes", e.bytes}, {"sha256", e.sha256}});
    json js = {{"records", s.records}, {"shards", shards}};
    if (index.encoding == Encoding::raw) {
      js["height"] = s.height;
      js["width"] = s.width;
      js["channels"] = s.channels;
      js["mean"] = s.mean;
      js["std"] = s.std;
    }
    json skipped = json::array();
    for (const auto& k : s.skipped) skipped.push_back({{"file", k.file}, {"reason", k.reason}});
    js["skipped"] = skipped;
    splits[name] = js;
  }
  json j = {{"format", "convoy-index"},         {"version", kIndexVersion},
            {"encoding", encoding_name(index.encoding)}, {"num_classes", index.num_classes()},
            {"classes", index.classes},         {"splits", splits}};
  write_file_atomically((std::filesystem::path(dir) / kIndexFile).string(), j.dump(1) + "\n");
}

void write_file_atomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CONVOY_CHECK(fd >= 0, "Cannot create " << tmp << ": " << std::strerror(errno) << "; check the folder is writable.");
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      CONVOY_FAIL("Cannot write " << tmp << ": " << std::strerror(err) << "; is the disk full?");
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    CONVOY_FAIL("Cannot write " << path << ": " << std::strerror(err) << ".");
  }
}

}  // namespace convoy::datasets
