// The projection's pieces on numbers worked out by hand: fitting alpha and beta from all-reduce times,
// the ring and hierarchical all-reduce times, the replay of a step's buckets against its backward pass
// (with and without cores shared by compute and communication), and the cluster file's errors.
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
  // Over a token bucket small messages pass at line rate: a range of sizes fits the rest alone.
  lines.push_back({{"ranks", 2}, {"bytes", 128.0 * (1 << 20)}, {"raw_us", 1.0}});
  const Link ranged = fit_link(lines, 2, 1 << 20, "test.jsonl", 64 << 20);
  EXPECT_NEAR(ranged.bandwidth_Bps, 0.125e9, 1e3);
  EXPECT_NE(ranged.source.find(">= 1048576 and <= 67108864 bytes"), std::string::npos) << ranged.source;
  // Times under the line's extension to 0 bytes (alpha < 0): the best line with alpha = 0 is through the origin.
  const std::vector<json> burst = {{{"ranks", 2}, {"bytes", 8e6}, {"raw_us", 50e3}}, {{"ranks", 2}, {"bytes", 16e6}, {"raw_us", 110e3}}};
  const Link origin = fit_link(burst, 2, 1 << 20, "burst.jsonl");
  EXPECT_EQ(origin.alpha_s, 0);
  EXPECT_NEAR(origin.bandwidth_Bps, (8e6 * 8e6 + 16e6 * 16e6) / (8e6 * 0.05 + 16e6 * 0.11), 1);
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

TEST(Projection, SharedCoresSlowTheComputeAndCpuBoundAllReduces) {
  Cluster c;
  c.workers_per_node = 1;
  c.intra = {0, 1e12, ""};
  c.inter = {0, 1e9, ""};  // 2 workers: each 1 MB bucket takes 1 ms alone
  c.cpu.enabled = true;
  c.cpu.cores_per_worker = 1, c.cpu.compute_threads = 1, c.cpu.comm_busy = 1;  // each thread gets half the core
  const Profile p = three_layers();
  const double vote = 16e-9;
  // An all-reduce that needs no CPU (the link sets its pace): bucket 0 runs 20-21 ms at full speed while
  // layer 1 runs at half, 0.5 of its 6 ms; layers 1 and 0 end at 30.5 ms, bucket 1 ends at 31.5 ms.
  c.cpu.comm_cpu_s_per_byte = 0;
  Projected r = project(c, p, 2, Ring::flat);
  EXPECT_NEAR(r.step_s, 0.0305 + 0.002 + 0.001 + vote, 1e-12);
  EXPECT_NEAR(r.exposed_comm_s, 0.001 + vote, 1e-12);
  EXPECT_NEAR(r.efficiency, 0.032 / r.step_s, 1e-12);
  // One that needs a whole core (1 ns per byte sent: 1 MB in 1 ms): with half of one, bucket 0 takes 2 ms
  // (20-22) and layer 1 gets 1 ms done meanwhile; backward ends at 31 ms, bucket 1 runs alone to 32 ms.
  c.cpu.comm_cpu_s_per_byte = 1e-9;
  r = project(c, p, 2, Ring::flat);
  EXPECT_NEAR(r.step_s, 0.031 + 0.002 + 0.001 + vote, 1e-12);
  EXPECT_NEAR(r.comm_s, 0.002, 1e-12);  // the all-reduces' own times, alone
  // Two cores per worker: one each, nothing slows.
  c.cpu.cores_per_worker = 2;
  EXPECT_NEAR(project(c, p, 2, Ring::flat).step_s, 0.032 + 0.001 + vote, 1e-12);
  // Every worker on one machine of 2 cores: 1 core each at 2 workers, as above.
  c.cpu.cores_per_worker = 0, c.cpu.cores_per_machine = 2;
  EXPECT_NEAR(project(c, p, 2, Ring::flat).step_s, 0.031 + 0.002 + 0.001 + vote, 1e-12);
  // 4 workers on those 2 cores: half a core each (the profile is the compute's at that half). Bucket 0
  // takes 1.5 ms alone on the ring of 4 and needs a core for it: a quarter core makes it 6 ms (20-26),
  // meanwhile layer 1 gets 3 of its 6 ms; it ends at 29, layer 0 at 33; bucket 1 alone (a half core) 33-36.
  EXPECT_NEAR(project(c, p, 4, Ring::flat).step_s, 0.033 + 0.002 + 0.003 + allreduce_seconds(c, 16, 4, Ring::flat), 1e-12);
}

TEST(Projection, CpuFiguresFromBenchAllReduce) {
  // 2 ranks send the message once each; their thread's CPU is 2 us + 1.5 ns per byte, for times twice that.
  std::vector<json> lines;
  for (double s = 1 << 20; s <= 16 << 20; s *= 2)
    lines.push_back({{"ranks", 2}, {"bytes", s}, {"raw_us", 2 * (2 + 1.5e-3 * s)}, {"raw_cpu_us", 2 + 1.5e-3 * s}});
  EXPECT_NEAR(fit_comm_cpu(lines, 1 << 20, "t.jsonl"), 1.5e-9, 1e-15);
  EXPECT_NEAR(fit_comm_busy(lines, 1 << 20, "t.jsonl"), 0.5, 1e-12);
  lines.push_back({{"ranks", 2}, {"bytes", 32.0 * (1 << 20)}, {"raw_us", 1.0}});  // measured before the CPU figures
  try {
    fit_comm_busy(lines, 1 << 20, "old.jsonl");
    FAIL() << "lines without raw_cpu_us were fitted";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("old.jsonl has no raw_cpu_us"), std::string::npos) << e.message();
  }
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
  // A cpu section: how busy the communication keeps a core fitted from the same file, its CPU per byte given.
  std::ofstream(dir + "/arc.jsonl") << "{\"ranks\":2,\"bytes\":1048576,\"raw_us\":1000,\"raw_cpu_us\":900}\n"
                                       "{\"ranks\":2,\"bytes\":4194304,\"raw_us\":4000,\"raw_cpu_us\":3600}\n";
  std::ofstream(dir + "/cpu.yaml") << "intra_node: {latency_us: 1, bandwidth_GBps: 10}\ninter_node: {fit: ar.jsonl}\n"
                                      "workers: [2]\ncpu: {cores_per_machine: 2, comm_busy: {fit: arc.jsonl}, "
                                      "comm_cpu_ns_per_byte: 0.8}\n";
  const Cluster shared = read_cluster(dir + "/cpu.yaml");
  EXPECT_TRUE(shared.cpu.enabled);
  EXPECT_NEAR(shared.cpu.comm_busy, 0.9, 1e-12);
  EXPECT_NEAR(shared.cpu.comm_cpu_s_per_byte, 0.8e-9, 1e-18);
  EXPECT_EQ(shared.cpu.cores(4), 0.5);
  EXPECT_NE(projection_markdown(projection_json(shared, p)).find("2 cores shared by every worker"), std::string::npos);
  std::ofstream(dir + "/nocores.yaml") << "intra_node: {latency_us: 1, bandwidth_GBps: 10}\n"
                                          "inter_node: {latency_us: 1, bandwidth_GBps: 10}\nworkers: [2]\n"
                                          "cpu: {comm_busy: 1, comm_cpu_ns_per_byte: 1}\n";
  try {
    read_cluster(dir + "/nocores.yaml");
    FAIL() << "a cpu section without cores was read";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("nocores.yaml: cpu needs one of cores_per_worker"), std::string::npos) << e.message();
  }
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
