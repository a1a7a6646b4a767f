// `convoy bench allreduce`: the gradient all-reduce, reported the way nccl-tests reports collectives
// (size, count, type, time, algbw = bytes / time, busbw = algbw * 2 (n - 1) / n, #wrong), with raw
// MPI_Allreduce of the same bytes beside convoy's path for each size: the communication thread, the
// fingerprint check and the buckets the GradReducer would cut (first 1 MB, then 25 MB, async, in order).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "comm/communicator.h"
#include "comm/mpi_check.h"
#include "comm/mpi_types.h"
#include "comm/world.h"
#include "common/timer.h"
#include "ops/math/elementwise.h"
#include "trainer/commands.h"
#include "trainer/trainer.h"

namespace convoy::trainer {
namespace {

struct BenchAllreduceArgs {
  int64_t min_bytes = 1024, max_bytes = 128ll << 20;
  std::string dtype = "f32";
  int iters = 10, warmup = 2;
  double first_bucket_mb = 1, bucket_mb = 25;
  bool json = false;
};

struct Row {
  double us = 0, algbw = 0, busbw = 0;
  int64_t wrong = 0;
};

float value(int rank, size_t i) { return static_cast<float>((rank + 1) * static_cast<int>(i % 5)); }

class Buffer {
 public:
  Buffer(size_t count, ops::DType t) : count_(count), t_(t), f_(t == ops::DType::f32 ? count : 0), h_(t == ops::DType::f32 ? 0 : count) {}
  void* data() { return t_ == ops::DType::f32 ? static_cast<void*>(f_.data()) : static_cast<void*>(h_.data()); }
  void fill(int rank) {
    for (size_t i = 0; i < count_; ++i) set(i, value(rank, i));
  }
  // Elements that are not the sum over ranks (small integers: exact in every type).
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
    if (t_ == ops::DType::f32) f_[i] = v;
    else h_[i] = t_ == ops::DType::bf16 ? math::f32_to_bf16(v) : math::f32_to_f16(v);
  }
  float get(size_t i) const {
    if (t_ == ops::DType::f32) return f_[i];
    return t_ == ops::DType::bf16 ? math::bf16_to_f32(h_[i]) : math::f16_to_f32(h_[i]);
  }
  size_t count_;
  ops::DType t_;
  std::vector<float> f_;
  std::vector<uint16_t> h_;
};

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
  auto comm = comm::make_mpi_communicator(w, {120});
  const int n = w.size();
  const size_t esize = ops::dtype_size(t);
  if (w.rank() == 0 && !a.json) {
    std::printf("# convoy bench allreduce: %d ranks on %d node(s), %s, %d iterations after %d warm-up\n", n, w.nodes(),
                ops::dtype_name(t), a.iters, a.warmup);
    std::printf("# raw: one MPI_Allreduce (in place, main thread). convoy: the communication thread, buckets of "
                "%.0f MB then %.0f MB, all started, then waited for.\n",
                a.first_bucket_mb, a.bucket_mb);
    std::printf("#%12s %12s %5s | %10s %8s %8s %6s | %10s %8s %8s %6s | %6s\n", "size (B)", "count", "type",
                "raw (us)", "algbw", "busbw", "#wrong", "convoy(us)", "algbw", "busbw", "#wrong", "ratio");
  }
  for (int64_t bytes = a.min_bytes; bytes <= a.max_bytes; bytes *= 2) {
    const size_t count = static_cast<size_t>(bytes) / esize, real_bytes = count * esize;
    Buffer buf(count, t);
    // Raw MPI.
    double raw_s = 0;
    for (int i = 0; i < a.warmup + a.iters; ++i) {
      buf.fill(w.rank());
      MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
      const double t0 = now_seconds();
      MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(count), comm::mpi_datatype(t),
                              comm::mpi_sum_op(t), MPI_COMM_WORLD));
      if (i >= a.warmup) raw_s += now_seconds() - t0;
    }
    const Row raw = summarize(raw_s / a.iters, real_bytes, n, buf.wrong(n));
    // convoy: the reducer's buckets.
    std::vector<std::pair<size_t, size_t>> buckets;  // element offset, count
    for (size_t off = 0, target = static_cast<size_t>(a.first_bucket_mb * 1048576) / esize; off < count;) {
      const size_t c = std::min(std::max<size_t>(target, 1), count - off);
      buckets.emplace_back(off, c);
      off += c;
      target = static_cast<size_t>(a.bucket_mb * 1048576) / esize;
    }
    double ours_s = 0;
    for (int i = 0; i < a.warmup + a.iters; ++i) {
      buf.fill(w.rank());
      comm->barrier("bench barrier")->wait();
      const double t0 = now_seconds();
      std::vector<std::shared_ptr<comm::Work>> works;
      for (size_t b = 0; b < buckets.size(); ++b)
        works.push_back(comm->all_reduce(static_cast<char*>(buf.data()) + buckets[b].first * esize, buckets[b].second,
                                         t, comm::ReduceOp::sum, comm::fingerprint("bench bucket", b, buckets[b].second),
                                         "bench bucket " + std::to_string(b)));
      for (auto& wk : works) wk->wait();
      if (i >= a.warmup) ours_s += now_seconds() - t0;
    }
    const Row ours = summarize(ours_s / a.iters, real_bytes, n, buf.wrong(n));
    if (w.rank() != 0) continue;
    if (a.json) {
      nlohmann::json j = {{"bench", "allreduce"},     {"ranks", n},           {"bytes", real_bytes},
                          {"count", count},           {"type", ops::dtype_name(t)},
                          {"raw_us", raw.us},         {"raw_algbw_GBps", raw.algbw},
                          {"raw_busbw_GBps", raw.busbw}, {"raw_wrong", raw.wrong}, {"convoy_us", ours.us},
                          {"convoy_algbw_GBps", ours.algbw}, {"convoy_busbw_GBps", ours.busbw},
                          {"convoy_wrong", ours.wrong}, {"busbw_ratio", ours.busbw / raw.busbw},
                          {"buckets", buckets.size()}};
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
