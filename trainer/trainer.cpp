#include "trainer/trainer.h"

#include <sched.h>

#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "comm/agreement.h"
#include "datasets/transforms.h"
#include "trainer/mixup.h"
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
  o.resize_raw = c.data.resize_raw;
  o.on_error = c.data.on_error == "skip" ? datasets::LoaderOptions::OnError::skip : datasets::LoaderOptions::OnError::fail;
  return o;
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
  local_batch_ = t.batch_size / size_ / t.accumulate_steps;  // one micro-batch
  if (rank_ == 0) std::filesystem::create_directories(run_dir_);
  const int cores = cores_per_rank(world ? world->local_size() : 1);
  const int compute_threads = t.deterministic ? 1 : (t.threads > 0 ? t.threads : cores);
  const int data_threads = t.deterministic ? 1 : (cfg_.data.threads > 0 ? cfg_.data.threads : cores);
  try {
    ops::BackendOptions bo;
    bo.threads = compute_threads;
    if (world) bo.local_rank = world->local_rank(), bo.local_size = world->local_size();
    bo.tf32 = t.tf32;
    bo.deterministic = t.deterministic;
    backend_ = ops::make_backend(t.device, bo);
  } catch (const Error& e) {
    CONVOY_FAIL(cfg_.source << ": train.device: " << e.message());
  }
  try {
    precision_ = plan_precision(t.precision, *backend_);
  } catch (const Error& e) {
    CONVOY_FAIL(cfg_.source << ": train.precision: " << e.message());
  }
  if (precision_.loss_scaling) scaler_ = std::make_unique<LossScaler>(LossScaleOptions{t.loss_scale_init, t.loss_scale_window});
  try {
    comm::require_communicator(cfg_.comm.backend, backend_->device());  // on one rank too: the config is wrong
  } catch (const Error& e) {
    CONVOY_FAIL(cfg_.source << ": comm.backend: " << e.message());
  }
  const comm::Algorithm algorithm = comm::parse_algorithm(cfg_.comm.algorithm);
  try {
    comm::require_algorithm(cfg_.comm.backend, backend_->device(), algorithm);
  } catch (const Error& e) {
    CONVOY_FAIL(cfg_.source << ": comm.algorithm: " << e.message());
  }
  if (size_ > 1) {
    comm::Planes planes = comm::make_planes(cfg_.comm.backend, backend_->device(), *world, cfg_.comm.timeout_s,
                                            comm::parse_check_mode(cfg_.comm.check), algorithm);
    record_ = std::move(planes.record);
    control_ = std::move(planes.control);
    data_ = std::move(planes.data);
  }

  datasets::LoaderOptions train_opts = loader_options(cfg_, true, data_threads, local_batch_, rank_, size_);
  datasets::LoaderOptions val_opts = loader_options(cfg_, false, data_threads, local_batch_, rank_, size_);
  train_opts.memory = val_opts.memory = staging_memory(*backend_);
  train_data_ = std::make_unique<datasets::Loader>(train_opts);
  val_data_ = std::make_unique<datasets::Loader>(val_opts);
  if (rank_ == 0)
    for (const datasets::Loader* l : {train_data_.get(), val_data_.get()})
      if (const std::string notice = l->dataset().unchecked_notice(); !notice.empty()) spdlog::info("notice: {}", notice);
  const int64_t data_classes = train_data_->dataset().num_classes();
  classes_ = cfg_.model.num_classes > 0 ? cfg_.model.num_classes : data_classes;
  CONVOY_CHECK(classes_ >= data_classes, cfg_.source << ": model.num_classes " << classes_ << " is smaller than the "
                                                     << data_classes << " classes of " << cfg_.data.dir);
  const int64_t channels = train_data_->channels();
  CONVOY_CHECK(cfg_.model.in_channels == 0 || cfg_.model.in_channels == channels,
               cfg_.source << ": model.in_channels " << cfg_.model.in_channels << " but the data has " << channels
                           << " channels");

  ops::ModelOptions mo;
  mo.num_classes = classes_, mo.in_channels = channels, mo.zero_gamma = cfg_.model.zero_gamma;
  mo.width = cfg_.model.width, mo.stem_stride = cfg_.model.stem_stride, mo.aux_logits = cfg_.model.aux_logits;
  graph_ = ops::make_model(cfg_.model.name, mo);
  const ops::Shape input{local_batch_, train_data_->height(), train_data_->width(), channels};
  graph_->set_emulated_storage(precision_.emulated);
  graph_->set_compute_dtype(precision_.compute);
  if (cfg_.model.sync_bn && size_ > 1) {  // one rank: plain batch norm is the same thing
    sync_sum_ = std::make_unique<comm::CommunicatorSum>(*control_, *backend_);
    graph_->set_cross_rank_sum(sync_sum_.get());
  }
  graph_->setup(backend_.get(), input);
  graph_->init_params(t.seed);
  graph_->set_dropout_seed(t.seed + static_cast<uint64_t>(rank_));  // each rank drops its own units
  if (!cfg_.model.init_from.empty()) load_weights(cfg_.model.init_from, *graph_);
  sgd_ = std::make_unique<Sgd>(*graph_, SgdOptions{static_cast<float>(t.momentum), static_cast<float>(t.weight_decay),
                                                   t.nesterov, t.no_bias_decay, t.optimizer == "lars",
                                                   static_cast<float>(t.lars_trust)});
  if (size_ > 1) {
    comm::broadcast_model(*data_, *graph_);
    comm::check_startup_agreement(*control_, cfg_.hash(), *graph_);
    reducer_ = std::make_unique<comm::GradReducer>(
        *graph_, *data_,
        comm::ReducerOptions{cfg_.comm.first_bucket_mb, cfg_.comm.bucket_mb, wire_type(cfg_.comm.wire)});
  }
  step_ = std::make_unique<TrainStep>(*graph_, *sgd_, StepPlanes{reducer_.get(), control_.get(), record_.get(), size_},
                                      classes_, static_cast<float>(t.label_smoothing), scaler_.get(),
                                      static_cast<int>(t.accumulate_steps));
  if (t.mixup_alpha > 0) step_->use_mixup();
  if (!t.teacher.empty()) {
    const std::string name = t.teacher_model.empty() ? cfg_.model.name : t.teacher_model;
    try {
      teacher_ = ops::make_model(name, {classes_, channels, false});
      teacher_->setup(backend_.get(), input);
      teacher_->init_params(t.seed);
      load_any_weights(t.teacher, *teacher_);
    } catch (const Error& e) {
      CONVOY_FAIL(cfg_.source << ": train.teacher " << t.teacher << " (a " << name << "): " << e.message());
    }
    step_->use_teacher(*teacher_, static_cast<float>(t.distill_temperature));
    if (rank_ == 0)
      spdlog::info("distilling from {} ({}), temperature {}", t.teacher, name, t.distill_temperature);
  }
  batches_ = std::make_unique<DeviceBatches>(*backend_, input);
  eval_sums_ = ops::Tensor::empty(ops::Shape{3}, ops::DType::f64, backend_->allocator());
  eval_sums_host_ = ops::Tensor::empty(ops::Shape{3}, ops::DType::f64, backend_->staging_allocator());
  if (cfg_.eval.flip) {
    mirror_host_ = ops::Tensor::empty(input, ops::DType::f32, backend_->staging_allocator());
    mirror_images_ = ops::Tensor::empty(input, ops::DType::f32, backend_->allocator());
    mean_logits_ = ops::Tensor::empty(ops::Shape{input[0], classes_}, ops::DType::f32, backend_->allocator());
    mirror_copied_ = backend_->make_event();
  }
  if (rank_ == 0)
    spdlog::info("{} on {} x {}: {} parameters, {} classes, input {}x{}x{}, global batch {} ({} per rank{}), {} "
                 "steps per epoch, {}{}",
                 cfg_.model.name, size_, backend_->name(), graph_->num_params(), classes_, channels,
                 train_data_->height(), train_data_->width(), t.batch_size, local_batch_,
                 t.accumulate_steps > 1 ? " x " + std::to_string(t.accumulate_steps) + " accumulated micro-batches" : "",
                 train_data_->batches_per_epoch() / t.accumulate_steps, precision_.describe,
                 reducer_ ? ", " + std::to_string(reducer_->buckets().size()) + " gradient buckets over " +
                                std::string(data_->name()) + (reducer_->staged() ? " (staged through host memory)" : "")
                          : "");
}

Trainer::~Trainer() = default;

void Trainer::enable_timeline(const std::string& path) {
  timeline_ = std::make_unique<Timeline>(path + ".rank" + std::to_string(rank_) + ".json", rank_, *graph_);
  graph_->set_observer(timeline_.get());
  step_->set_timeline(timeline_.get());
}

void Trainer::sum_over_ranks(double* values, size_t n, const char* what) {
  if (!control_) return;
  control_->all_reduce(comm::host_values(values, n), comm::ReduceOp::sum, comm::fingerprint(what, 0, n * 8), what)
      ->wait();
}

EvalResult Trainer::evaluate() {
  const double t0 = now_seconds();
  // Every rank evaluates rank 0's model: its BN running statistics are the ones checkpoints keep.
  if (data_) comm::broadcast_buffers(*data_, *graph_);
  graph_->set_training(false);
  ops::ExecContext& ctx = backend_->context();
  backend_->fill(ctx, eval_sums_, 0.0);
  double samples = 0;
  val_data_->start_epoch(0);
  const datasets::Batch* host = val_data_->next();
  DeviceBatch* cur = host ? &batches_->start(*host) : nullptr;
  bool mirror_pending = false;
  while (cur) {
    batches_->wait_copied(*cur);
    if (cfg_.eval.flip) {  // the mirrored view, made before the loader takes the host batch back
      if (mirror_pending) mirror_copied_->synchronize();  // the previous batch's copy has read the buffer
      datasets::mirror_images(host->images_f32(), host->n, host->height, host->width, host->channels,
                              mirror_host_.data_as<float>());
    }
    host = val_data_->next();  // hands the copied batch back to the loader
    DeviceBatch* next = host ? &batches_->start(*host) : nullptr;
    batches_->ready(*cur);
    const ops::Tensor* logits = &graph_->forward(cur->images);
    if (cfg_.eval.flip) {
      backend_->fill(ctx, mean_logits_, 0.0);
      backend_->add_into(ctx, *logits, mean_logits_, 0.5f);
      backend_->copy(ctx, mirror_host_, mirror_images_);
      mirror_copied_->record(ctx);
      mirror_pending = true;
      backend_->add_into(ctx, graph_->forward(mirror_images_), mean_logits_, 0.5f);
      logits = &mean_logits_;
    }
    step_->loss().evaluate(ctx, *logits, cur->labels, cur->valid, eval_sums_);
    samples += static_cast<double>(cur->num_valid);
    cur = next;
  }
  graph_->set_training(true);
  backend_->copy(ctx, eval_sums_, eval_sums_host_);
  ctx.synchronize();
  const double* d = eval_sums_host_.host<double>();
  struct {
    double loss, top1, top5, samples;
  } sums{d[0], d[1], d[2], samples};
  sum_over_ranks(&sums.loss, 4, "evaluation counts");
  EvalResult r;
  r.samples = static_cast<int64_t>(sums.samples);
  CONVOY_CHECK(r.samples > 0, "the validation split '" << cfg_.data.val_split << "' of " << cfg_.data.dir
                                                       << " has no records");
  r.loss = sums.loss / sums.samples;
  r.top1 = sums.top1 / sums.samples;
  r.top5 = sums.top5 / sums.samples;
  r.seconds = now_seconds() - t0;
  return r;
}

void Trainer::save_checkpoint(const TrainingState& state) {
  if (rank_ != 0) return;
  std::string path = store_.save(*graph_, sgd_->momentum(), state, cfg_.to_yaml());
  if (state.step_in_epoch == 0)
    spdlog::info("checkpoint {} after epoch {} (global step {})", path, state.epoch, state.global_step);
  else
    spdlog::info("checkpoint {} at epoch {}, step {} (global step {})", path, state.epoch + 1, state.step_in_epoch,
                 state.global_step);
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
  if (control_) {
    char buf[4096] = {};
    CONVOY_CHECK(path.size() < sizeof buf, "the checkpoint path " << path << " is longer than " << sizeof buf - 1
                                                                  << " characters");
    std::snprintf(buf, sizeof buf, "%s", path.c_str());
    control_->broadcast(comm::host_bytes(buf, sizeof buf), 0, comm::fingerprint("resume path", 0, sizeof buf),
                        "broadcast of the checkpoint path")
        ->wait();
    path = buf;
  }
  if (path.empty()) return std::nullopt;
  return path;
}

void Trainer::load_weights_from(const std::string& checkpoint) { load_checkpoint(checkpoint, *graph_, nullptr); }
void Trainer::load_plain_weights(const std::string& file) { load_weights(file, *graph_); }

int Trainer::train(const std::string& resume) {
  const TrainConfig& t = cfg_.train;
  // Optimizer steps: k micro-batches each (a few trailing micro-batches of an epoch may go unused).
  const int64_t k = t.accumulate_steps;
  const int64_t steps = train_data_->batches_per_epoch() / k;
  CONVOY_CHECK(steps > 0, cfg_.source << ": an epoch of " << train_data_->batches_per_epoch()
                                      << " micro-batches makes no step of " << k << " (train.accumulate_steps)");
  LrSchedule schedule(t, steps);
  TrainingState state;
  state.seed = t.seed;
  if (auto path = choose_resume(resume)) {
    CheckpointContents c = load_checkpoint(*path, *graph_, &sgd_->momentum());
    state = c.state;
    graph_->set_step(state.graph_step);
    if (scaler_ && state.loss_scaling)
      scaler_->restore({state.loss_scale, state.loss_scale_good_steps, state.loss_scale_skipped});
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
    // A resumed run starts mid-epoch at its checkpoint's batch, without decoding the batches before it.
    train_data_->start_epoch(state.epoch, state.step_in_epoch * k);
    struct {
      double loss, steps, data_wait, comm_wait, skipped;  // skipped: this rank's damaged records so far
    } window{0, 0, 0, 0, 0};
    struct {
      double loss, steps;
    } epoch_loss{0, 0};
    bool save_at_epoch_end = false;
    double window_start = now_seconds();
    auto fetch = [&]() -> DeviceBatch* {
      const double w0 = now_seconds();
      const datasets::Batch* host = train_data_->next();
      const double waited = now_seconds() - w0;
      window.data_wait += waited;
      if (timeline_) timeline_->span("data wait", "data", w0, waited, Timeline::main_thread);
      return host ? &batches_->start(*host) : nullptr;
    };
    DeviceBatch* cur = fetch();
    while (cur && state.step_in_epoch < steps) {
      if (data_) data_->set_step(state.global_step);
      if (control_) control_->set_step(state.global_step);
      for (int64_t m = 0; m < k; ++m) {
        // Batch i+1 moves to the device while micro-batch i computes.
        batches_->wait_copied(*cur);
        DeviceBatch* next = fetch();
        batches_->ready(*cur);
        if (t.mixup_alpha > 0)  // one lambda per step, the same on every rank: a function of (seed, step)
          step_->set_mix_lambda(static_cast<float>(mixup_lambda(t.seed, state.global_step, t.mixup_alpha)));
        step_->micro_batch(cur->images, cur->labels);
        cur = next;
        CONVOY_CHECK(cur || m + 1 == k, "internal: the loader ran out of batches inside a step");
      }
      const bool stop = stop_requested() || state.global_step + 1 == stop_at_step_;
      const double lr = schedule.at(state.global_step);
      const TrainStep::Result r = step_->finish(lr, stop, state.global_step);
      if (scaler_) {
        state.loss_scaling = true;
        state.loss_scale = scaler_->scale();
        state.loss_scale_good_steps = scaler_->state().clean;
        state.loss_scale_skipped = scaler_->skipped();
      }
      if (r.verdict.nonfinite && r.skipped)
        CONVOY_FAIL("the gradients stayed non-finite at the smallest loss scale (1) at epoch "
                    << state.epoch + 1 << ", step " << state.step_in_epoch + 1 << " (global step " << state.global_step
                    << "): the run diverged; no rank applied those steps' updates: lower train.base_lr");
      if (r.verdict.nonfinite) {
        std::string ranks;
        for (int k : r.verdict.nonfinite_ranks) ranks += (ranks.empty() ? "" : ", ") + std::to_string(k);
        CONVOY_FAIL("the training loss became non-finite at epoch "
                    << state.epoch + 1 << ", step " << state.step_in_epoch + 1 << " (global step " << state.global_step
                    << ", on rank " << ranks << "); no rank applied that step's update and the last checkpoint holds "
                    << "finite weights: lower train.base_lr or check the data");
      }
      window.steps += 1, window.comm_wait += r.comm_wait_s;
      ++state.step_in_epoch, ++state.global_step, ++steps_this_run;
      if (control_ && size_ > 1 && cfg_.comm.verify_every > 0 && state.global_step % cfg_.comm.verify_every == 0)
        comm::check_weights_agree(*control_, *graph_, state.global_step);
      if (cfg_.checkpoint.every_steps > 0 && state.global_step % cfg_.checkpoint.every_steps == 0 && !r.verdict.stop) {
        if (state.step_in_epoch < steps)
          save_checkpoint(state);
        else
          save_at_epoch_end = true;  // the epoch's last step: saved as the epoch's end, below
      }
      state.graph_step = graph_->step();
      if (state.step_in_epoch % cfg_.log.interval == 0 || state.step_in_epoch == steps) {
        window.loss = step_->take_loss_sum();
        window.skipped = static_cast<double>(skipped_records());
        epoch_loss.loss += window.loss, epoch_loss.steps += window.steps;
        sum_over_ranks(&window.loss, 5, "progress metrics");
        const double now = now_seconds(), span = now - window_start;
        StepMetrics m;
        m.epoch = state.epoch, m.step = state.step_in_epoch, m.steps_per_epoch = steps;
        m.global_step = state.global_step, m.loss = window.loss / window.steps, m.lr = lr;
        if (scaler_) m.loss_scale = scaler_->scale(), m.skipped_steps = scaler_->skipped();
        m.skipped_records = static_cast<int64_t>(window.skipped);
        const double steps_in_window = window.steps / size_;
        m.images_per_s = steps_in_window * static_cast<double>(t.batch_size) / span;
        m.data_wait_share = window.data_wait / size_ / span;
        m.comm_wait_share = window.comm_wait / size_ / span;
        m.elapsed_s = now - start;
        const double per_step = (now - start) / static_cast<double>(steps_this_run);
        m.eta_s = per_step * static_cast<double>(t.epochs * steps - state.global_step);
        metrics.step(m);
        window_start = now;
        window = {0, 0, 0, 0, 0};
      }
      if (r.verdict.stop) {
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
    sum_over_ranks(&epoch_loss.loss, 2, "epoch loss");
    EpochMetrics em;
    em.epoch = state.epoch;
    em.train_loss = epoch_loss.steps > 0 ? epoch_loss.loss / epoch_loss.steps : 0;
    em.epoch_s = now_seconds() - epoch_start;
    em.train_images_per_s = epoch_loss.steps / size_ * static_cast<double>(t.batch_size) / em.epoch_s;
    const bool last = state.epoch + 1 == t.epochs;
    if (last || (cfg_.eval.every_epochs > 0 && (state.epoch + 1) % cfg_.eval.every_epochs == 0)) {
      EvalResult r = evaluate();
      if (last) final_eval_ = r;
      em.evaluated = true;
      em.val_loss = r.loss, em.top1 = r.top1, em.top5 = r.top5, em.val_samples = r.samples;
    }
    double skipped = static_cast<double>(skipped_records());
    sum_over_ranks(&skipped, 1, "skipped records");
    em.skipped_records = static_cast<int64_t>(skipped);
    em.elapsed_s = now_seconds() - start;
    metrics.epoch(em);
    if (last || save_at_epoch_end ||
        (cfg_.checkpoint.every_epochs > 0 && (state.epoch + 1) % cfg_.checkpoint.every_epochs == 0)) {
      TrainingState done = state;
      done.epoch += 1, done.step_in_epoch = 0;
      if (data_) comm::broadcast_buffers(*data_, *graph_);  // all ranks hold what rank 0 saves
      save_checkpoint(done);
    }
  }
  // No rank leaves before rank 0 has finished writing: a launcher ends the job when the first rank exits.
  if (control_) control_->barrier("end of training")->wait();
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
    }
    exit_after_error();
  }
}

}  // namespace convoy::trainer
