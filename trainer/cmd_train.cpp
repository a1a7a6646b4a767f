// `convoy train` and `convoy eval`.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/log.h"
#include "common/stop.h"
#include "trainer/checkpoint.h"
#include "trainer/commands.h"
#include "trainer/trainer.h"

namespace convoy::trainer {
namespace {

struct TrainArgs {
  std::string config, out, resume, checkpoint, weights, timeline;
  int64_t stop_at_step = 0;
  std::vector<std::string> overrides;
};

// runs/<config file stem> unless --out says otherwise; a stable default, so --resume auto finds it.
std::string run_dir_for(const TrainArgs& a) {
  if (!a.out.empty()) return a.out;
  return "runs/" + std::filesystem::path(a.config).stem().string();
}

int run_train(const TrainArgs& a, const comm::World& world) {
  Config cfg = load_config(a.config, a.overrides);
  cfg.validate_for_world(world.size());
  const std::string dir = run_dir_for(a);
  if (world.rank() == 0) {  // refused before anything starts: a run that cannot save would lose its work
    CheckpointStore::check_writable(dir, "the run directory");
    CheckpointStore::check_writable(dir + "/checkpoints", "the checkpoint directory");
    std::ofstream out(dir + "/config.yaml");
    out << "# resolved from " << a.config << (a.overrides.empty() ? "" : " with --set overrides") << "\n"
        << cfg.to_yaml();
    CONVOY_CHECK(out.good(), "cannot write " << dir << "/config.yaml: check that the folder is writable");
    spdlog::info("run directory {}; config {} (hash {}); {} rank(s) on {} node(s), launched by {}", dir, a.config,
                 cfg.hash(), world.size(), world.nodes(), world.launcher());
  }
  install_stop_handlers();
  Trainer trainer(cfg, dir, &world);
  trainer.set_stop_at_step(a.stop_at_step);
  if (!a.timeline.empty()) trainer.enable_timeline(a.timeline);
  const int code = trainer.train(a.resume);
  if (world.rank() != 0) return code;
  if (code == kExitPreempted) {
    std::printf("stopped (preemption signal or --stop-at-step) after checkpointing; resume with --resume auto "
                "(exit code %d)\n",
                kExitPreempted);
  } else if (const auto& r = trainer.final_eval()) {
    std::printf("test accuracy: top-1 %.2f %%, top-5 %.2f %% on %lld images of split '%s' (loss %.4f)\n",
                100 * r->top1, 100 * r->top5, static_cast<long long>(r->samples), cfg.data.val_split.c_str(),
                r->loss);
  }
  std::fflush(stdout);
  return code;
}

int run_eval(const TrainArgs& a, const comm::World& world) {
  Config cfg = load_config(a.config, a.overrides);
  Trainer trainer(cfg, run_dir_for(a), &world);
  if (!a.weights.empty())
    trainer.load_plain_weights(a.weights);
  else
    trainer.load_weights_from(a.checkpoint);
  EvalResult r = trainer.evaluate();
  const std::string& what = a.weights.empty() ? a.checkpoint : a.weights;
  if (world.rank() == 0)
    std::printf("%s: top-1 %.2f %%, top-5 %.2f %%, loss %.4f on %lld images of split '%s' (%.1f s)\n",
                what.c_str(), 100 * r.top1, 100 * r.top5, r.loss, static_cast<long long>(r.samples),
                cfg.data.val_split.c_str(), r.seconds);
  return 0;
}

}  // namespace

void add_train_commands(CLI::App& app, Action& action) {
  auto a = std::make_shared<TrainArgs>();
  auto* train = app.add_subcommand("train", "Train a model from a YAML config");
  train->add_option("--config", a->config, "Experiment config (configs/*.yaml)")->required()->check(CLI::ExistingFile);
  train->add_option("--set", a->overrides, "Override a config key: --set train.base_lr=0.2 (repeatable)");
  train->add_option("--out", a->out, "Run directory (default: runs/<config name>)");
  train->add_option("--resume", a->resume, "auto (newest valid checkpoint of the run directory) or a checkpoint");
  train->add_option("--stop-at-step", a->stop_at_step,
                    "Checkpoint and stop, as on a preemption (exit code 75), after this global step");
  train->add_option("--timeline", a->timeline, "Write each rank's Chrome-trace timeline to FILE.rank<R>.json");
  train->callback([a, &action] {
    action = [a] { return run_with_world([a](const comm::World& w) { return run_train(*a, w); }); };
  });

  auto b = std::make_shared<TrainArgs>();
  auto* eval = app.add_subcommand("eval", "Evaluate a checkpoint or a weights file on the validation split");
  eval->add_option("--config", b->config, "Experiment config")->required()->check(CLI::ExistingFile);
  auto* source = eval->add_option_group("what to evaluate", "exactly one of");
  source->add_option("--checkpoint", b->checkpoint, "A convoy checkpoint")->check(CLI::ExistingFile);
  source->add_option("--weights", b->weights,
                     "An HDF5 file of /params and /buffers in PyTorch's layout, as tools/torchvision_to_h5.py "
                     "writes (torchvision's weights)")
      ->check(CLI::ExistingFile);
  source->require_option(1);
  eval->add_option("--set", b->overrides, "Override a config key (repeatable)");
  eval->callback([b, &action] {
    action = [b] { return run_with_world([b](const comm::World& w) { return run_eval(*b, w); }); };
  });
}

}  // namespace convoy::trainer
