#include "trainer/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/error.h"

namespace convoy::trainer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path);
  CONVOY_CHECK(in, "cannot read " << path << ": is this a folder launch/scaling.sh wrote?");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    CONVOY_FAIL(path << " is not valid JSON: " << e.what());
  }
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

template <typename T>
T field(const json& j, const char* key, const std::string& where) {
  CONVOY_CHECK(j.contains(key), where << " has no \"" << key << "\"");
  try {
    return j.at(key).get<T>();
  } catch (const json::exception& e) {
    CONVOY_FAIL(where << ": \"" << key << "\" is not what it should be: " << e.what());
  }
}

// Rank 0's timeline: bucket all-reduces (median per bucket), all-reduce time per step, the share of it
// under backward passes, backward and optimizer time per step.
struct TimelineStats {
  std::vector<BucketStat> buckets;
  double comm_ms = 0, overlap = -1, backward_ms = 0, optimizer_ms = 0;
  bool present = false;
};

TimelineStats read_timeline(const std::string& path) {
  TimelineStats t;
  if (!fs::exists(path)) return t;
  const json j = read_json(path);
  CONVOY_CHECK(j.contains("traceEvents") && j["traceEvents"].is_array(), path << " is not a Chrome trace");
  std::vector<Interval> comm, backward;
  std::map<int, std::vector<BucketStat>> per_bucket;
  double comm_s = 0, backward_s = 0, optimizer_s = 0;
  int steps = 0;
  for (const json& e : j["traceEvents"]) {
    if (e.value("ph", "") != "X") continue;
    const std::string cat = e.value("cat", ""), name = e.value("name", "");
    const double start = e.value("ts", 0.0) * 1e-6, dur = e.value("dur", 0.0) * 1e-6;
    if (cat == "communication") {
      comm.push_back({start, start + dur});
      comm_s += dur;
      const std::string prefix = "all-reduce bucket ";
      if (name.rfind(prefix, 0) == 0 && e.contains("args")) {
        const json& a = e["args"];
        BucketStat b;
        b.index = std::stoi(name.substr(prefix.size()));
        b.bytes = a.value("bytes", 0.0), b.seconds = dur;
        b.algbw_GBps = a.value("algbw_GBps", 0.0), b.busbw_GBps = a.value("busbw_GBps", 0.0);
        per_bucket[b.index].push_back(b);
      }
    } else if (cat == "backward") {
      backward.push_back({start, start + dur});
      backward_s += dur;
    } else if (cat == "optimizer") {
      optimizer_s += dur;
      ++steps;
    }
  }
  t.present = true;
  if (steps == 0) return t;
  t.comm_ms = comm_s * 1e3 / steps, t.backward_ms = backward_s * 1e3 / steps, t.optimizer_ms = optimizer_s * 1e3 / steps;
  if (!comm.empty()) t.overlap = covered_share(comm, backward);
  for (auto& [index, all] : per_bucket) {
    BucketStat m;
    m.index = index, m.bytes = all.front().bytes;
    std::vector<double> s, alg, bus;
    for (const BucketStat& b : all) s.push_back(b.seconds), alg.push_back(b.algbw_GBps), bus.push_back(b.busbw_GBps);
    m.seconds = median(s), m.algbw_GBps = median(alg), m.busbw_GBps = median(bus);
    t.buckets.push_back(m);
  }
  return t;
}

json bucket_json(const BucketStat& b) {
  return {{"index", b.index}, {"bytes", b.bytes}, {"ms", b.seconds * 1e3}, {"algbw_GBps", b.algbw_GBps},
          {"busbw_GBps", b.busbw_GBps}};
}

}  // namespace

std::vector<json> read_json_lines(const std::string& path) {
  std::ifstream in(path);
  CONVOY_CHECK(in, "cannot read " << path);
  std::vector<json> v;
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    try {
      v.push_back(json::parse(line));
    } catch (const json::exception& e) {
      CONVOY_FAIL(path << " line " << line_no << " is not valid JSON: " << e.what());
    }
  }
  return v;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

double covered_share(std::vector<Interval> a, std::vector<Interval> b) {
  auto by_start = [](const Interval& x, const Interval& y) { return x.start < y.start; };
  std::sort(b.begin(), b.end(), by_start);
  std::vector<Interval> merged;  // the union of b, as disjoint sorted intervals
  for (const Interval& i : b) {
    if (i.end <= i.start) continue;
    if (!merged.empty() && i.start <= merged.back().end)
      merged.back().end = std::max(merged.back().end, i.end);
    else
      merged.push_back(i);
  }
  double total = 0, covered = 0;
  for (const Interval& i : a) {
    if (i.end <= i.start) continue;
    total += i.end - i.start;
    auto it = std::upper_bound(merged.begin(), merged.end(), Interval{i.start, i.start}, by_start);
    if (it != merged.begin()) --it;
    for (; it != merged.end() && it->start < i.end; ++it)
      covered += std::max(0.0, std::min(i.end, it->end) - std::max(i.start, it->start));
  }
  return total > 0 ? covered / total : 0;
}

RunSummary read_run(const std::string& dir) {
  RunSummary r;
  r.dir = dir;
  const std::string manifest = dir + "/run.json";
  r.manifest = read_json(manifest);
  r.ranks = field<int>(r.manifest, "ranks", manifest);
  r.nodes = field<int>(r.manifest, "nodes", manifest);
  r.workload = field<std::string>(r.manifest, "workload", manifest);
  CONVOY_CHECK(r.ranks >= 1 && r.nodes >= 1, manifest << ": ranks and nodes must be positive");
  const TimelineStats tl = read_timeline(dir + "/timeline.rank0.json");
  if (r.workload == "bench") {
    const std::string path = dir + "/bench.json";
    const json b = read_json(path);
    r.images_per_s = field<double>(b, "images_per_s", path);
    // The breakdown's passes are means over the timed steps, so the step is too (throughput: the median's).
    r.step_ms = b.value("ms_mean", field<double>(b, "ms_median", path));
    r.forward_ms = b.value("forward_ms", 0.0);
    r.backward_ms = b.value("backward_ms", 0.0);
    // The vote is communication the step waits for as well.
    r.exposed_comm_ms = b.value("exposed_comm_ms", 0.0) + b.value("vote_ms", 0.0);
    r.optimizer_ms = tl.optimizer_ms;
  } else if (r.workload == "train") {
    const std::string path = dir + "/metrics.jsonl";
    std::vector<double> data, comm;
    double epoch_ips = 0;
    bool first = true;
    for (const json& j : read_json_lines(path)) {
      if (j.value("type", "") == "step") {
        if (first) {  // the first window holds the start-up
          first = false;
          continue;
        }
        data.push_back(j.value("data_wait_share", 0.0));
        comm.push_back(j.value("comm_wait_share", 0.0));
      } else if (j.value("type", "") == "epoch") {
        epoch_ips = j.value("train_images_per_s", 0.0);
      }
    }
    CONVOY_CHECK(epoch_ips > 0, path << " has no finished epoch: train at least one");
    r.images_per_s = epoch_ips;
    const double global_batch = field<double>(r.manifest, "global_batch", manifest);
    r.step_ms = global_batch / epoch_ips * 1e3;
    r.data_ms = median(data) * r.step_ms;
    r.exposed_comm_ms = median(comm) * r.step_ms;
    r.backward_ms = tl.backward_ms;
    r.optimizer_ms = tl.optimizer_ms;
    // Forward, the loss and the step's bookkeeping: what the rest leaves.
    r.forward_ms = std::max(0.0, r.step_ms - r.data_ms - r.exposed_comm_ms - r.backward_ms - r.optimizer_ms);
  } else {
    CONVOY_FAIL(manifest << ": unknown workload '" << r.workload << "' (bench or train)");
  }
  r.other_ms = std::max(0.0, r.step_ms - r.forward_ms - r.backward_ms - r.exposed_comm_ms - r.data_ms - r.optimizer_ms);
  r.buckets = tl.buckets;
  r.comm_ms = tl.comm_ms;
  if (r.manifest.contains("link_bytes_sent") && r.manifest["link_bytes_sent"].is_array())
    for (const json& v : r.manifest["link_bytes_sent"]) r.link_bytes_sent.push_back(v.get<double>());
  r.overlap = tl.present ? tl.overlap : -1;
  const std::string ar = dir + "/allreduce.jsonl";
  // The link's sustained peak: the largest message's bus bandwidth (small ones can pass a token bucket's
  // burst, or a cache, faster than the link carries data for long).
  if (fs::exists(ar)) {
    long long largest = -1;
    for (const json& j : read_json_lines(ar))
      if (j.value("bytes", 0LL) > largest) {
        largest = j.value("bytes", 0LL);
        r.link_peak_busbw_GBps = j.value("raw_busbw_GBps", 0.0);
        r.link_peak_at = std::to_string(largest) + " bytes";
      }
  }
  return r;
}

json make_report(std::vector<RunSummary> runs) {
  CONVOY_CHECK(!runs.empty(), "a report needs at least one run folder");
  std::sort(runs.begin(), runs.end(), [](const RunSummary& a, const RunSummary& b) { return a.ranks < b.ranks; });
  const RunSummary& base = runs.front();
  for (const RunSummary& r : runs) {
    CONVOY_CHECK(r.workload == base.workload, r.dir << " ran the " << r.workload << " workload, " << base.dir
                                                   << " the " << base.workload << " one: report them apart");
    CONVOY_CHECK(r.manifest.value("scaling", "") == base.manifest.value("scaling", ""),
                 r.dir << " is " << r.manifest.value("scaling", "?") << " scaling, " << base.dir << " "
                       << base.manifest.value("scaling", "?") << ": report them apart");
  }
  json report = {{"scaling", base.manifest.value("scaling", "")}, {"workload", base.workload},
                 {"baseline_ranks", base.ranks}, {"runs", json::array()}};
  for (const RunSummary& r : runs) {
    const double ideal = static_cast<double>(r.ranks) / base.ranks;
    const double speedup = r.images_per_s / base.images_per_s;
    json buckets = json::array();
    for (const BucketStat& b : r.buckets) buckets.push_back(bucket_json(b));
    report["runs"].push_back({{"dir", r.dir},
                              {"ranks", r.ranks},
                              {"nodes", r.nodes},
                              {"launcher", r.manifest.value("launcher", "")},
                              {"link_rate", r.manifest.value("link_rate", json())},
                              {"batch_per_rank", r.manifest.value("batch_per_rank", 0)},
                              {"global_batch", r.manifest.value("global_batch", 0)},
                              {"images_per_s", r.images_per_s},
                              {"speedup", speedup},
                              {"ideal_speedup", ideal},
                              {"efficiency", speedup / ideal},
                              {"step_ms", r.step_ms},
                              {"breakdown_ms",
                               {{"forward", r.forward_ms},
                                {"backward", r.backward_ms},
                                {"exposed communication", r.exposed_comm_ms},
                                {"data wait", r.data_ms},
                                {"optimizer", r.optimizer_ms},
                                {"other", r.other_ms}}},
                              {"allreduce_ms_per_step", r.comm_ms},
                              {"overlap", r.overlap < 0 ? json() : json(r.overlap)},
                              {"buckets", buckets},
                              {"link_peak_busbw_GBps", r.link_peak_busbw_GBps > 0 ? json(r.link_peak_busbw_GBps) : json()},
                              {"link_peak_at", r.link_peak_at},
                              {"link_bytes_sent", r.link_bytes_sent},
                              {"cpu_isa", r.manifest.value("cpu_isa", "")},
                              {"date", r.manifest.value("date", "")},
                              {"commands", r.manifest.value("commands", json::array())}});
  }
  return report;
}

std::string report_markdown(const json& report, const std::vector<std::string>& plots) {
  std::ostringstream md;
  const json& runs = report["runs"];
  md << "# Scaling report\n\n";
  md << "- **Workload:** " << report["workload"].get<std::string>() << " (" << report["scaling"].get<std::string>()
     << " scaling: " << (report["scaling"] == "weak" ? "the per-rank batch is fixed" : "the global batch is fixed")
     << "). Speedup and efficiency are against the " << report["baseline_ranks"].get<int>() << "-rank run.\n";
  md << "- **Machine:** " << runs[0].value("cpu_isa", "") << "; runs of " << runs[0].value("date", "") << ".\n";
  md << "- Every number below comes from the runs' own output; their commands are listed at the end.\n\n";
  md << "| ranks | nodes | where | batch/rank | images/s | speedup | ideal | efficiency | step ms (mean) | exposed comm ms | "
        "data wait ms | overlap |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const json& r : runs) {
    const json& b = r["breakdown_ms"];
    std::string where = r.value("launcher", "");
    if (!r["link_rate"].is_null()) where += " @ " + r["link_rate"].get<std::string>();
    md << "| " << r["ranks"].get<int>() << " | " << r["nodes"].get<int>() << " | " << where << " | "
       << r["batch_per_rank"].get<int>() << " | " << fixed(r["images_per_s"].get<double>(), 1) << " | "
       << fixed(r["speedup"].get<double>(), 2) << " | " << fixed(r["ideal_speedup"].get<double>(), 0) << " | "
       << fixed(100 * r["efficiency"].get<double>(), 1) << " % | " << fixed(r["step_ms"].get<double>(), 2) << " | "
       << fixed(b["exposed communication"].get<double>(), 2) << " | " << fixed(b["data wait"].get<double>(), 2) << " | "
       << (r["overlap"].is_null() ? std::string("-") : fixed(100 * r["overlap"].get<double>(), 0) + " %") << " |\n";
  }
  md << "\n**Per-step breakdown** (ms):\n\n| ranks | forward | backward | exposed communication | data wait | optimizer | "
        "other |\n|---|---|---|---|---|---|---|\n";
  for (const json& r : runs) {
    const json& b = r["breakdown_ms"];
    md << "| " << r["ranks"].get<int>();
    for (const char* k : {"forward", "backward", "exposed communication", "data wait", "optimizer", "other"})
      md << " | " << fixed(b[k].get<double>(), 2);
    md << " |\n";
  }
  bool any_link = false;
  for (const json& r : runs) any_link = any_link || !r["link_bytes_sent"].empty();
  if (any_link) {
    md << "\n**Inter-node traffic** (emulated nodes: bytes each node sent over its capped link during the workload, "
          "from the link's counters):\n\n| ranks | nodes | link | MB sent, per node |\n|---|---|---|---|\n";
    for (const json& r : runs) {
      if (r["link_bytes_sent"].empty()) continue;
      md << "| " << r["ranks"].get<int>() << " | " << r["nodes"].get<int>() << " | "
         << (r["link_rate"].is_null() ? std::string("-") : r["link_rate"].get<std::string>()) << " |";
      for (const json& b : r["link_bytes_sent"]) md << " " << fixed(b.get<double>() / 1e6, 1);
      md << " |\n";
    }
  }
  md << "\nExposed communication includes the per-step vote; *overlap* is the share of the all-reduce time on the "
        "communication thread that ran while a backward pass did (rank 0's timeline).\n";
  bool any_bucket = false;
  for (const json& r : runs) any_bucket = any_bucket || !r["buckets"].empty();
  if (any_bucket) {
    md << "\n**Gradient all-reduce per bucket** (medians over the steps; bus bandwidth = algbw × 2(n−1)/n), against "
          "the link's sustained peak (the bus bandwidth `convoy bench allreduce` measured beside the run at its largest "
          "message):\n\n"
          "| ranks | bucket | bytes | ms | algbw GB/s | busbw GB/s | link peak GB/s | share of peak |\n"
          "|---|---|---|---|---|---|---|---|\n";
    for (const json& r : runs)
      for (const json& b : r["buckets"]) {
        const bool peak = !r["link_peak_busbw_GBps"].is_null();
        md << "| " << r["ranks"].get<int>() << " | " << b["index"].get<int>() << " | "
           << static_cast<long long>(b["bytes"].get<double>()) << " | " << fixed(b["ms"].get<double>(), 3) << " | "
           << fixed(b["algbw_GBps"].get<double>(), 3) << " | " << fixed(b["busbw_GBps"].get<double>(), 3) << " | "
           << (peak ? fixed(r["link_peak_busbw_GBps"].get<double>(), 3) + " (" + r["link_peak_at"].get<std::string>() + ")"
                    : std::string("-"))
           << " | "
           << (peak ? fixed(100 * b["busbw_GBps"].get<double>() / r["link_peak_busbw_GBps"].get<double>(), 0) + " %"
                    : std::string("-"))
           << " |\n";
      }
  }
  if (!plots.empty()) {
    md << "\n";
    for (const std::string& p : plots) md << "![" << p << "](" << p << ")\n";
  }
  md << "\n## Commands\n\n";
  for (const json& r : runs) {
    md << "- " << r["ranks"].get<int>() << " ranks (`" << r["dir"].get<std::string>() << "`):\n";
    for (const json& c : r["commands"]) md << "  - `" << c.get<std::string>() << "`\n";
  }
  return md.str();
}

}  // namespace convoy::trainer
