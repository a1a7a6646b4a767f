#include "trainer/projection.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "trainer/report.h"

namespace convoy::trainer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

double number(const YAML::Node& n, const std::string& where) {
  try {
    return n.as<double>();
  } catch (const YAML::Exception&) {
    CONVOY_FAIL(where << " must be a number");
  }
}

Link read_link(const YAML::Node& n, const std::string& file, const std::string& key) {
  const std::string where = file + ": " + key;
  CONVOY_CHECK(n && n.IsMap(), where << " must be a mapping: {latency_us: A, bandwidth_GBps: B} or {fit: FILE, ranks: N}");
  if (n["fit"]) {
    fs::path p = n["fit"].as<std::string>();
    if (p.is_relative()) p = fs::path(file).parent_path() / p;
    const int ranks = n["ranks"] ? static_cast<int>(number(n["ranks"], where + ".ranks")) : 2;
    const double min_bytes = n["min_bytes"] ? number(n["min_bytes"], where + ".min_bytes") : 1 << 20;
    return fit_link(read_json_lines(p.string()), ranks, min_bytes, p.string());
  }
  CONVOY_CHECK(n["latency_us"] && n["bandwidth_GBps"], where << " needs latency_us and bandwidth_GBps (or fit: FILE)");
  Link l;
  l.alpha_s = number(n["latency_us"], where + ".latency_us") * 1e-6;
  l.bandwidth_Bps = number(n["bandwidth_GBps"], where + ".bandwidth_GBps") * 1e9;
  CONVOY_CHECK(l.alpha_s >= 0 && l.bandwidth_Bps > 0, where << ": latency must be >= 0 and bandwidth > 0");
  l.source = "given in " + file + (n["note"] ? " (" + n["note"].as<std::string>() + ")" : "");
  return l;
}

double ring_time(double alpha, double bandwidth, double bytes, int n) {
  if (n <= 1) return 0;
  return 2.0 * (n - 1) * alpha + 2.0 * (n - 1) / n * bytes / bandwidth;
}

}  // namespace

Link fit_link(const std::vector<json>& lines, int ranks, double min_bytes, const std::string& what) {
  CONVOY_CHECK(ranks >= 2, what << ": fitting a link needs an all-reduce over at least 2 ranks");
  std::vector<std::pair<double, double>> pts;  // (bytes, seconds)
  for (const json& j : lines) {
    const double bytes = j.value("bytes", 0.0), us = j.value("raw_us", 0.0);
    if (j.value("ranks", ranks) != ranks)
      CONVOY_FAIL(what << " was measured on " << j.value("ranks", 0) << " ranks, not the " << ranks << " the fit assumes");
    if (bytes >= min_bytes && us > 0) pts.emplace_back(bytes, us * 1e-6);
  }
  CONVOY_CHECK(pts.size() >= 2, what << " has " << pts.size() << " all-reduce sizes of at least " << min_bytes
                                     << " bytes: a fit needs 2 (convoy bench allreduce --json --max-bytes ...)");
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = static_cast<double>(pts.size());
  for (auto [x, y] : pts) sx += x, sy += y, sxx += x * x, sxy += x * y;
  const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx), intercept = (sy - slope * sx) / n;
  CONVOY_CHECK(slope > 0, what << ": all-reduce time does not grow with size; the measurement is too noisy to fit");
  double ss_res = 0, ss_tot = 0;
  for (auto [x, y] : pts) {
    const double f = intercept + slope * x;
    ss_res += (y - f) * (y - f), ss_tot += (y - sy / n) * (y - sy / n);
  }
  Link l;
  l.alpha_s = std::max(0.0, intercept) / (2.0 * (ranks - 1));
  l.bandwidth_Bps = 2.0 * (ranks - 1) / ranks / slope;
  l.source = "fitted from " + what + " (" + std::to_string(pts.size()) + " sizes >= " +
             std::to_string(static_cast<long long>(min_bytes)) + " bytes, " + std::to_string(ranks) +
             " ranks, r^2 " + fixed(ss_tot > 0 ? 1 - ss_res / ss_tot : 1, 4) + ")";
  return l;
}

Cluster read_cluster(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    CONVOY_FAIL("cannot read the cluster file " << path << ": " << e.what());
  }
  CONVOY_CHECK(root.IsMap(), path << " must be a mapping (docs/scaling.md has the schema)");
  Cluster c;
  c.source = path;
  c.name = root["name"] ? root["name"].as<std::string>() : fs::path(path).stem().string();
  if (root["workers_per_node"]) c.workers_per_node = static_cast<int>(number(root["workers_per_node"], path + ": workers_per_node"));
  CONVOY_CHECK(c.workers_per_node >= 1, path << ": workers_per_node must be at least 1");
  c.intra = read_link(root["intra_node"], path, "intra_node");
  c.inter = read_link(root["inter_node"], path, "inter_node");
  CONVOY_CHECK(root["workers"] && root["workers"].IsSequence(), path << ": workers must be a list of sizes, e.g. [8, 64, 256]");
  for (const auto& w : root["workers"]) {
    const int n = static_cast<int>(number(w, path + ": workers"));
    CONVOY_CHECK(n >= 1, path << ": a worker count must be positive, got " << n);
    c.workers.push_back(n);
  }
  if (const YAML::Node compute = root["compute"]) {
    if (compute["profile"]) {
      fs::path p = compute["profile"].as<std::string>();
      if (p.is_relative()) p = fs::path(path).parent_path() / p;
      c.profile = p.string();
    }
    if (compute["images_per_s_per_worker"])
      c.images_per_s_per_worker = number(compute["images_per_s_per_worker"], path + ": compute.images_per_s_per_worker");
    if (compute["batch_per_worker"])
      c.batch_per_worker = static_cast<int>(number(compute["batch_per_worker"], path + ": compute.batch_per_worker"));
    if (compute["note"]) c.compute_note = compute["note"].as<std::string>();
  }
  return c;
}

double allreduce_seconds(const Cluster& c, double bytes, int n, Ring ring) {
  if (n <= 1) return 0;
  const int k = std::min(n, c.workers_per_node), nodes = (n + c.workers_per_node - 1) / c.workers_per_node;
  if (nodes == 1) return ring_time(c.intra.alpha_s, c.intra.bandwidth_Bps, bytes, n);
  if (ring == Ring::flat)  // one ring through every worker: its slowest hop sets the pace
    return ring_time(std::max(c.intra.alpha_s, c.inter.alpha_s), std::min(c.intra.bandwidth_Bps, c.inter.bandwidth_Bps),
                     bytes, n);
  // Reduce to the node's leader and broadcast back (each a pipelined ring over the node: 2(k-1) steps of
  // S/k), and an all-reduce among the nodes' leaders in between.
  const double in_node = k > 1 ? 2 * (2.0 * (k - 1) * c.intra.alpha_s + 2.0 * (k - 1) / k * bytes / c.intra.bandwidth_Bps) : 0;
  return in_node + ring_time(c.inter.alpha_s, c.inter.bandwidth_Bps, bytes, nodes);
}

Profile read_profile(const std::string& path, double images_per_s_per_worker, int batch_per_worker) {
  std::ifstream in(path);
  CONVOY_CHECK(in, "cannot read the profile " << path << " (convoy bench train --profile --json writes one)");
  json j;
  try {
    // bench.log files hold other lines too: the JSON object is the last line that starts with '{'.
    std::string line, last;
    while (std::getline(in, line))
      if (!line.empty() && line[0] == '{') last = line;
    j = json::parse(last);
  } catch (const json::exception& e) {
    CONVOY_FAIL(path << " holds no JSON object from convoy bench train: " << e.what());
  }
  CONVOY_CHECK(j.contains("layers") && j.contains("buckets"),
               path << " has no per-layer profile or bucket plan: measure it with convoy bench train --profile --json");
  CONVOY_CHECK(j.value("ranks", 1) == 1, path << " was measured on " << j.value("ranks", 1)
                                              << " ranks; a projection starts from one worker's step (no communication)");
  Profile p;
  p.source = path;
  p.model = j.value("model", "");
  p.batch = j.value("batch", 0);
  const double step_s = j.value("ms_mean", j.value("ms_median", 0.0)) * 1e-3;
  p.forward_s = j.value("forward_ms", 0.0) * 1e-3;
  double backward = 0;
  for (const json& l : j["layers"]) {
    p.backward_s.push_back(l.value("bwd_ms", 0.0) * 1e-3);
    backward += p.backward_s.back();
  }
  p.rest_s = std::max(0.0, step_s - p.forward_s - backward);
  for (const json& b : j["buckets"]) p.buckets.push_back({b.value("bytes", 0.0), b.value("ready_after_layer", size_t{0})});
  for (const auto& b : p.buckets)
    CONVOY_CHECK(b.ready_after_layer < p.backward_s.size(), path << ": a bucket is ready after layer "
                                                                 << b.ready_after_layer << " of " << p.backward_s.size());
  if (batch_per_worker > 0 && images_per_s_per_worker <= 0) {  // the compute grows with the batch
    const double f = static_cast<double>(batch_per_worker) / p.batch;
    p.forward_s *= f, p.rest_s *= f;
    for (double& b : p.backward_s) b *= f;
  }
  if (batch_per_worker > 0) p.batch = batch_per_worker;
  if (images_per_s_per_worker > 0) {  // keep the layers' shares, scale the step to that throughput
    const double want = p.batch / images_per_s_per_worker, f = want / step_s;
    p.forward_s *= f, p.rest_s *= f;
    for (double& b : p.backward_s) b *= f;
  }
  return p;
}

Projected project(const Cluster& c, const Profile& p, int workers, Ring ring) {
  Projected r;
  r.workers = workers, r.ring = ring;
  r.nodes = (workers + c.workers_per_node - 1) / c.workers_per_node;
  double t = p.forward_s, comm_end = 0;
  size_t next = 0;  // buckets launch strictly in order
  std::vector<double> ready(p.buckets.size(), -1);
  for (size_t i = p.backward_s.size(); i-- > 0;) {
    t += p.backward_s[i];
    for (size_t b = 0; b < p.buckets.size(); ++b)
      if (p.buckets[b].ready_after_layer == i) ready[b] = t;
    for (; next < p.buckets.size() && ready[next] >= 0; ++next) {
      const double dt = allreduce_seconds(c, p.buckets[next].bytes, workers, ring);
      comm_end = std::max(comm_end, ready[next]) + dt;
      r.comm_s += dt;
    }
  }
  const double backward_end = t;
  // The per-step vote: one small all-reduce on the control plane, after backward.
  const double vote = allreduce_seconds(c, 16, workers, Ring::flat);
  r.exposed_comm_s = std::max(0.0, comm_end - backward_end) + vote;
  r.compute_s = backward_end + p.rest_s;
  r.step_s = r.compute_s + r.exposed_comm_s;
  r.images_per_s = workers * p.batch / r.step_s;
  r.efficiency = r.compute_s / r.step_s;  // one worker's step is its compute alone
  return r;
}

json projection_json(const Cluster& c, const Profile& p) {
  auto link = [](const Link& l) {
    return json{{"latency_us", l.alpha_s * 1e6}, {"bandwidth_GBps", l.bandwidth_Bps / 1e9}, {"source", l.source}};
  };
  json rows = json::array();
  for (int n : c.workers)
    for (Ring ring : {Ring::flat, Ring::hierarchical}) {
      const Projected r = project(c, p, n, ring);
      rows.push_back({{"workers", n}, {"nodes", r.nodes}, {"ring", ring == Ring::flat ? "flat" : "hierarchical"},
                      {"step_ms", r.step_s * 1e3}, {"compute_ms", r.compute_s * 1e3},
                      {"exposed_comm_ms", r.exposed_comm_s * 1e3}, {"allreduce_ms", r.comm_s * 1e3},
                      {"images_per_s", r.images_per_s}, {"images_per_s_per_worker", r.images_per_s / n},
                      {"efficiency", r.efficiency}});
    }
  double bytes = 0;
  for (const auto& b : p.buckets) bytes += b.bytes;
  return {{"cluster", c.name}, {"cluster_file", c.source}, {"workers_per_node", c.workers_per_node},
          {"intra_node", link(c.intra)}, {"inter_node", link(c.inter)}, {"profile", p.source}, {"model", p.model},
          {"batch_per_worker", p.batch}, {"gradient_bytes", bytes}, {"buckets", p.buckets.size()},
          {"images_per_s_per_worker_assumed", c.images_per_s_per_worker > 0 ? json(c.images_per_s_per_worker) : json()},
          {"compute_note", c.compute_note},
          {"one_worker_step_ms", (p.forward_s + p.rest_s + [&] {
                                   double s = 0;
                                   for (double b : p.backward_s) s += b;
                                   return s;
                                 }()) * 1e3},
          {"rows", rows}};
}

json validation_json(const Cluster& c, const Profile& p, const json& runs) {
  json rows = json::array();
  for (const json& run : runs) {
    const int n = run["ranks"].get<int>();
    bool hierarchical = false;
    for (const json& cmd : run["commands"]) hierarchical = hierarchical || cmd.get<std::string>().find("hierarchical") != std::string::npos;
    const Projected r = project(c, p, n, hierarchical ? Ring::hierarchical : Ring::flat);
    const double measured = run["step_ms"].get<double>(), predicted = r.step_s * 1e3;
    rows.push_back({{"ranks", n}, {"nodes", run["nodes"]}, {"link_rate", run["link_rate"]},
                    {"ring", hierarchical ? "hierarchical" : "flat"}, {"measured_step_ms", measured},
                    {"predicted_step_ms", predicted}, {"predicted_exposed_comm_ms", r.exposed_comm_s * 1e3},
                    {"measured_exposed_comm_ms", run["breakdown_ms"]["exposed communication"]},
                    {"error", (predicted - measured) / measured}, {"dir", run["dir"]}});
  }
  return {{"cluster_file", c.source}, {"profile", p.source}, {"rows", rows}};
}

std::string validation_markdown(const json& v) {
  std::ostringstream md;
  md << "\n## Validation: predicted against measured\n\n- Links: `" << v["cluster_file"].get<std::string>()
     << "`; profile: `" << v["profile"].get<std::string>() << "`.\n\n"
     << "| ranks | nodes | link | all-reduce | measured step ms | predicted step ms | error | measured exposed comm ms | "
        "predicted exposed comm ms |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const json& r : v["rows"])
    md << "| " << r["ranks"].get<int>() << " | " << r["nodes"].get<int>() << " | "
       << (r["link_rate"].is_null() ? std::string("-") : r["link_rate"].get<std::string>()) << " | "
       << r["ring"].get<std::string>() << " | " << fixed(r["measured_step_ms"].get<double>(), 2) << " | "
       << fixed(r["predicted_step_ms"].get<double>(), 2) << " | " << fixed(100 * r["error"].get<double>(), 1) << " % | "
       << fixed(r["measured_exposed_comm_ms"].get<double>(), 2) << " | "
       << fixed(r["predicted_exposed_comm_ms"].get<double>(), 2) << " |\n";
  return md.str();
}

std::string projection_markdown(const json& j) {
  std::ostringstream md;
  md << "\n## Projection: " << j["cluster"].get<std::string>() << "\n\n";
  md << "- **Cluster file:** `" << j["cluster_file"].get<std::string>() << "`, " << j["workers_per_node"].get<int>()
     << " workers per node.\n";
  for (const char* k : {"intra_node", "inter_node"}) {
    const json& l = j[k];
    md << "- **" << (std::string(k) == "intra_node" ? "Intra-node" : "Inter-node") << " link:** "
       << fixed(l["latency_us"].get<double>(), 2) << " us, " << fixed(l["bandwidth_GBps"].get<double>(), 3)
       << " GB/s; " << l["source"].get<std::string>() << ".\n";
  }
  md << "- **Compute profile:** `" << j["profile"].get<std::string>() << "` (" << j["model"].get<std::string>()
     << ", batch " << j["batch_per_worker"].get<int>() << " per worker, "
     << fixed(j["gradient_bytes"].get<double>() / 1e6, 1) << " MB of gradients in " << j["buckets"].get<size_t>()
     << " buckets); one worker's step " << fixed(j["one_worker_step_ms"].get<double>(), 2) << " ms";
  if (!j["images_per_s_per_worker_assumed"].is_null())
    md << ", scaled to " << fixed(j["images_per_s_per_worker_assumed"].get<double>(), 0)
       << " images/s per worker (the profile gives the layers' shares)";
  md << ".\n";
  if (!j["compute_note"].get<std::string>().empty()) md << "- **Compute figure:** " << j["compute_note"].get<std::string>() << "\n";
  md << "- **Model:** alpha-beta per link; the step replayed layer by layer, each bucket's all-reduce starting when its "
        "gradients are ready and the previous one is done; weak scaling (the batch per worker fixed).\n\n";
  md << "| workers | nodes | all-reduce | step ms | exposed comm ms | all-reduce ms | images/s | per worker | "
        "efficiency |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const json& r : j["rows"])
    md << "| " << r["workers"].get<int>() << " | " << r["nodes"].get<int>() << " | " << r["ring"].get<std::string>()
       << " | " << fixed(r["step_ms"].get<double>(), 2) << " | " << fixed(r["exposed_comm_ms"].get<double>(), 2)
       << " | " << fixed(r["allreduce_ms"].get<double>(), 2) << " | " << fixed(r["images_per_s"].get<double>(), 0)
       << " | " << fixed(r["images_per_s_per_worker"].get<double>(), 0) << " | "
       << fixed(100 * r["efficiency"].get<double>(), 1) << " % |\n";
  return md.str();
}

}  // namespace convoy::trainer
