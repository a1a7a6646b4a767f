// The experiment config: YAML parsed into plain structs, with every default and every validation in
// this one place. An unknown key, a wrong type or an out-of-range value fails before any
// training with a message that names the key and the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace convoy::trainer {

struct ModelConfig {
  std::string name = "resnet50";
  int64_t num_classes = 0;   // 0: the data set's class count
  int64_t in_channels = 0;   // 0: the data set's channel count
  bool zero_gamma = false;   // γ = 0 for the last BN of every residual block
  bool sync_bn = false;      // SyncBN: batch statistics over the global batch (all ranks), not each rank's
  double width = 1.0;        // VGG: convolution channels times width (d2l's small VGG: 0.25); 1 = torchvision's;
                             // CIFAR-style ResNets: 16/32/64 channels times width (up to 8)
  int64_t stem_stride = 1;   // CIFAR-style ResNets: the 3x3 stem's stride (2: first stage at half size)
  bool aux_logits = false;   // GoogLeNet: train its two auxiliary classifiers too (loss weight 0.3 each)
  std::string init_from;     // HDF5 with torchvision names (a checkpoint or tools/torchvision_to_h5.py output)
};

struct DataConfig {
  std::string dir;                      // converted shards with index.json
  std::string train_split = "train";
  std::string val_split = "val";
  int64_t image_size = 224;             // JPEG output size (raw data keeps its own size unless resize_raw)
  int64_t eval_resize = 256;            // JPEG evaluation: short side before the center crop
  int threads = 0;                      // decode threads per rank; 0 = cores per rank
  int prefetch = 3;                     // batches decoded ahead (>= 2)
  int64_t shuffle_window = 0;           // 0: full shuffle; W: shuffle shards, then within W records
  double flip = 0.5;                    // horizontal flip probability (training)
  int raw_pad = 4;                      // raw (IDX) training: pad-and-random-crop padding
  bool resize_raw = false;              // raw (IDX) records resized to image_size x image_size (bilinear,
                                        // as d2l's Resize) before augmentation: AlexNet, VGG on 28x28 data
  double jitter = 0.4;                  // JPEG training: brightness/contrast/saturation in [1-j, 1+j]
  double lighting = 0.1;                // JPEG training: PCA lighting noise sigma
  bool drop_last = false;               // training: drop the last partial batch instead of padding
  std::string on_error = "fail";        // a damaged record: fail (stop, naming it) | skip (replace, count)
};

struct TrainConfig {
  int64_t epochs = 90;
  int64_t batch_size = 256;             // global: over all ranks
  double base_lr = 0.1;                 // LR = base_lr * batch_size / lr_reference_batch (linear scaling)
  int64_t lr_reference_batch = 256;
  double warmup_epochs = 0;             // linear warmup from 0, per iteration
  std::string schedule = "step";        // step | cosine
  std::vector<double> milestones{30, 60, 80};  // epochs (step schedule)
  double lr_decay = 0.1;                // step schedule factor
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 1e-4;
  bool no_bias_decay = false;           // no decay on biases and BN γ/β
  double label_smoothing = 0.0;
  double mixup_alpha = 0.0;             // mixup: lambda ~ Beta(alpha, alpha) per step; 0 = off (paper: 0.2)
  std::string teacher;                  // distillation: a convoy checkpoint or a torchvision-layout weights file
  std::string teacher_model;            // the teacher's zoo model (default: model.name)
  double distill_temperature = 20.0;    // distillation temperature T (paper: 20)
  std::string precision = "fp32";       // fp32 | bf16 | fp16 (mixed precision with fp32 master weights) |
                                        // auto (trainer/precision.h: fp16 on a GPU, bf16 on a CPU with it, else fp32)
  double loss_scale_init = 65536;       // mixed precision: the dynamic loss scale's start (2^16)
  int64_t loss_scale_window = 2000;     // clean steps before it doubles
  std::string optimizer = "sgd";        // sgd | lars (layer-wise adaptive rate scaling, for batches of 8k and more)
  double lars_trust = 0.001;            // LARS trust coefficient η
  int64_t accumulate_steps = 1;         // micro-batches per optimizer step (batch_size stays the step's global batch)
  std::string device = "cpu";           // cpu | cuda | cpu-strict (the CPU kernels behind a device boundary: tests)
  bool deterministic = false;           // one compute thread, one decode thread, fixed kernel choices
  bool tf32 = true;                     // cuda: fp32 convolutions and products may use TF32 (PyTorch's cuDNN default)
  uint64_t seed = 0;
  int threads = 0;                      // compute threads per rank; 0 = cores per rank
};

struct EvalConfig {
  int64_t every_epochs = 1;             // 0: only after the last epoch
  bool flip = false;                    // also run each image mirrored left-right and score the mean of the two
                                        // logits (test-time augmentation: twice the evaluation's compute)
};

struct CheckpointConfig {
  int64_t every_epochs = 1;
  int64_t every_steps = 0;              // also every N optimizer steps (long epochs); 0: off
  int keep = 3;                         // the newest K are kept
};

struct CommConfig {
  double timeout_s = 60;                // a collective that takes longer stops the job, naming missing ranks
  double bucket_mb = 25;                // gradient all-reduce buckets (the first one is first_bucket_mb)
  double first_bucket_mb = 1;
  std::string wire = "f32";             // f32 | bf16 | f16: the type gradients travel in
  std::string backend = "auto";         // auto | mpi | nccl: the data plane (auto: nccl on cuda, mpi otherwise)
  std::string check = "step";           // step: one vote per step compares the collectives; collective: each one
  std::string algorithm = "flat";       // flat | hierarchical (MPI: reduce in the node, all-reduce the leaders)
  int64_t verify_every = 1000;          // steps between checks that every rank's weights are equal; 0: never
};

struct LogConfig {
  int64_t interval = 50;                // steps between progress lines and metrics.jsonl records
};

struct Config {
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  CommConfig comm;
  LogConfig log;
  std::string source;                   // the file it came from (for messages)

  // The config as YAML with every field resolved (what the run directory keeps).
  std::string to_yaml() const;
  // A hash (FNV-1a, 64 bits) of to_yaml(): ranks compare it before step 1.
  std::string hash() const;
  // Checks that need the world: the batch must split evenly over the ranks.
  void validate_for_world(int world_size) const;
};

// Reads `path`, applies `overrides` ("train.base_lr=0.2"; the value is YAML), validates.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from YAML text (for tests); `source` names it in messages.
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});

}  // namespace convoy::trainer
