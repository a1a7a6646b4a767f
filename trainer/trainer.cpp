#include "trainer/trainer.h"

#include <sched.h>

#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "comm/agreement.h"
#include "common/log.h"
#include "common/stop.h"
#include "common/timer.h"

namespace convoy::trainer {
namespace {

datasets::LoaderOptions loader_options(const Config& c, bool train, int threads, int64_t batch, int rank, int size) {
  datasets::LoaderOptions o;
  o.data_dir = c.data.dir;
  o.split = train ? c.data.train_split : c.data.val_split;
  o.batch_size = batch;
  o.rank = rank;
  o.world_size = size;
  o.seed = c.train.seed;
  o.threads = threads;
  o.prefetch_depth = c.data.prefetch;
  o.train = train;
  o.drop_last = train && c.data.drop_last;
  o.shuffle_window = c.data.shuffle_window;
  o.output_size = static_cast<int>(c.data.image_size);
  o.eval_resize = static_cast<int>(c.data.eval_resize);
  o.flip_prob = c.data.flip;
  o.jitter = static_cast<float>(c.data.jitter);
  o.lighting_std = static_cast<float>(c.data.lighting);
  o.raw_pad = c.data.raw_pad;
  return o;
}

ops::Tensor images_of(const datasets::Batch& b) {
  return ops::Tensor::wrap(b.images, ops::Shape{b.n, b.height, b.width, b.channels}, ops::DType::f32);
}
ops::Tensor labels_of(const datasets::Batch& b) {
  return ops::Tensor::wrap(b.labels, ops::Shape{b.n}, ops::DType::i32);
}

}  // namespace

int cores_per_rank(int local_ranks) {
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env && std::atoi(env) > 0) return std::atoi(env);
  const int all = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < all) return CPU_COUNT(&set);
  return std::max(1, all / local_ranks);
}

namespace {

ops::DType wire_type(const std::string& w) { return w == "bf16" ? ops::DType::bf16 : w == "f16" ? ops::DType::f16 : ops::DType::f32; }

}  // namespace

Trainer::Trainer(const Config& config, std::string run_dir, const comm::World* world)
    : cfg_(config), run_dir_(std::move(run_dir)), store_(run_dir_ + "/checkpoints", config.checkpoint.keep) {
  const TrainConfig& t = cfg_.train;
  if (world) rank_ = world->rank(), size_ = world->size();
  cfg_.validate_for_world(size_);
  local_batch_ = t.batch_size / size_;
  CONVOY_CHECK(t.precision == "fp32", cfg_.source << ": train.precision " << t.precision
                                                  << " needs a backend with mixed precision, which this build's CPU "
                                                     "backend does not have: use fp32");
  if (rank_ == 0) std::filesystem::create_directories(run_dir_);
  const int cores = cores_per_rank(world ? world->local_size() : 1);
  const int compute_threads = t.deterministic ? 1 : (t.threads > 0 ? t.threads : cores);
  const int data_threads = t.deterministic ? 1 : (cfg_.data.threads > 0 ? cfg_.data.threads : cores);
  backend_ = ops::make_cpu_backend(compute_threads);
  if (size_ > 1) comm_ = comm::make_mpi_communicator(*world, {cfg_.comm.timeout_s});

  train_data_ = std::make_unique<datasets::Loader>(
      loader_options(cfg_, true, data_threads, local_batch_, rank_, size_));
  val_data_ = std::make_unique<datasets::Loader>(
      loader_options(cfg_, false, data_threads, local_batch_, rank_, size_));
  const int64_t data_classes = train_data_->dataset().num_classes();
  classes_ = cfg_.model.num_classes > 0 ? cfg_.model.num_classes : data_classes;
  CONVOY_CHECK(classes_ >= data_classes, cfg_.source << ": model.num_classes " << classes_ << " is smaller than the "
                                                     << data_classes << " classes of " << cfg_.data.dir);
  const int64_t channels = train_data_->channels();
  CONVOY_CHECK(cfg_.model.in_channels == 0 || cfg_.model.in_channels == channels,
               cfg_.source << ": model.in_channels " << cfg_.model.in_channels << " but the data has " << channels
                           << " channels");

  graph_ = ops::make_model(cfg_.model.name, {classes_, channels, cfg_.model.zero_gamma});
  graph_->setup(backend_.get(), ops::Shape{local_batch_, train_data_->height(), train_data_->width(), channels});
  graph_->init_params(t.seed);
  graph_->set_dropout_seed(t.seed + static_cast<uint64_t>(rank_));  // each rank drops its own units
  if (!cfg_.model.init_from.empty()) load_weights(cfg_.model.init_from, *graph_);
  sgd_ = std::make_unique<Sgd>(*graph_, SgdOptions{static_cast<float>(t.momentum), static_cast<float>(t.weight_decay),
                                                   t.nesterov, t.no_bias_decay});
  loss_ = backend_->softmax_cross_entropy(local_batch_, classes_);
  eval_loss_ = ops::Tensor::empty(ops::Shape{local_batch_}, ops::DType::f32, backend_->allocator());
  eval_top1_ = ops::Tensor::empty(ops::Shape{local_batch_}, ops::DType::i32, backend_->allocator());
  eval_top5_ = ops::Tensor::empty(ops::Shape{local_batch_}, ops::DType::i32, backend_->allocator());
  if (comm_) {
    comm::broadcast_model(*comm_, *graph_);
    comm::check_startup_agreement(*comm_, cfg_.hash(), *graph_);
    reducer_ = std::make_unique<comm::GradReducer>(
        *graph_, *comm_, comm::ReducerOptions{cfg_.comm.first_bucket_mb, cfg_.comm.bucket_mb, wire_type(cfg_.comm.wire)});
    graph_->set_backward_hook([this](size_t layer) { reducer_->on_layer_done(layer); });
  }
  if (rank_ == 0)
    spdlog::info("{} on {} x {}: {} parameters, {} classes, input {}x{}x{}, global batch {} ({} per rank), {} steps "
                 "per epoch{}",
                 cfg_.model.name, size_, backend_->name(), graph_->num_params(), classes_, channels,
                 train_data_->height(), train_data_->width(), t.batch_size, local_batch_,
                 train_data_->batches_per_epoch(),
                 reducer_ ? ", " + std::to_string(reducer_->buckets().size()) + " gradient buckets" : "");
}

Trainer::~Trainer() = default;

void Trainer::enable_timeline(const std::string& path) {
  timeline_ = std::make_unique<Timeline>(path + ".rank" + std::to_string(rank_) + ".json", rank_, *graph_);
  graph_->set_observer(timeline_.get());
}

void Trainer::sum_over_ranks(double* values, size_t n, const char* what) {
  if (!comm_) return;
  comm_->all_reduce(values, n, ops::DType::f64, comm::ReduceOp::sum, comm::fingerprint(what, 0, n * 8), what)->wait();
}

void Trainer::record_buckets() {
  const auto& buckets = reducer_->buckets();
  for (size_t i = 0; i < buckets.size(); ++i) {
    const auto& b = buckets[i];
    const double s = b.work->seconds(), bytes = static_cast<double>(b.bytes);
    const double algbw = s > 0 ? bytes / s / 1e9 : 0, busbw = algbw * 2.0 * (size_ - 1) / size_;
    char args[160];
    std::snprintf(args, sizeof args, "{\"bytes\":%zu,\"algbw_GBps\":%.3f,\"busbw_GBps\":%.3f}", b.bytes, algbw, busbw);
    timeline_->span("all-reduce bucket " + std::to_string(i), "communication", b.work->started_at(), s,
                    Timeline::comm_thread, args);
  }
}

Trainer::StepResult Trainer::train_step(const datasets::Batch& batch, double lr) {
  ops::ExecContext& ctx = backend_->context();
  const ops::Tensor& logits = graph_->forward(images_of(batch));
  float loss = loss_->forward_backward(ctx, logits, labels_of(batch), static_cast<float>(cfg_.train.label_smoothing),
                                       graph_->output_grad());
  graph_->backward();
  double wait = 0;
  if (reducer_) {
    wait = reducer_->finish();
    if (timeline_) record_buckets();
  }
  const double t0 = now_seconds();
  // The reducer leaves sums: dividing by the rank count makes them the global batch's mean gradient.
  sgd_->step(static_cast<float>(lr), 1.f / static_cast<float>(size_));
  ctx.synchronize();
  if (timeline_) timeline_->span("optimizer", "optimizer", t0, now_seconds() - t0, Timeline::main_thread);
  return {loss, wait};
}

EvalResult Trainer::evaluate() {
  const double t0 = now_seconds();
  // Every rank evaluates rank 0's model: its BN running statistics are the ones checkpoints keep.
  if (comm_) comm::broadcast_buffers(*comm_, *graph_);
  graph_->set_training(false);
  ops::ExecContext& ctx = backend_->context();
  double sums[4] = {0, 0, 0, 0};  // loss, top-1, top-5, samples
  val_data_->start_epoch(0);
  while (const datasets::Batch* b = val_data_->next()) {
    const ops::Tensor& logits = graph_->forward(images_of(*b));
    loss_->evaluate(ctx, logits, labels_of(*b), eval_loss_, eval_top1_, eval_top5_);
    for (int64_t i = 0; i < b->n; ++i) {
      if (!b->valid[i]) continue;  // padding duplicates
      sums[0] += eval_loss_.host<float>()[i];
      sums[1] += eval_top1_.host<int32_t>()[i];
      sums[2] += eval_top5_.host<int32_t>()[i];
      sums[3] += 1;
    }
  }
  graph_->set_training(true);
  sum_over_ranks(sums, 4, "evaluation counts");
  EvalResult r;
  r.samples = static_cast<int64_t>(sums[3]);
  CONVOY_CHECK(r.samples > 0, "the validation split '" << cfg_.data.val_split << "' of " << cfg_.data.dir
                                                       << " has no records");
  r.loss = sums[0] / sums[3];
  r.top1 = sums[1] / sums[3];
  r.top5 = sums[2] / sums[3];
  r.seconds = now_seconds() - t0;
  return r;
}

void Trainer::save_checkpoint(const TrainingState& state) {
  if (rank_ == 0) {
    std::string path = store_.save(*graph_, sgd_->momentum(), state, cfg_.to_yaml());
    spdlog::info("checkpoint {} (epoch {}, step {})", path, state.epoch + 1, state.step_in_epoch);
  }
}

// Rank 0 picks the checkpoint (the newest that verifies, for "auto") and every rank loads that one.
std::optional<std::string> Trainer::choose_resume(const std::string& resume) {
  if (resume.empty()) return std::nullopt;
  std::string path;
  if (rank_ == 0) {
    if (resume == "auto") {
      auto p = store_.newest_valid([](const std::string& w) { spdlog::warn("{}", w); });
      if (p)
        path = *p;
      else
        spdlog::info("no checkpoint to resume from in {}: starting fresh", store_.dir());
    } else {
      path = resume;
    }
  }
  if (comm_) {
    char buf[4096] = {};
    std::snprintf(buf, sizeof buf, "%s", path.c_str());
    comm_->broadcast(buf, sizeof buf, 0, comm::fingerprint("resume path", 0, sizeof buf), "broadcast of the checkpoint "
                                                                                          "path")
        ->wait();
    path = buf;
  }
  if (path.empty()) return std::nullopt;
  return path;
}

void Trainer::load_weights_from(const std::string& checkpoint) { load_checkpoint(checkpoint, *graph_, nullptr); }

int Trainer::train(const std::string& resume) {
  const TrainConfig& t = cfg_.train;
  const int64_t steps = train_data_->batches_per_epoch();
  LrSchedule schedule(t, steps);
  TrainingState state;
  state.seed = t.seed;
  if (auto path = choose_resume(resume)) {
    CheckpointContents c = load_checkpoint(*path, *graph_, &sgd_->momentum());
    state = c.state;
    graph_->set_step(state.graph_step);
    if (rank_ == 0)
      spdlog::info("resumed from {} at epoch {}, step {} (global step {})", *path, state.epoch + 1,
                   state.step_in_epoch, state.global_step);
  }
  Metrics metrics(run_dir_, rank_ == 0);
  const double start = now_seconds();
  int64_t steps_this_run = 0;
  int exit_code = 0;
  for (; state.epoch < t.epochs && exit_code == 0; ++state.epoch, state.step_in_epoch = 0) {
    const double epoch_start = now_seconds();
    train_data_->start_epoch(state.epoch);
    for (int64_t skip = 0; skip < state.step_in_epoch; ++skip) train_data_->next();  // mid-epoch resume
    double window[4] = {0, 0, 0, 0};  // loss sum, steps, data wait, exposed communication
    double epoch_loss[2] = {0, 0};
    double window_start = now_seconds();
    while (true) {
      if (comm_) comm_->set_step(state.global_step);
      const double w0 = now_seconds();
      const datasets::Batch* batch = train_data_->next();
      const double waited = now_seconds() - w0;
      if (timeline_) timeline_->span("data wait", "data", w0, waited, Timeline::main_thread);
      if (!batch) break;
      // Whether any rank was asked to stop: summed in the background while this step computes, so every
      // rank stops after the same step.
      int64_t stop = (stop_requested() || state.global_step + 1 == stop_at_step_) ? 1 : 0;
      std::shared_ptr<comm::Work> stop_vote;
      if (comm_) stop_vote = comm_->all_reduce(&stop, 1, ops::DType::i64, comm::ReduceOp::sum,
                                               comm::fingerprint("stop vote", 0, 8), "stop vote");
      const double lr = schedule.at(state.global_step);
      const StepResult r = train_step(*batch, lr);
      if (stop_vote) stop_vote->wait();
      CONVOY_CHECK(std::isfinite(r.loss), "the training loss became " << r.loss << " at epoch " << state.epoch + 1
                                                                      << ", step " << state.step_in_epoch + 1
                                                                      << ": lower train.base_lr or check the data");
      window[0] += r.loss, window[1] += 1, window[2] += waited, window[3] += r.comm_wait_s;
      epoch_loss[0] += r.loss, epoch_loss[1] += 1;
      ++state.step_in_epoch, ++state.global_step, ++steps_this_run;
      state.graph_step = graph_->step();
      if (state.step_in_epoch % cfg_.log.interval == 0 || state.step_in_epoch == steps) {
        sum_over_ranks(window, 4, "progress metrics");
        const double now = now_seconds(), span = now - window_start;
        StepMetrics m;
        m.epoch = state.epoch, m.step = state.step_in_epoch, m.steps_per_epoch = steps;
        m.global_step = state.global_step, m.loss = window[0] / window[1], m.lr = lr;
        const double steps_in_window = window[1] / size_;
        m.images_per_s = steps_in_window * static_cast<double>(t.batch_size) / span;
        m.data_wait_share = window[2] / size_ / span;
        m.comm_wait_share = window[3] / size_ / span;
        m.elapsed_s = now - start;
        const double per_step = (now - start) / static_cast<double>(steps_this_run);
        m.eta_s = per_step * static_cast<double>(t.epochs * steps - state.global_step);
        metrics.step(m);
        window_start = now;
        std::fill(window, window + 4, 0.0);
      }
      if (stop > 0) {
        if (rank_ == 0)
          spdlog::warn("{}: checkpointing at epoch {}, step {}",
                       state.global_step == stop_at_step_ ? "stop step reached" : "preemption signal", state.epoch + 1,
                       state.step_in_epoch);
        save_checkpoint(state);
        exit_code = kExitPreempted;
        break;
      }
    }
    if (exit_code) break;
    sum_over_ranks(epoch_loss, 2, "epoch loss");
    EpochMetrics em;
    em.epoch = state.epoch;
    em.train_loss = epoch_loss[1] > 0 ? epoch_loss[0] / epoch_loss[1] : 0;
    em.epoch_s = now_seconds() - epoch_start;
    em.train_images_per_s = epoch_loss[1] / size_ * static_cast<double>(t.batch_size) / em.epoch_s;
    const bool last = state.epoch + 1 == t.epochs;
    if (last || (cfg_.eval.every_epochs > 0 && (state.epoch + 1) % cfg_.eval.every_epochs == 0)) {
      EvalResult r = evaluate();
      if (last) final_eval_ = r;
      em.evaluated = true;
      em.val_loss = r.loss, em.top1 = r.top1, em.top5 = r.top5, em.val_samples = r.samples;
    }
    em.elapsed_s = now_seconds() - start;
    metrics.epoch(em);
    if (last || (cfg_.checkpoint.every_epochs > 0 && (state.epoch + 1) % cfg_.checkpoint.every_epochs == 0)) {
      TrainingState done = state;
      done.epoch += 1, done.step_in_epoch = 0;
      if (comm_) comm::broadcast_buffers(*comm_, *graph_);  // all ranks hold what rank 0 saves
      save_checkpoint(done);
    }
  }
  // No rank leaves before rank 0 has finished writing: a launcher ends the job when the first rank exits.
  if (comm_) comm_->barrier("end of training")->wait();
  if (timeline_) {
    timeline_->write();
    if (rank_ == 0) spdlog::info("timeline written to {} (one file per rank)", timeline_->path());
  }
  return exit_code;
}

int run_with_world(const std::function<int(const comm::World&)>& body) {
  std::unique_ptr<comm::World> world;
  try {
    world = std::make_unique<comm::World>();
    set_up_logging(world->size() > 1 ? world->rank() : -1, false);
    return body(*world);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "convoy: error: %s\n", e.what());
    std::fflush(stderr);
    if (world && world->size() > 1) {
      // Peers may be gone or blocked in a collective: MPI_Finalize would wait for them forever. Give the
      // other ranks a moment to print their own diagnosis before the launcher tears the job down.
      std::this_thread::sleep_for(std::chrono::seconds(1));
      std::_Exit(1);
    }
    return 1;
  }
}

}  // namespace convoy::trainer
