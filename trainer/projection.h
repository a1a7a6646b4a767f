// The projection of `convoy report --project CLUSTER.yaml`: what a measured step would become at N
// workers. Each link type (intra-node, inter-node) is an alpha-beta model - a message of S bytes between
// two workers takes alpha + S / bandwidth - either given or fitted from `convoy bench allreduce` runs.
// The step is replayed from a per-layer profile (`convoy bench train --profile --json`): forward, then
// the backward layers in reverse order; a gradient bucket becomes ready after its first layer's backward
// and its all-reduce starts when it is ready and the previous bucket's is done (the reducer's FIFO);
// what the last all-reduce adds after backward ends is exposed communication. docs/scaling.md documents
// the cluster file's schema.
#pragma once

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace convoy::trainer {

struct Link {
  double alpha_s = 0;        // latency per message step
  double bandwidth_Bps = 0;  // bytes per second (inter-node: the node's, all its NICs together)
  std::string source;        // where the figures come from: "given in X" or "fitted from Y (n sizes, r^2)"
};

// Fits alpha and beta of one link from `convoy bench allreduce --json` lines measured on `ranks` workers
// in a flat ring over it: t(S) = 2(n-1) alpha + 2(n-1)/n S / bandwidth, by least squares on the raw MPI
// times of sizes in [min_bytes, max_bytes] (best the sizes the workload's buckets have: over a link whose
// throughput changes with the message size, as a token bucket's does, a line fits only a range).
Link fit_link(const std::vector<nlohmann::json>& allreduce_lines, int ranks, double min_bytes, const std::string& what,
              double max_bytes = INFINITY);

enum class Ring { flat, hierarchical };

// Workers whose communication runs on their own CPU cores (a CPU cluster, or emulated nodes sharing one
// machine). While an all-reduce runs, its thread is runnable for `comm_busy` of the time (Open MPI polls
// the network), so the scheduler shares the worker's cores between it and the compute threads; and the
// all-reduce itself needs `comm_cpu_s_per_byte` of CPU per byte a worker sends, so it slows when its
// share is less than that.
struct CpuSharing {
  bool enabled = false;
  double cores_per_worker = 0;   // given, or
  double cores_per_machine = 0;  // every worker on one machine: cores_per_worker = this / workers
  int compute_threads = 1;
  double comm_busy = 1;            // CPU seconds the all-reduce's thread takes per second of all-reduce
  double comm_cpu_s_per_byte = 0;  // CPU seconds it needs per byte sent (when it has a core to itself)
  std::string busy_source, cpu_source;
  double cores(int workers) const { return cores_per_worker > 0 ? cores_per_worker : cores_per_machine / workers; }
};

// From `convoy bench allreduce --json` lines (their raw_cpu_us beside raw_us): the CPU over the time of
// sizes >= min_bytes, and the least-squares CPU seconds per byte sent (2(n-1)/n of the message in a ring).
double fit_comm_busy(const std::vector<nlohmann::json>& allreduce_lines, double min_bytes, const std::string& what);
double fit_comm_cpu(const std::vector<nlohmann::json>& allreduce_lines, double min_bytes, const std::string& what);

struct Cluster {
  std::string name, source;
  int workers_per_node = 1;
  Link intra, inter;
  std::vector<int> workers;  // the sizes to project
  // The compute profile: the file, and optionally the per-worker throughput it is scaled to (a profile
  // measured elsewhere, e.g. on a CPU, stands for a GPU by its layer shares).
  std::string profile;
  double images_per_s_per_worker = 0;  // 0: the profile's own speed
  int batch_per_worker = 0;            // 0: the profile's batch (else the step scales with it)
  std::string compute_note;            // where that figure comes from (cited in the report)
  CpuSharing cpu;                      // off unless the file has a cpu section
};
// Reads CLUSTER.yaml; relative paths in it (profile, fitted links' files) are relative to the file.
// Throws naming the file and the key.
Cluster read_cluster(const std::string& path);

// All-reduce time of `bytes` over n workers (nodes of workers_per_node).
double allreduce_seconds(const Cluster& c, double bytes, int n, Ring ring);

struct Profile {
  std::string source, model;
  int batch = 0;                    // per worker
  double forward_s = 0, rest_s = 0;  // rest: the loss, the optimizer and the step's bookkeeping
  std::vector<double> backward_s;   // per layer, graph order
  struct Bucket {
    double bytes = 0;
    size_t ready_after_layer = 0;
  };
  std::vector<Bucket> buckets;      // in launch order
};
// From `convoy bench train --profile --json` (one rank, no communication), scaled to the cluster's
// per-worker throughput when it gives one.
// batch_per_worker (> 0) replaces the profile's batch: with a throughput the step is batch / throughput,
// without one the compute scales linearly with the batch.
Profile read_profile(const std::string& path, double images_per_s_per_worker = 0, int batch_per_worker = 0);

struct Projected {
  int workers = 1, nodes = 1;
  Ring ring = Ring::flat;
  double step_s = 0, compute_s = 0, exposed_comm_s = 0, comm_s = 0;
  double images_per_s = 0, efficiency = 0;  // efficiency: one worker's step time over this one's (weak scaling)
};
Projected project(const Cluster& c, const Profile& p, int workers, Ring ring);

// The projection section of report.json: the cluster, its links and their sources, the profile, and a
// row per (workers, ring).
nlohmann::json projection_json(const Cluster& c, const Profile& p);
// Predictions for measured runs (report.json's runs: their rank counts, nodes and step times) beside the
// measurements, with the error of each.
nlohmann::json validation_json(const Cluster& c, const Profile& p, const nlohmann::json& runs);
std::string validation_markdown(const nlohmann::json& validation);
std::string projection_markdown(const nlohmann::json& projection);

}  // namespace convoy::trainer
