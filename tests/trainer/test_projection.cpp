// The projection's pieces on numbers worked out by hand: fitting alpha and beta from all-reduce times,
// the ring and hierarchical all-reduce times, the replay of a step's buckets against its backward pass,
// and the cluster file's errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "tests/trainer/fixtures.h"
#include "trainer/projection.h"

namespace convoy::trainer {
namespace {

using nlohmann::json;

TEST(Projection, FitRecoversAlphaAndBetaOfAFlatRing) {
  // 2 ranks: t = 2 alpha + S / B with alpha = 50 us, B = 0.125 GB/s (1 Gbit/s).
  std::vector<json> lines;
  for (double s = 1 << 20; s <= 64 << 20; s *= 2)
    lines.push_back({{"ranks", 2}, {"bytes", s}, {"raw_us", (2 * 50e-6 + s / 0.125e9) * 1e6}});
  lines.push_back({{"ranks", 2}, {"bytes", 1024.0}, {"raw_us", 1.0}});  // below min_bytes: left out
  const Link l = fit_link(lines, 2, 1 << 20, "test.jsonl");
  EXPECT_NEAR(l.alpha_s, 50e-6, 1e-9);
  EXPECT_NEAR(l.bandwidth_Bps, 0.125e9, 1e3);
  EXPECT_NE(l.source.find("fitted from test.jsonl (7 sizes"), std::string::npos) << l.source;
  EXPECT_THROW(fit_link({lines[0]}, 2, 1 << 20, "one.jsonl"), Error);  // one size is no fit
  EXPECT_THROW(fit_link(lines, 4, 1 << 20, "test.jsonl"), Error);      // measured on 2 ranks, not 4
}

Cluster two_level() {
  Cluster c;
  c.workers_per_node = 4;
  c.intra = {1e-6, 100e9, "given"};
  c.inter = {10e-6, 10e9, "given"};
  return c;
}

TEST(Projection, RingAndHierarchicalAllReduceTimes) {
  const Cluster c = two_level();
  const double S = 100e6;
  EXPECT_EQ(allreduce_seconds(c, S, 1, Ring::flat), 0);
  // One node: a ring over shared links only.
  EXPECT_NEAR(allreduce_seconds(c, S, 4, Ring::flat), 2 * 3 * 1e-6 + 2.0 * 3 / 4 * S / 100e9, 1e-12);
  EXPECT_NEAR(allreduce_seconds(c, S, 4, Ring::hierarchical), allreduce_seconds(c, S, 4, Ring::flat), 1e-15);
  // 16 workers on 4 nodes. Flat: the slowest hop. Hierarchical: reduce + broadcast in the node, a ring of 4 leaders.
  EXPECT_NEAR(allreduce_seconds(c, S, 16, Ring::flat), 2 * 15 * 10e-6 + 2.0 * 15 / 16 * S / 10e9, 1e-12);
  const double in_node = 2 * (2 * 3 * 1e-6 + 2.0 * 3 / 4 * S / 100e9);
  EXPECT_NEAR(allreduce_seconds(c, S, 16, Ring::hierarchical), in_node + 2 * 3 * 10e-6 + 2.0 * 3 / 4 * S / 10e9, 1e-12);
}

Profile three_layers() {
  Profile p;
  p.batch = 32;
  p.forward_s = 0.010, p.rest_s = 0.002;
  p.backward_s = {0.004, 0.006, 0.010};  // layer 2 runs backward first
  p.buckets = {{1e6, 2}, {1e6, 0}};      // the first ready after layer 2, the second after layer 0
  return p;
}

TEST(Projection, BucketsOverlapTheBackwardThatRemains) {
  Cluster c;
  c.workers_per_node = 1;
  c.intra = {0, 1e12, ""};
  c.inter = {0, 1e9, ""};  // 2 workers: each 1 MB bucket takes 1 ms
  const Profile p = three_layers();
  const Projected one = project(c, p, 1, Ring::flat);
  EXPECT_NEAR(one.step_s, 0.032, 1e-12);
  EXPECT_NEAR(one.exposed_comm_s, 0, 1e-12);
  EXPECT_NEAR(one.efficiency, 1, 1e-12);
  // Bucket 0 ready at 20 ms, done at 21 ms, hidden under layers 1 and 0; bucket 1 ready at 30 ms, done at
  // 31 ms: 1 ms exposed (plus the vote's 2 x 16 bytes).
  const Projected two = project(c, p, 2, Ring::flat);
  EXPECT_NEAR(two.comm_s, 0.002, 1e-12);
  EXPECT_NEAR(two.exposed_comm_s, 0.001 + 16e-9, 1e-12);
  EXPECT_NEAR(two.step_s, 0.032 + 0.001 + 16e-9, 1e-12);
  EXPECT_NEAR(two.images_per_s, 64 / two.step_s, 1e-9);
  EXPECT_NEAR(two.efficiency, 0.032 / two.step_s, 1e-12);
  // A slow link: bucket 0 takes 15 ms and delays bucket 1 past its readiness: 20 + 15 + 15 - 30 exposed.
  c.inter.bandwidth_Bps = 1e6 / 0.015;
  EXPECT_NEAR(project(c, p, 2, Ring::flat).exposed_comm_s, 0.020 + 16 * 0.015 / 1e6, 1e-9);
}

TEST(Projection, ClusterFileAndProfile) {
  const std::string dir = test::temp_dir("projection");
  std::ofstream(dir + "/ar.jsonl") << "{\"ranks\":2,\"bytes\":1048576,\"raw_us\":8488.6}\n"
                                      "{\"ranks\":2,\"bytes\":4194304,\"raw_us\":33654.4}\n";
  std::ofstream(dir + "/c.yaml") << "name: test\nworkers_per_node: 1\nintra_node: {latency_us: 1, bandwidth_GBps: 10}\n"
                                    "inter_node: {fit: ar.jsonl}\nworkers: [1, 2]\ncompute: {profile: p.json}\n";
  const Cluster c = read_cluster(dir + "/c.yaml");
  EXPECT_EQ(c.name, "test");
  EXPECT_NEAR(c.inter.bandwidth_Bps, 0.125e9, 0.001e9);  // the two points lie on 1 Gbit/s
  EXPECT_EQ(c.profile, dir + "/p.json");
  std::ofstream(dir + "/p.json")
      << json{{"ranks", 1}, {"model", "m"}, {"batch", 32}, {"ms_mean", 32.0}, {"forward_ms", 10.0},
              {"layers", {{{"bwd_ms", 4.0}}, {{"bwd_ms", 6.0}}, {{"bwd_ms", 10.0}}}},
              {"buckets", {{{"bytes", 1e6}, {"ready_after_layer", 2}}, {{"bytes", 1e6}, {"ready_after_layer", 0}}}}}
             .dump()
      << "\n";
  const Profile p = read_profile(c.profile);
  EXPECT_NEAR(p.rest_s, 0.002, 1e-12);
  ASSERT_EQ(p.buckets.size(), 2u);
  const Profile fast = read_profile(c.profile, 3200, 64);  // 64 images at 3,200/s: a 20 ms step
  EXPECT_NEAR(fast.forward_s + fast.rest_s + fast.backward_s[0] + fast.backward_s[1] + fast.backward_s[2], 0.020, 1e-12);
  EXPECT_EQ(fast.batch, 64);
  const json j = projection_json(c, p);
  ASSERT_EQ(j["rows"].size(), 4u);  // 1 and 2 workers, flat and hierarchical
  EXPECT_NE(projection_markdown(j).find("fitted from"), std::string::npos);
  std::ofstream(dir + "/bad.yaml") << "name: x\nintra_node: {latency_us: 1}\n";
  try {
    read_cluster(dir + "/bad.yaml");
    FAIL() << "a link without bandwidth was read";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("bad.yaml: intra_node needs latency_us and bandwidth_GBps"), std::string::npos)
        << e.message();
  }
}

}  // namespace
}  // namespace convoy::trainer
