#include "datasets/convert.h"

#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"

namespace convoy::datasets {

ConvertComm single_process_comm() {
  ConvertComm c;
  c.gather = [](const std::string& s) { return std::vector<std::string>{s}; };
  c.broadcast = [](const std::string& s) { return s; };
  return c;
}

std::string serialize(const ConvertResult& r) {
  nlohmann::json shards = nlohmann::json::array(), skipped = nlohmann::json::array();
  for (const auto& [i, e] : r.shards)
    shards.push_back({{"i", i}, {"name", e.name}, {"records", e.records}, {"bytes", e.bytes}, {"sha256", e.sha256}});
  for (const auto& s : r.skipped) skipped.push_back({{"file", s.file}, {"reason", s.reason}});
  return nlohmann::json{{"shards", shards}, {"skipped", skipped}, {"sources", r.sources}, {"error", r.error}}.dump();
}

ConvertResult parse_convert_result(const std::string& s) {
  const auto j = nlohmann::json::parse(s);
  ConvertResult r;
  for (const auto& e : j.at("shards"))
    r.shards.push_back({e.at("i").get<int64_t>(),
                        {e.at("name").get<std::string>(), e.at("records").get<int64_t>(), e.at("bytes").get<int64_t>(),
                         e.at("sha256").get<std::string>()}});
  for (const auto& k : j.at("skipped")) r.skipped.push_back({k.at("file").get<std::string>(), k.at("reason").get<std::string>()});
  r.sources = j.at("sources").get<int64_t>();
  r.error = j.at("error").get<std::string>();
  return r;
}

std::vector<std::string> existing_classes(const std::string& out_dir, Encoding encoding) {
  if (!index_exists(out_dir)) return {};
  const DatasetIndex index = read_index(out_dir);
  CONVOY_CHECK(index.encoding == encoding, out_dir << " already holds a dataset with " << encoding_name(index.encoding)
                                                   << " records; convert " << encoding_name(encoding)
                                                   << " data into another --out folder.");
  return index.classes;
}

namespace {

// Rank 0: index.json with this split replaced, then the old split's shards that are no longer listed.
DatasetIndex write_split_index(const std::string& out_dir, const std::string& split, const SplitMeta& meta,
                               std::vector<ConvertResult>& results, ConvertSummary& summary) {
  SplitIndex s;
  std::vector<ShardEntry> by_number(static_cast<size_t>(meta.shard_count));
  std::vector<bool> seen(static_cast<size_t>(meta.shard_count), false);
  for (auto& r : results) {
    for (auto& [i, e] : r.shards) {
      CONVOY_CHECK(i >= 0 && i < meta.shard_count && !seen[static_cast<size_t>(i)],
                   "Shard " << i << " was reported twice or is out of range; this is a bug in the converter.");
      seen[static_cast<size_t>(i)] = true;
      by_number[static_cast<size_t>(i)] = e;
    }
    s.skipped.insert(s.skipped.end(), r.skipped.begin(), r.skipped.end());
    summary.sources += r.sources;
  }
  for (int64_t i = 0; i < meta.shard_count; ++i) {
    CONVOY_CHECK(seen[static_cast<size_t>(i)], "No rank reported shard " << i << " of " << meta.shard_count
                                                                           << "; the conversion is incomplete.");
    s.records += by_number[static_cast<size_t>(i)].records;
  }
  s.shards = std::move(by_number);
  s.height = meta.height, s.width = meta.width, s.channels = meta.channels;
  s.mean = meta.mean, s.std = meta.std;

  DatasetIndex index;
  std::vector<ShardEntry> old_shards;
  if (index_exists(out_dir)) {
    index = read_index(out_dir);
    CONVOY_CHECK(index.encoding == meta.encoding && index.classes == meta.classes,
                 out_dir << "/" << kIndexFile << " holds a dataset with other classes or another encoding; convert "
                         << "into a new folder.");
    if (index.splits.count(split)) old_shards = index.splits.at(split).shards;
  }
  index.encoding = meta.encoding;
  index.classes = meta.classes;
  summary.records = s.records;
  summary.shards = static_cast<int64_t>(s.shards.size());
  summary.skipped = s.skipped;
  std::set<std::string> keep;
  for (const auto& e : s.shards) keep.insert(e.name);
  index.splits[split] = std::move(s);
  write_index(out_dir, index);
  for (const auto& e : old_shards)
    if (!keep.count(e.name)) std::filesystem::remove(std::filesystem::path(out_dir) / e.name);
  return index;
}

// Rank 0, after a failed conversion: removes the shards this conversion wrote. They may have replaced
// shards of an earlier conversion of the same split, so that split is dropped from index.json rather
// than left pointing at a mix. Returns a note for the error message.
std::string discard_partial_split(const std::string& out_dir, const std::string& split,
                                  const std::vector<ConvertResult>& results) {
  std::string note;
  try {
    for (const auto& r : results)
      for (const auto& [i, e] : r.shards) std::filesystem::remove(std::filesystem::path(out_dir) / e.name);
    if (index_exists(out_dir)) {
      DatasetIndex index = read_index(out_dir);
      if (index.splits.erase(split) > 0) {
        if (index.splits.empty())
          std::filesystem::remove(std::filesystem::path(out_dir) / kIndexFile);
        else
          write_index(out_dir, index);
        note = "\n(the earlier conversion of split \"" + split + "\" was removed from " + kIndexFile +
               " because its shards may have been overwritten; convert it again)";
      }
    }
  } catch (const std::exception& e) {
    note = std::string("\n(cleaning up after the failure also failed: ") + e.what() + ")";
  }
  return note;
}

}  // namespace

ConvertSummary run_conversion(const std::string& out_dir, const std::string& split, const SplitMeta& meta,
                              const ConvertComm& comm, const std::function<void(ConvertResult&)>& convert_my_shards) {
  ConvertResult mine;
  try {
    convert_my_shards(mine);
  } catch (const std::exception& e) {
    mine.error = e.what();
  }
  const std::vector<std::string> all = comm.gather(serialize(mine));
  ConvertSummary summary;
  summary.split = split;
  std::string outcome;  // rank 0: "" on success, else the error; broadcast to every rank
  if (comm.rank == 0) {
    std::vector<ConvertResult> results;
    for (const auto& s : all) results.push_back(parse_convert_result(s));
    for (size_t r = 0; r < results.size(); ++r)
      if (!results[r].error.empty())
        outcome += (outcome.empty() ? "" : "\n") + ("rank " + std::to_string(r) + ": " + results[r].error);
    if (outcome.empty()) {
      try {
        write_split_index(out_dir, split, meta, results, summary);
      } catch (const std::exception& e) {
        outcome = e.what();
      }
    }
    if (!outcome.empty()) outcome += discard_partial_split(out_dir, split, results);
  }
  nlohmann::json status = {{"error", outcome},
                           {"records", summary.records},
                           {"shards", summary.shards},
                           {"sources", summary.sources}};
  nlohmann::json skipped = nlohmann::json::array();
  for (const auto& k : summary.skipped) skipped.push_back({{"file", k.file}, {"reason", k.reason}});
  status["skipped"] = skipped;
  const auto shared = nlohmann::json::parse(comm.broadcast(status.dump()));
  const std::string error = shared.at("error").get<std::string>();
  CONVOY_CHECK(error.empty(), "The conversion of split \"" << split << "\" into " << out_dir
                                                           << " failed; index.json was not updated:\n"
                                                           << error);
  summary.records = shared.at("records").get<int64_t>();
  summary.shards = shared.at("shards").get<int64_t>();
  summary.sources = shared.at("sources").get<int64_t>();
  summary.skipped.clear();
  for (const auto& k : shared.at("skipped"))
    summary.skipped.push_back({k.at("file").get<std::string>(), k.at("reason").get<std::string>()});
  return summary;
}

}  // namespace convoy::datasets
