// `convoy bench train`: the trainer's step (trainer/step.h: forward, loss, backward with the overlapped
// all-reduce, the per-step vote, SGD update) on synthetic data, timed per step after warm-up, on any
// device. Labels change every step: a repeated batch with fixed labels drives the loss to zero and the
// gradients into denormals, which slows every later step.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "comm/agreement.h"
#include "comm/bucket_plan.h"
#include "comm/grad_reducer.h"
#include "trainer/step.h"
#include "common/alloc_counter.h"
#include "common/timer.h"
#include "ops/models/zoo.h"
#include "trainer/bench_peak.h"
#include "trainer/commands.h"
#include "trainer/optimizer.h"
#include "trainer/precision.h"
#include "trainer/timeline.h"
#include "trainer/trainer.h"

namespace convoy::trainer {
namespace {

struct BenchTrainArgs {
  std::string model = "resnet50", device = "cpu", comm_backend = "auto", precision = "fp32", algorithm = "flat";
  std::string timeline;
  double first_bucket_mb = 1, bucket_mb = 25, width = 1;
  int64_t batch = 16, image_size = 0, channels = 0, classes = 0, stem_stride = 1;
  int steps = 20, warmup = 3, threads = 0;
  uint64_t seed = 0;
  bool json = false, no_fuse = false, profile = false, tf32 = true;
};

// Per-layer wall time over the timed steps (--profile). On an asynchronous device (a GPU) every layer
// boundary waits for the device, so the times are the layers' own (and the step is slower for it).
// With a measured peak (CPU), each layer's and pass's GFLOP/s and its share of that peak: a forward is
// 2 x MACs flops; a backward 2 x MACs for the weight gradient plus as much again where the layer computes
// its input's gradient (every convolution and inner product but the first).
class LayerProfile final : public ops::Graph::Observer {
 public:
  LayerProfile(const ops::Graph& g, ops::ExecContext& ctx, bool sync)
      : g_(g), fwd_(g.num_layers()), bwd_(g.num_layers()), ctx_(ctx), sync_(sync) {}
  void begin(size_t, bool) override {
    if (sync_) ctx_.synchronize();
    t0_ = now_seconds();
  }
  void end(size_t layer, bool backward) override {
    if (sync_) ctx_.synchronize();
    (backward ? bwd_ : fwd_)[layer] += now_seconds() - t0_;
  }
  double forward_flops(size_t i) const { return 2.0 * static_cast<double>(g_.layer(i).macs()); }
  double backward_flops(size_t i) const {
    const bool dx = g_.layer(i).macs() > 0 && g_.computes_input_grad(i);
    return forward_flops(i) * (dx ? 2 : 1);
  }
  // GFLOP/s of `flops` done in `seconds` summed over the timed steps.
  double gflops(double flops, double seconds, int steps) const { return seconds > 0 ? flops * steps / seconds / 1e9 : 0; }

  // Per layer, in graph order: time per pass, MACs, GFLOP/s and the bytes of its parameters' gradients
  // (what the all-reduce moves; a projection schedules the buckets from them).
  nlohmann::json to_json(int steps, double peak_gflops) const {
    nlohmann::json layers = nlohmann::json::array();
    for (size_t i = 0; i < fwd_.size(); ++i) {
      size_t bytes = 0;
      for (size_t p : g_.layer_params(i)) bytes += g_.param_layout().entry(p).bytes;
      nlohmann::json l = {{"name", g_.layer_name(i)},
                          {"type", std::string(g_.layer(i).type())},
                          {"macs", g_.layer(i).macs()},
                          {"param_bytes", bytes},
                          {"fwd_ms", fwd_[i] * 1e3 / steps},
                          {"bwd_ms", bwd_[i] * 1e3 / steps}};
      if (g_.layer(i).macs() > 0) {
        const double f = gflops(forward_flops(i), fwd_[i], steps), b = gflops(backward_flops(i), bwd_[i], steps);
        l["fwd_gflops"] = f, l["bwd_gflops"] = b;
        if (peak_gflops > 0) l["fwd_share_of_peak"] = f / peak_gflops, l["bwd_share_of_peak"] = b / peak_gflops;
      }
      layers.push_back(std::move(l));
    }
    return layers;
  }
  double forward_ms(int steps) const { return sum(fwd_) * 1e3 / steps; }
  double backward_ms(int steps) const { return sum(bwd_) * 1e3 / steps; }
  static double sum(const std::vector<double>& v) {
    double t = 0;
    for (double x : v) t += x;
    return t;
  }
  // The layers whose type starts with `type` ("" for all) together: flops and seconds of each pass.
  struct Totals {
    double fwd_flops = 0, bwd_flops = 0, fwd_s = 0, bwd_s = 0;
  };
  Totals totals(std::string_view type) const {
    Totals t;
    for (size_t i = 0; i < fwd_.size(); ++i)
      if (g_.layer(i).type().starts_with(type))
        t.fwd_flops += forward_flops(i), t.bwd_flops += backward_flops(i), t.fwd_s += fwd_[i], t.bwd_s += bwd_[i];
    return t;
  }
  nlohmann::json totals_json(std::string_view type, int steps, double peak_gflops) const {
    const Totals t = totals(type);
    const double f = gflops(t.fwd_flops, t.fwd_s, steps), b = gflops(t.bwd_flops, t.bwd_s, steps),
                 all = gflops(t.fwd_flops + t.bwd_flops, t.fwd_s + t.bwd_s, steps);
    nlohmann::json j = {{"fwd_ms", t.fwd_s * 1e3 / steps}, {"bwd_ms", t.bwd_s * 1e3 / steps},
                        {"fwd_gflops", f},                 {"bwd_gflops", b},
                        {"gflops", all}};
    if (peak_gflops > 0) j["share_of_peak"] = all / peak_gflops;
    return j;
  }
  void print(int steps, double peak_gflops, double step_ms) const {
    double total = 0;
    for (size_t i = 0; i < fwd_.size(); ++i) total += fwd_[i] + bwd_[i];
    auto rate = [&](double flops, double seconds) {
      char buf[32] = "";
      if (flops <= 0) return std::string(peak_gflops > 0 ? "              " : "       ");
      const double r = gflops(flops, seconds, steps);
      if (peak_gflops > 0)
        std::snprintf(buf, sizeof buf, " %6.1f %5.1f%%", r, 100 * r / peak_gflops);
      else
        std::snprintf(buf, sizeof buf, " %6.1f", r);
      return std::string(buf);
    };
    const char* head = peak_gflops > 0 ? "  GF/s  peak" : "  GF/s";
    std::printf("  %-28s %-16s %8s%s %8s%s %6s\n", "layer", "type", "fwd ms", head, "bwd ms", head, "share");
    for (size_t i = 0; i < fwd_.size(); ++i)
      std::printf("  %-28s %-16s %8.3f%s %8.3f%s %5.1f%%\n", g_.layer_name(i).c_str(),
                  std::string(g_.layer(i).type()).c_str(), fwd_[i] * 1e3 / steps,
                  rate(forward_flops(i), fwd_[i]).c_str(), bwd_[i] * 1e3 / steps,
                  rate(backward_flops(i), bwd_[i]).c_str(), 100 * (fwd_[i] + bwd_[i]) / total);
    for (const char* type : {"Conv2d", "Linear"}) {
      const Totals t = totals(type);
      if (t.fwd_flops <= 0) continue;
      std::printf("  %-45s %8.3f%s %8.3f%s %5.1f%%;  both passes%s\n", (std::string("every ") + type).c_str(),
                  t.fwd_s * 1e3 / steps, rate(t.fwd_flops, t.fwd_s).c_str(), t.bwd_s * 1e3 / steps,
                  rate(t.bwd_flops, t.bwd_s).c_str(), 100 * (t.fwd_s + t.bwd_s) / total,
                  rate(t.fwd_flops + t.bwd_flops, t.fwd_s + t.bwd_s).c_str());
    }
    const double step_gflops = this->step_gflops(step_ms);
    std::printf("  the step: %.1f GFLOP/s of convolutions and products over the median step", step_gflops);
    if (peak_gflops > 0) std::printf(", %.1f %% of the measured peak", 100 * step_gflops / peak_gflops);
    std::printf("; layers %.1f ms of its %.1f ms\n", total * 1e3 / steps, step_ms);
  }
  // The step's convolution and product flops over a step of `step_ms`.
  double step_gflops(double step_ms) const {
    const Totals t = totals("");
    return (t.fwd_flops + t.bwd_flops) / (step_ms / 1e3) / 1e9;
  }

 private:
  const ops::Graph& g_;
  double t0_ = 0;
  std::vector<double> fwd_, bwd_;
  ops::ExecContext& ctx_;
  bool sync_;
};

// Both a profile and a timeline watch the graph.
class Observers final : public ops::Graph::Observer {
 public:
  std::vector<ops::Graph::Observer*> all;
  void begin(size_t layer, bool backward) override {
    for (auto* o : all) o->begin(layer, backward);
  }
  void end(size_t layer, bool backward) override {
    for (auto* o : all) o->end(layer, backward);
  }
};

// The gradient buckets as the reducer cuts them (also on one rank, for a projection to more): bytes, and
// the layer after whose backward the bucket is complete (its parameters' first layer: backward runs last
// layer first).
nlohmann::json bucket_plan_json(const ops::Graph& g, double first_mb, double bucket_mb) {
  const auto& entries = g.param_layout().entries();
  std::vector<std::pair<size_t, size_t>> items;
  for (const auto& e : entries) items.emplace_back(e.offset, e.bytes);
  std::vector<size_t> layer_of(entries.size(), 0);
  for (size_t l = 0; l < g.num_layers(); ++l)
    for (size_t p : g.layer_params(l)) layer_of[p] = l;
  nlohmann::json buckets = nlohmann::json::array();
  for (const comm::BucketSpan& b : comm::plan_buckets(items, first_mb, bucket_mb)) {
    size_t ready = g.num_layers();
    for (size_t e : b.items) ready = std::min(ready, layer_of[e]);
    buckets.push_back({{"bytes", b.bytes}, {"ready_after_layer", ready}});
  }
  return buckets;
}

struct RusageSample {
  long peak_rss_kb, minor_faults;
};
RusageSample sample_rusage() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return {ru.ru_maxrss, ru.ru_minflt};
}

// Under mpirun every rank runs the same steps on its own synthetic batch (--batch is per rank) and the
// gradients are all-reduced in buckets during backward, as in training; the report adds the share of
// the step spent waiting for communication that backward did not hide.
int run_bench_train(const BenchTrainArgs& a, const comm::World& world) {
  const ops::ModelInfo& info = ops::model_info(a.model);
  const int64_t size = a.image_size > 0 ? a.image_size : info.image_size;
  const int64_t channels = a.channels > 0 ? a.channels : info.channels;
  const int64_t classes = a.classes > 0 ? a.classes : info.num_classes;
  CONVOY_CHECK(a.batch > 0 && a.steps > 0 && a.warmup >= 0, "--batch and --steps must be positive");

  const int ranks = world.size();
  ops::BackendOptions bo;
  bo.threads = a.threads > 0 ? a.threads : cores_per_rank(world.local_size());
  bo.local_rank = world.local_rank(), bo.local_size = world.local_size();
  bo.tf32 = a.tf32;
  auto backend = ops::make_backend(a.device, bo);
  const PrecisionPlan precision = plan_precision(a.precision, *backend);
  std::unique_ptr<LossScaler> scaler;
  if (precision.loss_scaling) scaler = std::make_unique<LossScaler>(LossScaleOptions{});
  ops::ModelOptions mo;
  mo.num_classes = classes, mo.in_channels = channels, mo.width = a.width, mo.stem_stride = a.stem_stride;
  auto graph = ops::make_model(a.model, mo);
  graph->set_emulated_storage(precision.emulated);
  graph->set_compute_dtype(precision.compute);
  graph->setup(backend.get(), ops::Shape{a.batch, size, size, channels}, !a.no_fuse);
  graph->init_params(a.seed);
  Sgd sgd(*graph, SgdOptions{0.9f, 1e-4f, false, false});
  comm::Planes planes;
  std::unique_ptr<comm::GradReducer> reducer;
  if (ranks > 1)
    planes = comm::make_planes(a.comm_backend, backend->device(), world, 120, comm::CheckMode::step,
                               comm::parse_algorithm(a.algorithm));
  auto& [record, control, data] = planes;
  if (ranks > 1) {
    comm::broadcast_model(*data, *graph);
    reducer = std::make_unique<comm::GradReducer>(*graph, *data, comm::ReducerOptions{a.first_bucket_mb, a.bucket_mb});
  }
  TrainStep step(*graph, sgd, StepPlanes{reducer.get(), control.get(), record.get(), ranks}, classes, 0.f,
                 scaler.get());
  std::unique_ptr<Timeline> timeline;
  if (!a.timeline.empty())
    timeline = std::make_unique<Timeline>(a.timeline + ".rank" + std::to_string(world.rank()) + ".json", world.rank(),
                                          *graph);

  std::mt19937 rng(static_cast<uint32_t>(a.seed + static_cast<uint64_t>(world.rank())));
  ops::Tensor x = ops::Tensor::empty(graph->input_shape(), ops::DType::f32, backend->allocator());
  {
    std::normal_distribution<float> normal(0.f, 1.f);
    ops::Tensor host = ops::Tensor::zeros_host(x.shape());
    for (int64_t i = 0; i < host.numel(); ++i) host.host<float>()[i] = normal(rng);
    ops::from_host(*backend, host, x);
  }
  ops::Tensor labels_host = ops::Tensor::empty(ops::Shape{a.batch}, ops::DType::i32, backend->staging_allocator());
  ops::Tensor labels = ops::Tensor::empty(ops::Shape{a.batch}, ops::DType::i32, backend->allocator());
  std::uniform_int_distribution<int32_t> label_dist(0, static_cast<int32_t>(classes - 1));

  std::vector<double> ms;
  double exposed_s = 0, total_s = 0, vote_s = 0;
  uint64_t allocs_before = 0, device_allocs_before = 0;
  long faults_before = 0;
  double loss_sum = 0;
  ops::ExecContext& ctx = backend->context();
  LayerProfile profile(*graph, ctx, !backend->device().is_cpu());
  // The peak a CPU profile compares with, measured now, by every rank's threads at once, as the steps run.
  std::optional<ops::cpu::MachinePeak> peak;
  double peak_gflops = 0;
  if (a.profile && backend->device().is_cpu()) {
    if (control) control->barrier("peak measurement")->wait();
    ops::cpu::PeakOptions po;
    po.threads = bo.threads;
    peak = ops::cpu::measure_peak(po);
    const bool bf16 = precision.compute == ops::DType::bf16 && peak->bf16.available;
    peak_gflops = (bf16 ? peak->bf16 : peak->fp32).measured_gflops;
  }
  Observers observers;
  if (a.profile) observers.all.push_back(&profile);
  if (timeline) observers.all.push_back(timeline.get());
  for (int i = 0; i < a.warmup + a.steps; ++i) {
    if (i == a.warmup && !observers.all.empty()) {  // the timed steps only
      graph->set_observer(&observers);
      step.set_timeline(timeline.get());
    }
    for (int64_t n = 0; n < a.batch; ++n) labels_host.host<int32_t>()[n] = label_dist(rng);
    if (i == a.warmup) {
      allocs_before = allocation_count();
      device_allocs_before = backend->raw_device_allocations();
      faults_before = sample_rusage().minor_faults;
      step.take_loss_sum();  // the timed steps' losses only
    }
    if (data) data->set_step(i);
    if (control) control->set_step(i);
    double t0 = now_seconds();
    backend->copy(ctx, labels_host, labels);
    const TrainStep::Result r = step.run(x, labels, 0.01, false, i);
    CONVOY_CHECK(!r.verdict.nonfinite, "the loss became non-finite at step " << i << " of the benchmark");
    ctx.synchronize();  // an asynchronous device has only enqueued the step
    if (i >= a.warmup) {
      const double dt = now_seconds() - t0;
      ms.push_back(dt * 1e3);
      exposed_s += r.comm_wait_s, total_s += dt, vote_s += r.vote_s;
    }
  }
  const double allocs_per_step = static_cast<double>(allocation_count() - allocs_before) / a.steps;
  const double device_allocs_per_step =
      static_cast<double>(backend->raw_device_allocations() - device_allocs_before) / a.steps;
  RusageSample ru = sample_rusage();
  const double faults_per_step = static_cast<double>(ru.minor_faults - faults_before) / a.steps;
  loss_sum = step.take_loss_sum();
  const float last_loss = static_cast<float>(loss_sum / a.steps);
  graph->set_observer(nullptr);
  step.set_timeline(nullptr);
  if (timeline) timeline->write();
  if (control) control->barrier("end of bench")->wait();
  if (world.rank() != 0) return 0;

  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted.size() % 2 ? sorted[sorted.size() / 2]
                                          : (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]) / 2;
  const double images_per_s = static_cast<double>(a.batch * ranks) / (median / 1e3);
  const double exposed_share = total_s > 0 ? exposed_s / total_s : 0;
  // Training costs about three forward passes (forward, backward-data, backward-weights).
  const double gflops = 3.0 * 2.0 * static_cast<double>(graph->macs()) * ranks / (median / 1e3) / 1e9;

  if (a.json) {
    nlohmann::json j = {{"bench", "train"},
                        {"model", a.model},
                        {"width", a.width},
                        {"stem_stride", a.stem_stride},
                        {"batch", a.batch},
                        {"size", size},
                        {"channels", channels},
                        {"classes", classes},
                        {"precision", a.precision},
                        {"precision_detail", precision.describe},
                        {"skipped_steps", scaler ? scaler->skipped() : 0},
                        {"device", a.device},
                        {"backend", backend->name()},
                        {"ranks", ranks},
                        {"exposed_comm_share", exposed_share},
                        {"vote_us", vote_s / a.steps * 1e6},
                        {"vote_share", total_s > 0 ? vote_s / total_s : 0},
                        {"gradient_buckets", reducer ? reducer->buckets().size() : 0},
                        {"steps", a.steps},
                        {"ms_median", median},
                        {"ms_mean", total_s / a.steps * 1e3},
                        {"ms_min", sorted.front()},
                        {"ms_max", sorted.back()},
                        {"images_per_s", images_per_s},
                        {"gflops_per_s", gflops},
                        {"peak_rss_mb", static_cast<double>(ru.peak_rss_kb) / 1024.0},
                        {"allocations_per_step", counting_enabled() ? nlohmann::json(allocs_per_step) : nullptr},
                        {"page_faults_per_step", faults_per_step},
                        {"device_mallocs_per_step", device_allocs_per_step},
                        {"tf32", backend->device().kind == ops::DeviceKind::cuda ? nlohmann::json(a.tf32) : nullptr},
                        {"mean_loss", last_loss},
                        {"comm_algorithm", a.algorithm},
                        {"bucket_mb", a.bucket_mb},
                        {"first_bucket_mb", a.first_bucket_mb},
                        {"exposed_comm_ms", exposed_s / a.steps * 1e3},
                        {"vote_ms", vote_s / a.steps * 1e3},
                        {"buckets", bucket_plan_json(*graph, a.first_bucket_mb, a.bucket_mb)}};
    if (a.profile) {
      j["layers"] = profile.to_json(a.steps, peak_gflops);
      j["conv"] = profile.totals_json("Conv2d", a.steps, peak_gflops);
      j["linear"] = profile.totals_json("Linear", a.steps, peak_gflops);
      j["step_gflops"] = profile.step_gflops(median);
      if (peak) {
        j["peak"] = peak_json(*peak);
        j["peak_gflops"] = peak_gflops;
        j["step_share_of_peak"] = profile.step_gflops(median) / peak_gflops;
      }
      j["forward_ms"] = profile.forward_ms(a.steps);
      j["backward_ms"] = profile.backward_ms(a.steps);
    }
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("convoy bench train: %s, batch %ld, %ldx%ldx%ld, %ld classes, %s, %s\n", a.model.c_str(),
                static_cast<long>(a.batch), static_cast<long>(channels), static_cast<long>(size),
                static_cast<long>(size), static_cast<long>(classes), precision.describe.c_str(),
                backend->name().c_str());
    std::printf("  steps %d after %d warm-up: median %.2f ms (min %.2f, max %.2f)\n", a.steps, a.warmup, median,
                sorted.front(), sorted.back());
    std::printf("  %.1f images/s, ~%.1f GFLOP/s (3x forward), peak RSS %.0f MB\n", images_per_s, gflops,
                static_cast<double>(ru.peak_rss_kb) / 1024.0);
    std::printf("  per steady step: %.1f heap allocations, %.1f page faults; mean loss %.4f\n", allocs_per_step,
                faults_per_step, last_loss);
    if (!backend->device().is_cpu())
      std::printf("  per steady step: %.1f raw device allocations and frees (cudaMalloc/cudaFree)\n",
                  device_allocs_per_step);
    if (ranks > 1)
      std::printf("  %d ranks (batch %ld each): %.1f %% of the step waited for gradient all-reduce that backward did "
                  "not hide (%zu buckets)\n",
                  ranks, static_cast<long>(a.batch), 100 * exposed_share, reducer->buckets().size());
    if (ranks > 1)
      std::printf("  the per-step vote (stop, non-finite loss, the step's collectives): %.1f us a step, %.2f %% of it\n",
                  vote_s / a.steps * 1e6, 100 * vote_s / total_s);
    if (peak) {
      std::printf("  peak, measured in this run%s:\n", world.size() > 1 ? " (rank 0's threads, every rank measuring at once)" : "");
      print_peak(*peak, "    ");
    }
    if (a.profile) profile.print(a.steps, peak_gflops, median);
  }
  return 0;
}

}  // namespace

void add_bench_train_command(CLI::App& bench, Action& action) {
  auto a = std::make_shared<BenchTrainArgs>();
  auto* cmd = bench.add_subcommand("train", "Time training steps (forward, backward, SGD) on synthetic data");
  cmd->add_option("--model", a->model, "Model name (see `convoy models`)")->capture_default_str();
  cmd->add_option("--device", a->device, "cpu, cpu-strict or cuda (as train.device)")->capture_default_str();
  cmd->add_option("--comm-backend", a->comm_backend, "Data plane under mpirun: auto, mpi or nccl (as comm.backend)")
      ->capture_default_str();
  cmd->add_option("--precision", a->precision, "fp32, fp16, bf16 or auto (as train.precision)")->capture_default_str();
  cmd->add_option("--batch", a->batch, "Images per step (per rank under mpirun)")->capture_default_str();
  cmd->add_option("--image-size", a->image_size, "Input height and width (default: the model's)");
  cmd->add_option("--channels", a->channels, "Input channels (default: the model's)");
  cmd->add_option("--classes", a->classes, "Classes (default: the model's)");
  cmd->add_option("--width", a->width, "Channels times width (as model.width: VGG, CIFAR-style ResNets)")
      ->capture_default_str();
  cmd->add_option("--stem-stride", a->stem_stride, "The stem's stride (as model.stem_stride: CIFAR-style ResNets)")
      ->capture_default_str();
  cmd->add_option("--steps", a->steps, "Timed steps")->capture_default_str();
  cmd->add_option("--warmup", a->warmup, "Untimed steps first")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Compute threads (default: all cores)");
  cmd->add_option("--seed", a->seed, "Seed of weights, data and labels")->capture_default_str();
  cmd->add_flag("--no-fuse", a->no_fuse, "Run every ReLU as its own layer (for comparison)");
  cmd->add_option("--tf32", a->tf32, "cuda: fp32 convolutions and products may use TF32 tensor cores (as train.tf32)")
      ->capture_default_str();
  cmd->add_flag("--profile", a->profile, "Print every layer's forward and backward time, GFLOP/s and share of the peak measured in the same run");
  cmd->add_option("--timeline", a->timeline, "Write each rank's Chrome-trace timeline of the timed steps to FILE.rank<R>.json");
  cmd->add_option("--comm-algorithm", a->algorithm, "flat or hierarchical (as comm.algorithm)")->capture_default_str();
  cmd->add_option("--bucket-mb", a->bucket_mb, "Gradient bucket size after the first (as comm.bucket_mb)")
      ->capture_default_str();
  cmd->add_option("--first-bucket-mb", a->first_bucket_mb, "First gradient bucket (as comm.first_bucket_mb)")
      ->capture_default_str();
  cmd->add_flag("--json", a->json, "Print one JSON object");
  cmd->callback([a, &action] {
    action = [a] { return run_with_world([a](const comm::World& w) { return run_bench_train(*a, w); }); };
  });
}

}  // namespace convoy::trainer
