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

std::string relative_to(const std::string& file, const std::string& path) {
  fs::path p = path;
  if (p.is_relative()) p = fs::path(file).parent_path() / p;
  return p.string();
}

Link read_link(const YAML::Node& n, const std::string& file, const std::string& key) {
  const std::string where = file + ": " + key;
  CONVOY_CHECK(n && n.IsMap(), where << " must be a mapping: {latency_us: A, bandwidth_GBps: B} or {fit: FILE, ranks: N}");
  if (n["fit"]) {
    const std::string p = relative_to(file, n["fit"].as<std::string>());
    const int ranks = n["ranks"] ? static_cast<int>(number(n["ranks"], where + ".ranks")) : 2;
    const double min_bytes = n["min_bytes"] ? number(n["min_bytes"], where + ".min_bytes") : 1 << 20;
    const double max_bytes = n["max_bytes"] ? number(n["max_bytes"], where + ".max_bytes") : INFINITY;
    CONVOY_CHECK(max_bytes >= min_bytes, where << ": max_bytes is less than min_bytes");
    return fit_link(read_json_lines(p), ranks, min_bytes, p, max_bytes);
  }
  CONVOY_CHECK(n["latency_us"] && n["bandwidth_GBps"], where << " needs latency_us and bandwidth_GBps (or fit: FILE)");
  Link l;
  l.alpha_s = number(n["latency_us"], where + ".latency_us") * 1e-6;
  l.bandwidth_Bps = number(n["bandwidth_GBps"], where + ".bandwidth_GBps") * 1e9;
  CONVOY_CHECK(l.alpha_s >= 0 && l.bandwidth_Bps > 0, where << ": latency must be >= 0 and bandwidth > 0");
  l.source = "given in " + file + (n["note"] ? " (" + n["note"].as<std::string>() + ")" : "");
  return l;
}

// A figure of the cpu section: a number, or {fit: FILE, min_bytes: B} measured by bench allreduce.
double read_cpu_figure(const YAML::Node& n, const std::string& file, const std::string& key, std::string& source,
                       double (*fit)(const std::vector<json>&, double, const std::string&)) {
  const std::string where = file + ": cpu." + key;
  if (n.IsMap()) {
    CONVOY_CHECK(n["fit"], where << " must be a number or {fit: FILE} (convoy bench allreduce --json lines)");
    const std::string p = relative_to(file, n["fit"].as<std::string>());
    const double min_bytes = n["min_bytes"] ? number(n["min_bytes"], where + ".min_bytes") : 1 << 20;
    source = "fitted from " + p;
    return fit(read_json_lines(p), min_bytes, p);
  }
  source = "given in " + file;
  return number(n, where);
}

CpuSharing read_cpu(const YAML::Node& n, const std::string& file) {
  CpuSharing c;
  if (!n) return c;
  CONVOY_CHECK(n.IsMap(), file << ": cpu must be a mapping: {cores_per_worker: C, compute_threads: T, comm_busy: U, "
                                  "comm_cpu_ns_per_byte: X} (docs/scaling.md)");
  c.enabled = true;
  CONVOY_CHECK(!n["cores_per_worker"] != !n["cores_per_machine"],
               file << ": cpu needs one of cores_per_worker (each worker's cores) or cores_per_machine (every worker on "
                       "one machine)");
  if (n["cores_per_worker"]) c.cores_per_worker = number(n["cores_per_worker"], file + ": cpu.cores_per_worker");
  if (n["cores_per_machine"]) c.cores_per_machine = number(n["cores_per_machine"], file + ": cpu.cores_per_machine");
  CONVOY_CHECK(c.cores_per_worker > 0 || c.cores_per_machine > 0, file << ": cpu: the number of cores must be positive");
  if (n["compute_threads"]) c.compute_threads = static_cast<int>(number(n["compute_threads"], file + ": cpu.compute_threads"));
  CONVOY_CHECK(c.compute_threads >= 1, file << ": cpu.compute_threads must be at least 1");
  CONVOY_CHECK(n["comm_busy"] && (n["comm_cpu"] || n["comm_cpu_ns_per_byte"]),
               file << ": cpu needs comm_busy (a share, or {fit: FILE}) and comm_cpu_ns_per_byte (or comm_cpu: {fit: FILE})");
  c.comm_busy = read_cpu_figure(n["comm_busy"], file, "comm_busy", c.busy_source, fit_comm_busy);
  CONVOY_CHECK(c.comm_busy > 0 && c.comm_busy <= 1.5, file << ": cpu.comm_busy must be in (0, 1.5], got " << c.comm_busy);
  c.comm_busy = std::min(c.comm_busy, 1.0);  // one thread: at most one core
  if (n["comm_cpu"])
    c.comm_cpu_s_per_byte = read_cpu_figure(n["comm_cpu"], file, "comm_cpu", c.cpu_source, fit_comm_cpu);
  else
    c.comm_cpu_s_per_byte = read_cpu_figure(n["comm_cpu_ns_per_byte"], file, "comm_cpu_ns_per_byte", c.cpu_source,
                                            fit_comm_cpu) * 1e-9;
  CONVOY_CHECK(c.comm_cpu_s_per_byte >= 0, file << ": cpu: the communication's CPU per byte cannot be negative");
  return c;
}

// The (bytes sent per rank, raw seconds, raw CPU seconds) of bench allreduce lines of sizes >= min_bytes.
struct CpuPoint {
  double sent, seconds, cpu;
};
std::vector<CpuPoint> cpu_points(const std::vector<json>& lines, double min_bytes, const std::string& what) {
  std::vector<CpuPoint> pts;
  for (const json& j : lines) {
    const double bytes = j.value("bytes", 0.0), n = j.value("ranks", 2);
    if (bytes < min_bytes || j.value("raw_us", 0.0) <= 0) continue;
    CONVOY_CHECK(j.contains("raw_cpu_us"), what << " has no raw_cpu_us: it was measured by a convoy bench allreduce "
                                                   "from before the CPU figures; measure it again");
    pts.push_back({bytes * 2 * (n - 1) / n, j["raw_us"].get<double>() * 1e-6, j["raw_cpu_us"].get<double>() * 1e-6});
  }
  CONVOY_CHECK(pts.size() >= 2, what << " has " << pts.size() << " all-reduce sizes of at least " << min_bytes
                                     << " bytes: the CPU figures need 2");
  return pts;
}

double ring_time(double alpha, double bandwidth, double bytes, int n) {
  if (n <= 1) return 0;
  return 2.0 * (n - 1) * alpha + 2.0 * (n - 1) / n * bytes / bandwidth;
}

}  // namespace

Link fit_link(const std::vector<json>& lines, int ranks, double min_bytes, const std::string& what, double max_bytes) {
  CONVOY_CHECK(ranks >= 2, what << ": fitting a link needs an all-reduce over at least 2 ranks");
  std::vector<std::pair<double, double>> pts;  // (bytes, seconds)
  for (const json& j : lines) {
    const double bytes = j.value("bytes", 0.0), us = j.value("raw_us", 0.0);
    if (j.value("ranks", ranks) != ranks)
      CONVOY_FAIL(what << " was measured on " << j.value("ranks", 0) << " ranks, not the " << ranks << " the fit assumes");
    if (bytes >= min_bytes && bytes <= max_bytes && us > 0) pts.emplace_back(bytes, us * 1e-6);
  }
  CONVOY_CHECK(pts.size() >= 2, what << " has " << pts.size() << " all-reduce sizes from " << min_bytes << " to "
                                     << max_bytes << " bytes: a fit needs 2 (convoy bench allreduce --json --max-bytes ...)");
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = static_cast<double>(pts.size());
  for (auto [x, y] : pts) sx += x, sy += y, sxx += x * x, sxy += x * y;
  double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx), intercept = (sy - slope * sx) / n;
  // The latency cannot be negative (a token bucket's burst makes small messages look that way): then the
  // least-squares line with alpha = 0 is the one through the origin.
  if (intercept < 0) slope = sxy / sxx, intercept = 0;
  CONVOY_CHECK(slope > 0, what << ": all-reduce time does not grow with size; the measurement is too noisy to fit");
  double ss_res = 0, ss_tot = 0;
  for (auto [x, y] : pts) {
    const double f = intercept + slope * x;
    ss_res += (y - f) * (y - f), ss_tot += (y - sy / n) * (y - sy / n);
  }
  Link l;
  l.alpha_s = intercept / (2.0 * (ranks - 1));
  l.bandwidth_Bps = 2.0 * (ranks - 1) / ranks / slope;
  l.source = "fitted from " + what + " (" + std::to_string(pts.size()) + " sizes >= " +
             std::to_string(static_cast<long long>(min_bytes)) +
             (std::isfinite(max_bytes) ? " and <= " + std::to_string(static_cast<long long>(max_bytes)) : "") + " bytes, " +
             std::to_string(ranks) +
             " ranks, r^2 " + fixed(ss_tot > 0 ? 1 - ss_res / ss_tot : 1, 4) + ")";
  return l;
}

double fit_comm_busy(const std::vector<json>& lines, double min_bytes, const std::string& what) {
  double cpu = 0, seconds = 0;
  for (const CpuPoint& p : cpu_points(lines, min_bytes, what)) cpu += p.cpu, seconds += p.seconds;
  return cpu / seconds;
}

double fit_comm_cpu(const std::vector<json>& lines, double min_bytes, const std::string& what) {
  const auto pts = cpu_points(lines, min_bytes, what);
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = static_cast<double>(pts.size());
  for (const CpuPoint& p : pts) sx += p.sent, sy += p.cpu, sxx += p.sent * p.sent, sxy += p.sent * p.cpu;
  const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  CONVOY_CHECK(slope > 0, what << ": the all-reduce's CPU does not grow with its size; the measurement is too noisy to fit");
  return slope;
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
    if (compute["profile"]) c.profile = relative_to(path, compute["profile"].as<std::string>());
    if (compute["images_per_s_per_worker"])
      c.images_per_s_per_worker = number(compute["images_per_s_per_worker"], path + ": compute.images_per_s_per_worker");
    if (compute["batch_per_worker"])
      c.batch_per_worker = static_cast<int>(number(compute["batch_per_worker"], path + ": compute.batch_per_worker"));
    if (compute["note"]) c.compute_note = compute["note"].as<std::string>();
  }
  c.cpu = read_cpu(root["cpu"], path);
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
  // How fast compute and communication go, against alone, while both run (and communication alone): with
  // a cpu section, the communication thread takes its share s of the worker's C cores from the T compute
  // threads (the scheduler's fair share), and the all-reduce slows where s is less than the CPU it needs.
  const CpuSharing& cpu = c.cpu;
  const double cores = cpu.enabled ? cpu.cores(workers) : 0, threads = cpu.compute_threads;
  const double share = cpu.enabled ? std::min(cpu.comm_busy, cores / (threads + 1)) : 0;
  const double compute_rate = cpu.enabled ? std::min(threads, cores - share) / std::min(threads, cores) : 1;
  auto comm_rate = [&](double bytes, double seconds, bool computing) {
    if (!cpu.enabled || seconds <= 0) return 1.0;
    const double need = cpu.comm_cpu_s_per_byte * bytes * 2 * (workers - 1) / workers / seconds;  // cores
    const double got = computing ? share : std::min(cpu.comm_busy, cores);
    return need > got ? got / need : 1.0;
  };
  // The replay: backward layers in reverse order; a bucket launches when it is ready and the one before
  // it is done. Each phase runs until a layer or an all-reduce ends; the rates hold in between.
  const std::vector<double>& layers = p.backward_s;
  size_t layer = layers.size(), next = 0;  // the layer running (+1), the next bucket to launch
  double t = p.forward_s, layer_left = layer ? layers[layer - 1] : 0, backward_end = t;
  double comm_left = 0, comm_seconds = 0, comm_bytes = 0, comm_end = 0;  // the running all-reduce, in seconds alone
  bool comm_running = false;
  std::vector<bool> ready(p.buckets.size(), false);
  auto mark_ready = [&](size_t done) {
    for (size_t b = 0; b < p.buckets.size(); ++b)
      if (p.buckets[b].ready_after_layer == done) ready[b] = true;
  };
  while (true) {
    if (!comm_running && next < p.buckets.size() && ready[next]) {
      comm_bytes = p.buckets[next].bytes;
      comm_seconds = comm_left = allreduce_seconds(c, comm_bytes, workers, ring);
      r.comm_s += comm_seconds;
      comm_running = true, ++next;
    }
    const bool computing = layer > 0;
    if (!computing && !comm_running) break;
    const double rc = comm_running ? compute_rate : 1, rm = comm_rate(comm_bytes, comm_seconds, computing);
    const double dt = std::min(computing ? layer_left / rc : INFINITY, comm_running ? comm_left / rm : INFINITY);
    t += dt;
    if (computing) layer_left -= dt * rc;
    if (comm_running) comm_left -= dt * rm;
    if (computing && layer_left <= 1e-15) {
      mark_ready(--layer);
      layer_left = layer ? layers[layer - 1] : 0;
      if (!layer) backward_end = t;
    }
    if (comm_running && comm_left <= 1e-15) comm_running = false, comm_end = t;
  }
  if (layers.empty()) backward_end = t;
  // The per-step vote: one small all-reduce on the control plane, after backward.
  const double vote = allreduce_seconds(c, 16, workers, Ring::flat);
  r.exposed_comm_s = std::max(0.0, comm_end - backward_end) + vote;
  r.compute_s = backward_end + p.rest_s;
  r.step_s = r.compute_s + r.exposed_comm_s;
  r.images_per_s = workers * p.batch / r.step_s;
  double alone = p.forward_s + p.rest_s;
  for (double b : layers) alone += b;
  r.efficiency = alone / r.step_s;  // one worker's step is its compute alone
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
          {"cpu", !c.cpu.enabled ? json()
                                 : json{{"cores_per_worker", c.cpu.cores_per_worker > 0 ? json(c.cpu.cores_per_worker) : json()},
                                        {"cores_per_machine", c.cpu.cores_per_machine > 0 ? json(c.cpu.cores_per_machine) : json()},
                                        {"compute_threads", c.cpu.compute_threads},
                                        {"comm_busy", c.cpu.comm_busy}, {"comm_busy_source", c.cpu.busy_source},
                                        {"comm_cpu_ns_per_byte", c.cpu.comm_cpu_s_per_byte * 1e9},
                                        {"comm_cpu_source", c.cpu.cpu_source}}},
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
  if (const json& cpu = j["cpu"]; !cpu.is_null()) {
    md << "- **Shared cores:** communication runs on the workers' cores: "
       << (cpu["cores_per_worker"].is_null() ? fixed(cpu["cores_per_machine"].get<double>(), 0) + " cores shared by every worker"
                                             : fixed(cpu["cores_per_worker"].get<double>(), 1) + " cores per worker")
       << ", " << cpu["compute_threads"].get<int>() << " compute thread(s); the all-reduce's thread is busy "
       << fixed(100 * cpu["comm_busy"].get<double>(), 0) << " % of its time (" << cpu["comm_busy_source"].get<std::string>()
       << ") and needs " << fixed(cpu["comm_cpu_ns_per_byte"].get<double>(), 3) << " ns of CPU per byte sent ("
       << cpu["comm_cpu_source"].get<std::string>() << ").\n";
  }
  md << "- **Model:** alpha-beta per link; the step replayed layer by layer, each bucket's all-reduce starting when its "
        "gradients are ready and the previous one is done";
  if (!j["cpu"].is_null())
    md << "; while both run, the scheduler's fair share of the cores slows the compute, and the all-reduce where its "
          "share is less than the CPU it needs";
  md << "; weak scaling (the batch per worker fixed).\n\n";
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
