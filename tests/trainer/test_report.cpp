// The scaling report's arithmetic on run folders written here by hand (what launch/scaling.sh writes):
// interval overlap, per-bucket medians from a timeline, the link's peak from bench allreduce, speedup
// and efficiency against the smallest run, the breakdown, and errors that name the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "tests/trainer/fixtures.h"
#include "trainer/report.h"

namespace convoy::trainer {
namespace {

using nlohmann::json;

TEST(Report, CoveredShareIsTheOverlapWithTheUnion) {
  // [0, 10] under [2, 4] u [3, 6] u [8, 12]: 2..6 and 8..10, 6 of 10.
  EXPECT_DOUBLE_EQ(covered_share({{0, 10}}, {{8, 12}, {2, 4}, {3, 6}}), 0.6);
  EXPECT_DOUBLE_EQ(covered_share({{0, 1}, {5, 6}}, {{0, 10}}), 1.0);
  EXPECT_DOUBLE_EQ(covered_share({{0, 1}}, {{2, 3}}), 0.0);
  EXPECT_DOUBLE_EQ(covered_share({}, {{0, 1}}), 0.0);
  EXPECT_DOUBLE_EQ(covered_share({{0, 4}}, {{1, 1.5}, {3, 9}}), 1.5 / 4);
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// A run folder: ranks, images/s, and the step's parts; its timeline has two steps of one bucket (the
// all-reduce half under backward) and an optimizer span per step.
std::string run_folder(const std::string& root, int ranks, double ips, const std::string& workload = "bench") {
  const std::string dir = root + "/n" + std::to_string(ranks);
  std::filesystem::create_directories(dir);
  write(dir + "/run.json", json{{"ranks", ranks}, {"nodes", ranks}, {"ranks_per_node", 1}, {"scaling", "weak"},
                                {"workload", workload}, {"batch_per_rank", 32}, {"global_batch", 32 * ranks},
                                {"launcher", "emulated"}, {"link_rate", "1gbit"},
                                {"link_bytes_sent", ranks > 1 ? json::array({2.5e6, 2.4e6}) : json::array()},
                                {"cpu_isa", "avx2"}, {"date", "2026-12-01"},
                                {"commands", {"convoy bench train --ranks " + std::to_string(ranks)}}}
                               .dump());
  write(dir + "/bench.json", json{{"images_per_s", ips}, {"ms_median", 9.5}, {"ms_mean", 10.0}, {"forward_ms", 3.0},
                                  {"backward_ms", 5.0}, {"exposed_comm_ms", 1.0}, {"vote_ms", 0.25}}
                                 .dump());
  json events = json::array();
  for (int s = 0; s < 2; ++s) {
    const double t0 = s * 10000.0;  // microseconds
    events.push_back({{"ph", "X"}, {"cat", "backward"}, {"name", "fc"}, {"ts", t0}, {"dur", 4000.0}});
    events.push_back({{"ph", "X"}, {"cat", "communication"}, {"name", "all-reduce bucket 0"}, {"ts", t0 + 2000},
                      {"dur", 4000.0 + 1000 * s},
                      {"args", {{"bytes", 1e6}, {"algbw_GBps", 0.25 - 0.05 * s}, {"busbw_GBps", 0.25 - 0.05 * s}}}});
    events.push_back({{"ph", "X"}, {"cat", "optimizer"}, {"name", "optimizer"}, {"ts", t0 + 7000}, {"dur", 500.0}});
  }
  write(dir + "/timeline.rank0.json", json{{"traceEvents", events}}.dump());
  if (ranks > 1)
    write(dir + "/allreduce.jsonl", "{\"bytes\":1048576,\"raw_busbw_GBps\":0.118}\n{\"bytes\":65536,\"raw_busbw_GBps\":0.3}\n");
  return dir;
}

TEST(Report, SpeedupEfficiencyBreakdownAndBucketsFromTheRuns) {
  const std::string root = test::temp_dir("report");
  const RunSummary two = read_run(run_folder(root, 2, 180));
  EXPECT_DOUBLE_EQ(two.step_ms, 10.0);                 // the mean: the parts below are means
  EXPECT_DOUBLE_EQ(two.exposed_comm_ms, 1.25);         // with the vote
  EXPECT_DOUBLE_EQ(two.optimizer_ms, 0.5);             // from the timeline
  EXPECT_DOUBLE_EQ(two.other_ms, 10.0 - 3 - 5 - 1.25 - 0.5);
  ASSERT_EQ(two.buckets.size(), 1u);
  EXPECT_DOUBLE_EQ(two.buckets[0].bytes, 1e6);
  EXPECT_DOUBLE_EQ(two.buckets[0].seconds, 4.5e-3);    // median of 4 and 5 ms
  EXPECT_DOUBLE_EQ(two.buckets[0].busbw_GBps, 0.225);
  EXPECT_DOUBLE_EQ(two.comm_ms, 4.5);                  // all-reduce time per step
  EXPECT_NEAR(two.overlap, (2.0 + 2.0) / 9.0, 1e-12);  // 2 of 4 ms, then 2 of 5 ms under backward
  EXPECT_DOUBLE_EQ(two.link_peak_busbw_GBps, 0.118);
  EXPECT_EQ(two.link_peak_at, "1048576 bytes");

  const json report = make_report({two, read_run(run_folder(root, 1, 100))});
  ASSERT_EQ(report["runs"].size(), 2u);
  EXPECT_EQ(report["runs"][0]["ranks"], 1);  // sorted by rank count
  EXPECT_DOUBLE_EQ(report["runs"][1]["speedup"].get<double>(), 1.8);
  EXPECT_DOUBLE_EQ(report["runs"][1]["efficiency"].get<double>(), 0.9);
  const std::string md = report_markdown(report, {"throughput.png"});
  EXPECT_NE(md.find("| 2 | 2 | emulated @ 1gbit | 32 | 180.0 | 1.80 | 2 | 90.0 % |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 2 | 2 | 1gbit | 2.5 2.4 |"), std::string::npos) << md;  // the inter-node traffic
  EXPECT_NE(md.find("convoy bench train --ranks 2"), std::string::npos) << md;
  EXPECT_NE(md.find("![throughput.png](throughput.png)"), std::string::npos) << md;
}

TEST(Report, RefusesMixedRunsAndNamesWhatIsMissing) {
  const std::string root = test::temp_dir("report-bad");
  const RunSummary bench = read_run(run_folder(root, 1, 100));
  const std::string other = run_folder(root + "/t", 2, 100, "train");
  try {
    read_run(other);  // a train run without metrics.jsonl
    FAIL() << "a train run without metrics was read";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find(other + "/metrics.jsonl"), std::string::npos) << e.message();
  }
  write(other + "/metrics.jsonl", "{\"type\":\"step\",\"data_wait_share\":0.5}\n{\"type\":\"step\",\"data_wait_share\":0.1,"
                                  "\"comm_wait_share\":0.2}\n{\"type\":\"epoch\",\"train_images_per_s\":640}\n");
  const RunSummary train = read_run(other);
  EXPECT_DOUBLE_EQ(train.step_ms, 100.0);  // 64 images at 640 images/s
  EXPECT_DOUBLE_EQ(train.data_ms, 10.0);   // the first window (start-up) left out
  EXPECT_DOUBLE_EQ(train.exposed_comm_ms, 20.0);
  EXPECT_THROW(make_report({bench, train}), Error);
  EXPECT_THROW(make_report({}), Error);
  write(root + "/n1/bench.json", "{\"images_per_s\": ");
  try {
    read_run(root + "/n1");
    FAIL() << "truncated JSON was read";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find(root + "/n1/bench.json is not valid JSON"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace convoy::trainer
