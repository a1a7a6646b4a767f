// The data commands: `convoy convert imagefolder|idx`, `convoy inspect`, `convoy bench data`.
// The library (datasets/) takes rank, size and the two collectives it needs as functions, which
// comm::MpiSession provides. Conversions run under mpirun (ranks write disjoint shards) or alone.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "comm/mpi_session.h"
#include "common/error.h"
#include "common/timer.h"
#include "datasets/idx.h"
#include "datasets/imagefolder.h"
#include "datasets/inspect.h"
#include "datasets/loader.h"
#include "trainer/commands.h"

namespace convoy::trainer {
namespace {

// The conversions' view of MPI: rank, size and the two string collectives, from an MpiSession.
datasets::ConvertComm convert_comm(const comm::MpiSession& mpi) {
  datasets::ConvertComm c;
  c.rank = mpi.rank();
  c.size = mpi.size();
  c.gather = [&mpi](const std::string& s) { return mpi.gather(s); };
  c.broadcast = [&mpi](const std::string& s) { return mpi.broadcast(s); };
  return c;
}

void print_summary(const datasets::ConvertSummary& s, const std::string& out, int ranks) {
  std::printf("converted split %s into %s: %ld records in %ld shards (%ld sources, %zu skipped, %d rank%s)\n",
              s.split.c_str(), out.c_str(), static_cast<long>(s.records), static_cast<long>(s.shards),
              static_cast<long>(s.sources), s.skipped.size(), ranks, ranks == 1 ? "" : "s");
  const size_t shown = std::min<size_t>(s.skipped.size(), 50);
  for (size_t i = 0; i < shown; ++i)
    std::printf("  skipped %s: %s\n", s.skipped[i].file.c_str(), s.skipped[i].reason.c_str());
  if (shown < s.skipped.size())
    std::printf("  ... and %zu more (all are listed under \"skipped\" in %s/index.json)\n", s.skipped.size() - shown,
                out.c_str());
}

int run_convert_imagefolder(const datasets::ImageFolderOptions& o) {
  comm::MpiSession mpi;
  const auto summary = datasets::convert_imagefolder(o, convert_comm(mpi));
  if (mpi.rank() == 0) print_summary(summary, o.out, mpi.size());
  return 0;
}

int run_convert_idx(const datasets::IdxOptions& o) {
  comm::MpiSession mpi;
  const auto summary = datasets::convert_idx(o, convert_comm(mpi));
  if (mpi.rank() == 0) print_summary(summary, o.out, mpi.size());
  return 0;
}

struct InspectArgs {
  std::string dir;
  bool verify = false;
  int64_t decode = 0;
  uint64_t seed = 0;
};

int run_inspect(const InspectArgs& a) {
  datasets::InspectOptions o;
  o.verify_checksums = a.verify;
  o.decode = a.decode;
  o.seed = a.seed;
  const datasets::InspectReport r = datasets::inspect_dataset(a.dir, o);
  const auto& index = r.index;
  std::printf("dataset %s: %s records, %ld classes\n", a.dir.c_str(), datasets::encoding_name(index.encoding),
              static_cast<long>(index.num_classes()));
  for (const auto& s : r.splits) {
    std::printf("  split %s: %ld records in %ld shards, %.1f MB", s.split.c_str(), static_cast<long>(s.records),
                static_cast<long>(s.shards), static_cast<double>(s.bytes) / 1e6);
    if (s.skipped_at_conversion) std::printf(", %ld files skipped at conversion", static_cast<long>(s.skipped_at_conversion));
    std::printf("\n");
    if (a.verify)
      std::printf("    checksums: %ld of %ld shards verified, %ld of %ld records\n", static_cast<long>(s.checksums_verified),
                  static_cast<long>(s.shards), static_cast<long>(s.records_verified), static_cast<long>(s.records));
    if (s.unchecked_shards)
      std::printf("    notice: %ld shards are format version 1, without per-record checksums (convert again for them)\n",
                  static_cast<long>(s.unchecked_shards));
    if (a.decode > 0)
      std::printf("    decoded %ld random records (width %ld-%ld, height %ld-%ld)\n", static_cast<long>(s.decoded),
                  static_cast<long>(s.min_width), static_cast<long>(s.max_width), static_cast<long>(s.min_height),
                  static_cast<long>(s.max_height));
    const size_t k = s.per_class.size();
    if (k <= 20) {
      std::printf("    per class:");
      for (size_t c = 0; c < k; ++c) std::printf(" %s=%ld", index.classes[c].c_str(), static_cast<long>(s.per_class[c]));
      std::printf("\n");
    } else {
      const auto [lo, hi] = std::minmax_element(s.per_class.begin(), s.per_class.end());
      const long empty = static_cast<long>(std::count(s.per_class.begin(), s.per_class.end(), 0));
      std::printf("    per class: %ld to %ld records (%ld classes have none)\n", static_cast<long>(*lo),
                  static_cast<long>(*hi), empty);
    }
  }
  if (r.problems.empty()) {
    std::printf("no problems found\n");
    return 0;
  }
  std::fprintf(stderr, "%zu problem%s found:\n", r.problems.size(), r.problems.size() == 1 ? "" : "s");
  for (const auto& p : r.problems) std::fprintf(stderr, "  %s\n", p.c_str());
  return 1;
}

// User + system CPU seconds of this process so far (all threads).
double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct BenchDataArgs {
  std::string data, split = "train";
  int threads = 0, batches = 50, warmup = 5, image_size = 224, prefetch = 2;
  int64_t batch = 64;
  uint64_t seed = 0;
  bool eval = false, bf16 = false, json = false;
};

int run_bench_data(const BenchDataArgs& a) {
  CONVOY_CHECK(a.batches > 0 && a.warmup >= 0, "--batches must be positive and --warmup non-negative.");
  datasets::LoaderOptions o;
  o.data_dir = a.data;
  o.split = a.split;
  o.batch_size = a.batch;
  o.seed = a.seed;
  o.threads = a.threads > 0 ? a.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  o.prefetch_depth = a.prefetch;
  o.train = !a.eval;
  o.output_size = a.image_size;
  o.eval_resize = std::max(a.image_size * 8 / 7, a.image_size);
  o.dtype = a.bf16 ? datasets::PixelType::bf16 : datasets::PixelType::f32;
  datasets::Loader loader(o);

  int64_t epoch = 0, images = 0;
  double checksum = 0, t0 = 0, cpu0 = 0;
  loader.start_epoch(epoch);
  for (int i = 0; i < a.warmup + a.batches; ++i) {
    if (i == a.warmup) {
      t0 = now_seconds();
      cpu0 = cpu_seconds();
      images = 0;
    }
    const datasets::Batch* b = loader.next();
    if (!b) {
      loader.start_epoch(++epoch);
      b = loader.next();
    }
    images += b->n;
    checksum += b->labels[0];  // touch the batch
  }
  const double seconds = now_seconds() - t0;
  const double cpu = cpu_seconds() - cpu0;
  const double per_s = static_cast<double>(images) / seconds;
  // Images per CPU-second: the per-core rate, which other processes on a shared machine do not change.
  const double per_cpu_s = static_cast<double>(images) / cpu;
  const auto encoding = datasets::encoding_name(loader.dataset().encoding());
  if (a.json) {
    nlohmann::json j = {{"bench", "data"},
                        {"data", a.data},
                        {"split", a.split},
                        {"encoding", encoding},
                        {"transforms", a.eval ? "eval" : "train"},
                        {"batch", a.batch},
                        {"height", loader.height()},
                        {"width", loader.width()},
                        {"channels", loader.channels()},
                        {"dtype", a.bf16 ? "bf16" : "f32"},
                        {"threads", o.threads},
                        {"batches", a.batches},
                        {"seconds", seconds},
                        {"images_per_s", per_s},
                        {"images_per_s_per_thread", per_s / o.threads},
                        {"cpu_seconds", cpu},
                        {"images_per_cpu_s", per_cpu_s}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("convoy bench data: %s (split %s, %s, %ld records), %s transforms, batch %ld, %ldx%ldx%ld %s\n",
                a.data.c_str(), a.split.c_str(), encoding, static_cast<long>(loader.dataset().size()),
                a.eval ? "eval" : "train", static_cast<long>(a.batch), static_cast<long>(loader.height()),
                static_cast<long>(loader.width()), static_cast<long>(loader.channels()), a.bf16 ? "bf16" : "f32");
    std::printf("  %d batches after %d warm-up, %d decode threads: %.3f s\n", a.batches, a.warmup, o.threads, seconds);
    std::printf("  %.1f images/s, %.1f images/s per thread; %.1f images per CPU-second (%.2f CPU-s used)\n", per_s,
                per_s / o.threads, per_cpu_s, cpu);
  }
  return checksum < 0 ? 1 : 0;
}

}  // namespace

void add_convert_command(CLI::App& app, Action& action) {
  auto* convert = app.add_subcommand("convert", "Convert image files into convoy's sharded HDF5 format");
  convert->require_subcommand(1);

  auto f = std::make_shared<datasets::ImageFolderOptions>();
  auto* folder = convert->add_subcommand(
      "imagefolder", "JPEG files in the ImageNet layout (ROOT/<class>/*.JPEG) or listed in a file,label CSV");
  folder->add_option("--root", f->root, "Source folder")->required();
  folder->add_option("--out", f->out, "Output folder (shards and index.json)")->required();
  folder->add_option("--split", f->split, "Split name (train, val, ...)")->capture_default_str();
  folder->add_option("--shard-size", f->shard_size, "Records per shard")->capture_default_str();
  folder->add_option("--labels", f->labels_csv, "CSV of file,label (paths relative to --root) instead of class folders");
  folder->add_option("--threads", f->threads, "File-checking threads per rank (default: all cores)");
  folder->add_flag("--strict", f->strict, "Stop at the first file that is not a usable JPEG instead of skipping it");
  folder->callback([f, &action] { action = [f] { return run_convert_imagefolder(*f); }; });

  auto x = std::make_shared<datasets::IdxOptions>();
  auto* idx = convert->add_subcommand("idx", "MNIST-style IDX files (.gz accepted), stored as raw uint8 images");
  idx->add_option("--images", x->images, "IDX images file")->required();
  idx->add_option("--labels", x->labels, "IDX labels file")->required();
  idx->add_option("--out", x->out, "Output folder (shards and index.json)")->required();
  idx->add_option("--split", x->split, "Split name (train, val, ...)")->capture_default_str();
  idx->add_option("--shard-size", x->shard_size, "Records per shard")->capture_default_str();
  idx->add_option("--first", x->first, "Convert from this record of the files on (0: the first)")->capture_default_str();
  idx->add_option("--count", x->count, "Convert this many records (-1: to the end); with --first, a held-out part")
      ->capture_default_str();
  idx->callback([x, &action] { action = [x] { return run_convert_idx(*x); }; });
}

void add_inspect_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand("inspect", "Check a converted dataset: records per split and class, shards, "
                                            "checksums, decoding; exits non-zero on any inconsistency");
  cmd->add_option("dir", a->dir, "Dataset folder (with index.json)")->required();
  cmd->add_flag("--verify", a->verify, "Verify every shard's SHA-256 against index.json");
  cmd->add_option("--decode", a->decode, "Decode this many random records per split")->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed for choosing the records to decode")->capture_default_str();
  cmd->callback([a, &action] { action = [a] { return run_inspect(*a); }; });
}

void add_bench_data_command(CLI::App& bench, Action& action) {
  auto a = std::make_shared<BenchDataArgs>();
  auto* cmd = bench.add_subcommand("data", "Time the data pipeline: read, decode, augment, batch");
  cmd->add_option("--data", a->data, "Dataset folder (with index.json)")->required();
  cmd->add_option("--split", a->split, "Split")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Decode threads (default: all cores)");
  cmd->add_option("--batches", a->batches, "Timed batches")->capture_default_str();
  cmd->add_option("--warmup", a->warmup, "Untimed batches first")->capture_default_str();
  cmd->add_option("--batch", a->batch, "Images per batch")->capture_default_str();
  cmd->add_option("--image-size", a->image_size, "Output height and width (jpeg)")->capture_default_str();
  cmd->add_option("--prefetch", a->prefetch, "Prefetch depth (batches)")->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed")->capture_default_str();
  cmd->add_flag("--eval", a->eval, "Evaluation transforms (resize, center crop) instead of training augmentation");
  cmd->add_flag("--bf16", a->bf16, "Output bf16 instead of float32");
  cmd->add_flag("--json", a->json, "Print one JSON object");
  cmd->callback([a, &action] { action = [a] { return run_bench_data(*a); }; });
}

}  // namespace convoy::trainer
