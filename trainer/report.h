// The scaling-efficiency report (`convoy report`): reads the runs launch/scaling.sh collects (one folder
// per rank count: run.json, bench.json or metrics.jsonl, timelines, allreduce.jsonl) and turns them into
// numbers: throughput, speedup and efficiency against the smallest run, a per-step breakdown, every
// gradient bucket's all-reduce bandwidth against the link's measured peak, and how much of the
// communication the backward pass hid. Every number comes from the runs; report.json keeps, per run,
// the commands that produced it. Plots are drawn from report.json by tools/report_plots.py (matplotlib).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace convoy::trainer {

// One JSON object per non-empty line (metrics.jsonl, bench allreduce --json); throws naming the file and line.
std::vector<nlohmann::json> read_json_lines(const std::string& path);
// v with `digits` decimals, as the report's tables print numbers.
std::string fixed(double v, int digits);

struct Interval {
  double start = 0, end = 0;
};
// The share of the total length of `a` that lies inside the union of `b` (0 when a is empty).
double covered_share(std::vector<Interval> a, std::vector<Interval> b);

struct BucketStat {
  int index = 0;
  double bytes = 0, seconds = 0;  // median over the steps
  double algbw_GBps = 0, busbw_GBps = 0;
};

struct RunSummary {
  std::string dir;
  nlohmann::json manifest;  // run.json as the driver wrote it
  int ranks = 1, nodes = 1;
  std::string workload;     // bench | train
  double images_per_s = 0, step_ms = 0;
  // Per step, ms: the compute passes, communication backward did not hide, data waits (train only),
  // the per-step vote and optimizer, and what is left (loss, casts, timing gaps).
  double forward_ms = 0, backward_ms = 0, exposed_comm_ms = 0, data_ms = 0, optimizer_ms = 0, other_ms = 0;
  std::vector<BucketStat> buckets;  // rank 0's timeline
  double comm_ms = 0;               // all-reduce time per step on the communication thread
  double overlap = -1;              // share of it under a backward pass (-1: no timeline)
  double link_peak_busbw_GBps = 0;  // `bench allreduce`'s bus bandwidth at its largest message (0: none)
  std::string link_peak_at;         // the message size it was measured at
  std::vector<double> link_bytes_sent;  // emulated nodes: bytes each node sent over its link in the workload
};

// One run folder; throws naming the folder and the file when something is missing or malformed.
RunSummary read_run(const std::string& dir);

// The report of several runs (sorted by rank count): per run its summary, speedup and efficiency against
// the smallest, and the ideal; throws if the runs mix workloads or scaling modes.
nlohmann::json make_report(std::vector<RunSummary> runs);
// report.md from report.json; `plots` lists the plot files (relative to the report) to show.
std::string report_markdown(const nlohmann::json& report, const std::vector<std::string>& plots);

}  // namespace convoy::trainer
