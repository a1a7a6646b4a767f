#include "datasets/imagefolder.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "common/error.h"
#include "datasets/jpeg.h"
#include "datasets/shard_writer.h"

namespace convoy::datasets {
namespace fs = std::filesystem;
namespace {

bool hidden(const fs::path& p) { return !p.filename().empty() && p.filename().string()[0] == '.'; }

std::string trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

bool parse_int(const std::string& s, int64_t& v) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

void plan_from_folders(const ImageFolderOptions& o, const std::vector<std::string>& fixed, ImageFolderPlan& plan) {
  std::vector<std::string> folders;
  for (const auto& e : fs::directory_iterator(o.root))
    if (e.is_directory() && !hidden(e.path())) folders.push_back(e.path().filename().string());
  std::sort(folders.begin(), folders.end());
  CONVOY_CHECK(!folders.empty(), o.root << " has no class sub-folders; use the ImageNet layout ROOT/<class>/*.JPEG "
                                           "or give a labels CSV with --labels.");
  plan.classes = fixed.empty() ? folders : fixed;
  for (const auto& folder : folders) {
    const auto it = std::find(plan.classes.begin(), plan.classes.end(), folder);
    CONVOY_CHECK(it != plan.classes.end(), "Class folder " << folder << " is not among the " << plan.classes.size()
                                                           << " classes of the index.json already in " << o.out
                                                           << "; convert into a new folder.");
    const int32_t label = static_cast<int32_t>(it - plan.classes.begin());
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(fs::path(o.root) / folder))
      if (e.is_regular_file() && !hidden(e.path())) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    for (auto& n : names) plan.files.emplace_back(folder + "/" + n, label);
  }
}

void plan_from_csv(const ImageFolderOptions& o, const std::vector<std::string>& fixed, ImageFolderPlan& plan) {
  std::ifstream in(o.labels_csv);
  CONVOY_CHECK(in.good(), "Cannot open the labels CSV " << o.labels_csv << ".");
  std::vector<std::pair<std::string, std::string>> rows;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    line = trim(line);
    if (line.empty() || (n == 1 && (line == "file,label" || line == "filename,label"))) continue;
    const auto comma = line.rfind(',');
    CONVOY_CHECK(comma != std::string::npos && comma > 0 && comma + 1 < line.size(),
                 o.labels_csv << " line " << n << " is not `file,label`: \"" << line << "\".");
    rows.emplace_back(trim(line.substr(0, comma)), trim(line.substr(comma + 1)));
  }
  CONVOY_CHECK(!rows.empty(), o.labels_csv << " lists no files.");
  bool all_ints = true;
  int64_t max_int = -1;
  for (const auto& [file, label] : rows) {
    int64_t v = 0;
    all_ints = all_ints && parse_int(label, v) && v >= 0;
    max_int = std::max(max_int, v);
  }
  if (!fixed.empty()) {
    plan.classes = fixed;
  } else if (all_ints) {
    for (int64_t i = 0; i <= max_int; ++i) plan.classes.push_back(std::to_string(i));
  } else {
    std::set<std::string> names;
    for (const auto& r : rows) names.insert(r.second);
    plan.classes.assign(names.begin(), names.end());
  }
  std::map<std::string, int32_t> by_name;
  for (size_t i = 0; i < plan.classes.size(); ++i) by_name[plan.classes[i]] = static_cast<int32_t>(i);
  for (const auto& [file, label] : rows) {
    int64_t v = 0;
    int32_t l;
    if (by_name.count(label))
      l = by_name[label];
    else if (parse_int(label, v) && v >= 0 && v < static_cast<int64_t>(plan.classes.size()))
      l = static_cast<int32_t>(v);
    else
      CONVOY_FAIL(o.labels_csv << ": label \"" << label << "\" of " << file << " is neither one of the "
                               << plan.classes.size() << " class names nor an index below that.");
    plan.files.emplace_back(file, l);
  }
  std::sort(plan.files.begin(), plan.files.end());
  for (size_t i = 1; i < plan.files.size(); ++i)
    CONVOY_CHECK(plan.files[i].first != plan.files[i - 1].first,
                 o.labels_csv << " lists " << plan.files[i].first << " twice.");
}

std::string read_file(const fs::path& path, std::vector<uint8_t>& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) return "cannot be opened";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) return "cannot be read";
  in.seekg(0);
  out.resize(static_cast<size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(out.data()), size)) return "cannot be read";
  return "";
}

}  // namespace

ImageFolderPlan plan_imagefolder(const ImageFolderOptions& o) {
  check_split_name(o.split);
  CONVOY_CHECK(o.shard_size > 0, "--shard-size must be positive, got " << o.shard_size << ".");
  CONVOY_CHECK(fs::is_directory(o.root), "The source folder " << o.root << " does not exist.");
  const std::vector<std::string> fixed = existing_classes(o.out, Encoding::jpeg);
  ImageFolderPlan plan;
  if (o.labels_csv.empty())
    plan_from_folders(o, fixed, plan);
  else
    plan_from_csv(o, fixed, plan);
  CONVOY_CHECK(!plan.files.empty(), "No files found under " << o.root << ".");
  plan.shard_count = (static_cast<int64_t>(plan.files.size()) + o.shard_size - 1) / o.shard_size;
  return plan;
}

namespace {

void write_my_shards(const ImageFolderOptions& o, const ImageFolderPlan& plan, const ConvertComm& comm,
                     ConvertResult& result) {
  int threads = o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::max(threads, 1);
  const int64_t n_files = static_cast<int64_t>(plan.files.size());
  for (int64_t shard = comm.rank; shard < plan.shard_count; shard += comm.size) {
    const int64_t first = shard * o.shard_size, count = std::min(o.shard_size, n_files - first);
    std::vector<std::vector<uint8_t>> bytes(static_cast<size_t>(count));
    std::vector<std::string> reasons(static_cast<size_t>(count));
    std::atomic<int64_t> next{0};
    auto check_files = [&] {
      JpegDecoder decoder;
      for (int64_t i; (i = next.fetch_add(1)) < count;) {
        const auto& file = plan.files[static_cast<size_t>(first + i)].first;
        auto& b = bytes[static_cast<size_t>(i)];
        std::string reason = read_file(fs::path(o.root) / file, b);
        if (reason.empty()) reason = decoder.check(b.data(), b.size());
        if (!reason.empty()) b = {};
        reasons[static_cast<size_t>(i)] = std::move(reason);
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < std::min<int64_t>(threads, count); ++t) pool.emplace_back(check_files);
    check_files();
    for (auto& t : pool) t.join();

    ShardHeader header;
    header.split = o.split;
    header.num_classes = static_cast<int64_t>(plan.classes.size());
    header.encoding = Encoding::jpeg;
    const std::string name = shard_file_name(o.split, shard, plan.shard_count);
    ShardWriter writer(o.out, name, header);
    for (int64_t i = 0; i < count; ++i) {
      const auto& [file, label] = plan.files[static_cast<size_t>(first + i)];
      const std::string& reason = reasons[static_cast<size_t>(i)];
      if (!reason.empty()) {
        CONVOY_CHECK(!o.strict, (fs::path(o.root) / file).string()
                                    << " is not a usable JPEG (" << reason
                                    << "); remove or replace it, or convert without --strict to skip such files.");
        result.skipped.push_back({file, reason});
        continue;
      }
      const auto& b = bytes[static_cast<size_t>(i)];
      writer.add_jpeg(b.data(), b.size(), label, file);
    }
    result.sources += count;
    result.shards.emplace_back(shard, writer.finish());
  }
}

}  // namespace

ConvertSummary convert_imagefolder(const ImageFolderOptions& o, const ConvertComm& comm) {
  // Every rank plans the same; if planning fails here it fails on every rank alike.
  const ImageFolderPlan plan = plan_imagefolder(o);
  if (comm.rank == 0) fs::create_directories(o.out);
  SplitMeta meta;
  meta.encoding = Encoding::jpeg;
  meta.classes = plan.classes;
  meta.shard_count = plan.shard_count;
  return run_conversion(o.out, o.split, meta, comm, [&](ConvertResult& result) {
    fs::create_directories(o.out);
    write_my_shards(o, plan, comm, result);
  });
}

}  // namespace convoy::datasets
