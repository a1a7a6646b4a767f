#include "datasets/inspect.h"

#include <algorithm>
#include <filesystem>
#include <memory>

#include "common/error.h"
#include "datasets/jpeg.h"
#include "datasets/rng.h"
#include "datasets/sha256.h"
#include "datasets/shard_reader.h"

namespace convoy::datasets {

InspectReport inspect_dataset(const std::string& dir, const InspectOptions& o) {
  InspectReport report;
  report.index = read_index(dir);
  const DatasetIndex& index = report.index;
  JpegDecoder decoder;
  for (const auto& [name, split] : index.splits) {
    SplitReport r;
    r.split = name;
    r.records = split.records;
    r.shards = static_cast<int64_t>(split.shards.size());
    r.per_class.assign(static_cast<size_t>(index.num_classes()), 0);
    r.skipped_at_conversion = static_cast<int64_t>(split.skipped.size());
    std::vector<std::unique_ptr<ShardReader>> readers;
    for (const ShardEntry& e : split.shards) {
      const std::string path = (std::filesystem::path(dir) / e.name).string();
      r.bytes += e.bytes;
      if (!std::filesystem::exists(path)) {
        report.problems.push_back("Shard " + path + " is listed in index.json but missing.");
        continue;
      }
      if (o.verify_checksums) {
        const std::string sha = sha256_file(path);
        if (sha != e.sha256)
          report.problems.push_back("Shard " + path + ": checksum mismatch (SHA-256 " + sha + ", index.json says " +
                                    e.sha256 + "); the file changed after conversion: copy or convert it again.");
        else
          ++r.checksums_verified;
      }
      std::unique_ptr<ShardReader> reader;
      try {
        reader = std::make_unique<ShardReader>(path);
      } catch (const Error& err) {
        report.problems.push_back(err.message());
        continue;
      }
      const ShardHeader& h = reader->header();
      if (reader->size() != e.records)
        report.problems.push_back("Shard " + path + " has " + std::to_string(reader->size()) +
                                  " records but index.json says " + std::to_string(e.records) + ".");
      if (h.split != name || h.encoding != index.encoding || h.num_classes != index.num_classes())
        report.problems.push_back("Shard " + path + " (split " + h.split + ", " + encoding_name(h.encoding) + ", " +
                                  std::to_string(h.num_classes) + " classes) disagrees with index.json.");
      for (int32_t l : reader->labels())
        if (l >= 0 && l < index.num_classes()) ++r.per_class[static_cast<size_t>(l)];
      if (!reader->checksummed()) ++r.unchecked_shards;
      if (o.verify_checksums && reader->checksummed()) {  // every record against its own checksum
        constexpr int kListed = 5;
        int64_t damaged = 0;
        std::vector<uint8_t> record;
        for (int64_t i = 0; i < reader->size(); ++i) {
          record.resize(static_cast<size_t>(reader->record_bytes(i)));
          if (reader->read_checked(i, record.data())) {
            ++r.records_verified;
          } else if (++damaged <= kListed) {
            report.problems.push_back(reader->mismatch(i, record.data()) + ".");
          }
        }
        if (damaged > kListed)
          report.problems.push_back("Shard " + path + ": " + std::to_string(damaged) + " damaged records in all (" +
                                    std::to_string(kListed) + " listed).");
      }
      readers.push_back(std::move(reader));
    }
    // Decode N records chosen at random among the shards that opened.
    int64_t available = 0;
    for (const auto& rd : readers) available += rd->size();
    Rng rng(o.seed, Stream::sample, 0, std::hash<std::string>{}(name));
    std::vector<uint8_t> bytes;
    for (int64_t k = 0; k < std::min(o.decode, available); ++k) {
      int64_t g = static_cast<int64_t>(rng.below(static_cast<uint64_t>(available)));
      size_t s = 0;
      while (g >= readers[s]->size()) g -= readers[s++]->size();
      const ShardReader& rd = *readers[s];
      try {
        bytes.resize(static_cast<size_t>(rd.record_bytes(g)));
        rd.read(g, bytes.data());
      } catch (const Error& err) {
        report.problems.push_back(err.message());
        continue;
      }
      if (index.encoding == Encoding::jpeg) {
        const std::string why = decoder.check(bytes.data(), bytes.size());
        if (!why.empty()) {
          report.problems.push_back("Cannot decode " + rd.where(g) + ": " + why + ".");
          continue;
        }
        const JpegInfo info = decoder.header(bytes.data(), bytes.size());
        if (r.decoded == 0) r.min_width = r.max_width = info.width, r.min_height = r.max_height = info.height;
        r.min_width = std::min<int64_t>(r.min_width, info.width), r.max_width = std::max<int64_t>(r.max_width, info.width);
        r.min_height = std::min<int64_t>(r.min_height, info.height);
        r.max_height = std::max<int64_t>(r.max_height, info.height);
      } else {
        r.min_width = r.max_width = rd.header().width;
        r.min_height = r.max_height = rd.header().height;
      }
      ++r.decoded;
    }
    report.splits.push_back(std::move(r));
  }
  return report;
}

}  // namespace convoy::datasets
