// `convoy bench allreduce`: the gradient all-reduce, reported the way nccl-tests reports collectives
// (size, count, type, time, algbw = bytes / time, busbw = algbw * 2 (n - 1) / n, #wrong), with raw
// MPI_Allreduce of the same bytes (comm/mpi_raw.h) beside convoy's data plane for each size: the
// communicator the trainer would use (--backend, as comm.backend), its communication thread, the
// collective check of --check (as comm.check) and the buckets the GradReducer would cut
// (comm/bucket_plan.h: first 1 MB, then 25 MB, all started, then waited for).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "comm/bucket_plan.h"
#include "comm/communicator.h"
#include "comm/mpi_raw.h"
#include "comm/step_record.h"
#include "comm/step_vote.h"
#include "comm/world.h"
#include "common/timer.h"
#include "ops/math/elementwise.h"
#include "trainer/commands.h"
#include "trainer/trainer.h"

namespace convoy::trainer {
namespace {

struct BenchAllreduceArgs {
  int64_t min_bytes = 1024, max_bytes = 128ll << 20;
  std::string dtype = "f32", backend = "auto", check = "step", algorithm = "flat";
  int iters = 20, warmup = 3;
  double first_bucket_mb = 1, bucket_mb = 25;
  bool json = false;
};

struct Row {
  double us = 0, algbw = 0, busbw = 0;
  int64_t wrong = 0;
};

float value(int rank, size_t i) { return static_cast<float>((rank + 1) * static_cast<int>(i % 5)); }

// The benchmark's buffer: a host tensor of `count` elements of type t, filled with small integers that
// every type holds exactly, so the sums can be checked.
class Buffer {
 public:
  Buffer(size_t count, ops::DType t)
      : count_(count), t_(t), data_(ops::Tensor::zeros_host(ops::Shape{static_cast<int64_t>(count)}, t)) {}
  ops::Tensor& tensor() { return data_; }
  void fill(int rank) {
    for (size_t i = 0; i < count_; ++i) set(i, value(rank, i));
  }
  // Elements that are not the sum over ranks.
  int64_t wrong(int ranks) const {
    int64_t bad = 0;
    for (size_t i = 0; i < count_; ++i) {
      float want = 0;
      for (int r = 0; r < ranks; ++r) want += value(r, i);
      bad += get(i) != want;
    }
    return bad;
  }

 private:
  void set(size_t i, float v) {
    if (t_ == ops::DType::f32)
      data_.host<float>()[i] = v;
    else
      static_cast<uint16_t*>(data_.data())[i] = t_ == ops::DType::bf16 ? math::f32_to_bf16(v) : math::f32_to_f16(v);
  }
  float get(size_t i) const {
    if (t_ == ops::DType::f32) return data_.host<float>()[i];
    const uint16_t h = static_cast<const uint16_t*>(data_.data())[i];
    return t_ == ops::DType::bf16 ? math::bf16_to_f32(h) : math::f16_to_f32(h);
  }
  size_t count_;
  ops::DType t_;
  ops::Tensor data_;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t k = v.size() / 2;
  return v.size() % 2 ? v[k] : (v[k - 1] + v[k]) / 2;
}

Row summarize(double seconds, size_t bytes, int ranks, int64_t wrong) {
  Row r;
  r.us = seconds * 1e6;
  r.algbw = static_cast<double>(bytes) / seconds / 1e9;
  r.busbw = r.algbw * 2.0 * (ranks - 1) / ranks;
  r.wrong = wrong;
  return r;
}

int run_bench_allreduce(const BenchAllreduceArgs& a, const comm::World& w) {
  const ops::DType t = ops::parse_dtype(a.dtype);
  CONVOY_CHECK(t == ops::DType::f32 || t == ops::DType::bf16 || t == ops::DType::f16,
               "--dtype must be f32, bf16 or f16, got " << a.dtype);
  CONVOY_CHECK(a.min_bytes > 0 && a.max_bytes >= a.min_bytes && a.iters > 0,
               "need 0 < --min-bytes <= --max-bytes and --iters > 0");
  comm::Planes planes = comm::make_planes(a.backend, ops::Device{}, w, 120, comm::parse_check_mode(a.check),
                                          comm::parse_algorithm(a.algorithm));
  auto& [record, control, comm] = planes;
  const int n = w.size();
  const size_t esize = ops::dtype_size(t);
  if (w.rank() == 0 && !a.json) {
    std::printf("# convoy bench allreduce: %d ranks on %d node(s), %s, medians of %d iterations after %d warm-up, raw "
                "and convoy alternating\n",
                n, w.nodes(),
                ops::dtype_name(t), a.iters, a.warmup);
    std::printf("# raw: one MPI_Allreduce (in place, main thread). convoy: the %s data plane (check: %s, %s), "
                "buckets of %.0f MB then %.0f MB, all started, then waited for; the per-step vote comes after (not "
                "timed).\n",
                comm->name(), a.check.c_str(), a.algorithm.c_str(), a.first_bucket_mb, a.bucket_mb);
    std::printf("#%12s %12s %5s | %10s %8s %8s %6s | %10s %8s %8s %6s | %6s\n", "size (B)", "count", "type",
                "raw (us)", "algbw", "busbw", "#wrong", "convoy(us)", "algbw", "busbw", "#wrong", "ratio");
  }
  for (int64_t bytes = a.min_bytes; bytes <= a.max_bytes; bytes *= 2) {
    const size_t count = static_cast<size_t>(bytes) / esize, real_bytes = count * esize;
    Buffer buf(count, t);
    // convoy: the reducer's buckets over the buffer (seen as 64 KiB parameters).
    const auto items = comm::uniform_items(real_bytes, size_t{64} << 10);
    const auto buckets = comm::plan_buckets(items, a.first_bucket_mb, a.bucket_mb);
    std::vector<ops::Tensor> views;
    for (const auto& b : buckets)
      views.push_back(buf.tensor().view(b.offset, ops::Shape{static_cast<int64_t>(b.bytes / esize)}));
    // Raw MPI and convoy alternate, iteration by iteration, so that both see the same machine (these are
    // shared and drift within seconds); each side's time is its median over the timed iterations.
    std::vector<double> raw_s, raw_cpu_s, ours_s, inside_s;  // inside: in MPI on the thread that ran the collectives
    int64_t raw_wrong = 0, ours_wrong = 0;
    for (int i = 0; i < a.warmup + a.iters; ++i) {
      const bool timed = i >= a.warmup, last = i + 1 == a.warmup + a.iters;
      buf.fill(w.rank());
      comm::raw_mpi_barrier();
      double t0 = now_seconds();
      const double cpu0 = thread_cpu_seconds();
      comm::raw_mpi_all_reduce(buf.tensor());
      if (timed) raw_s.push_back(now_seconds() - t0), raw_cpu_s.push_back(thread_cpu_seconds() - cpu0);
      if (last) raw_wrong = buf.wrong(n);

      buf.fill(w.rank());
      comm->set_step(i);
      comm->barrier("bench barrier")->wait();
      t0 = now_seconds();
      std::vector<std::shared_ptr<comm::Work>> works;
      for (size_t b = 0; b < buckets.size(); ++b)
        works.push_back(comm->all_reduce(views[b], comm::ReduceOp::sum,
                                         comm::fingerprint("bench bucket", b, buckets[b].bytes),
                                         "bench bucket " + std::to_string(b)));
      for (auto wk = works.rbegin(); wk != works.rend(); ++wk) (*wk)->wait();  // the last first, as the reducer
      if (timed) {
        ours_s.push_back(now_seconds() - t0);
        double inside = 0;
        for (auto& wk : works) inside += wk->seconds();
        inside_s.push_back(inside);
      }
      if (last) ours_wrong = buf.wrong(n);
      comm::vote_step(*control, record.get(), i, {});  // as a training step ends: the ranks compare records
    }
    const Row raw = summarize(median(raw_s), real_bytes, n, raw_wrong);
    const Row ours = summarize(median(ours_s), real_bytes, n, ours_wrong);
    if (w.rank() != 0) continue;
    if (a.json) {
      nlohmann::json j = {{"bench", "allreduce"},     {"ranks", n},           {"bytes", real_bytes},
                          {"count", count},           {"type", ops::dtype_name(t)},
                          {"raw_us", raw.us},         {"raw_algbw_GBps", raw.algbw},
                          {"raw_busbw_GBps", raw.busbw}, {"raw_wrong", raw.wrong},
                          {"raw_cpu_us", median(raw_cpu_s) * 1e6},  // the CPU that call took (rank 0's thread)
                          {"convoy_us", ours.us},
                          {"convoy_algbw_GBps", ours.algbw}, {"convoy_busbw_GBps", ours.busbw},
                          {"convoy_wrong", ours.wrong}, {"busbw_ratio", ours.busbw / raw.busbw},
                          {"convoy_inside_mpi_us", median(inside_s) * 1e6},
                          {"buckets", buckets.size()},      {"backend", comm->name()},
                          {"check", a.check},         {"algorithm", a.algorithm},
                          {"nodes", w.nodes()}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf(" %12lld %12zu %5s | %10.1f %8.3f %8.3f %6lld | %10.1f %8.3f %8.3f %6lld | %6.3f\n",
                  static_cast<long long>(real_bytes), count, ops::dtype_name(t), raw.us, raw.algbw, raw.busbw,
                  static_cast<long long>(raw.wrong), ours.us, ours.algbw, ours.busbw,
                  static_cast<long long>(ours.wrong), ours.busbw / raw.busbw);
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

void add_bench_allreduce_command(CLI::App& bench, Action& action) {
  auto a = std::make_shared<BenchAllreduceArgs>();
  auto* cmd = bench.add_subcommand("allreduce", "All-reduce bandwidth, raw MPI beside convoy's bucketed path "
                                                "(run under mpirun)");
  cmd->add_option("--min-bytes", a->min_bytes, "Smallest message")->capture_default_str();
  cmd->add_option("--max-bytes", a->max_bytes, "Largest message (sizes double)")->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "f32, bf16 or f16")->capture_default_str();
  cmd->add_option("--backend", a->backend, "The data plane: auto, mpi or nccl (as comm.backend)")->capture_default_str();
  cmd->add_option("--check", a->check, "step or collective (as comm.check)")->capture_default_str();
  cmd->add_option("--algorithm", a->algorithm, "flat or hierarchical (as comm.algorithm)")->capture_default_str();
  cmd->add_option("--iters", a->iters, "Timed iterations per size")->capture_default_str();
  cmd->add_option("--warmup", a->warmup, "Untimed iterations first")->capture_default_str();
  cmd->add_option("--bucket-mb", a->bucket_mb, "Bucket size after the first")->capture_default_str();
  cmd->add_option("--first-bucket-mb", a->first_bucket_mb, "First bucket size")->capture_default_str();
  cmd->add_flag("--json", a->json, "One JSON object per size");
  cmd->callback([a, &action] {
    action = [a] { return run_with_world([a](const comm::World& w) { return run_bench_allreduce(*a, w); }); };
  });
}

}  // namespace convoy::trainer
