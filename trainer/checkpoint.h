// Checkpoints: one HDF5 file per save, written by rank 0 to a temporary file, fsynced and renamed, so a
// crash never leaves a half-written checkpoint under a final name.
//
//   /params/<name>    fp32, PyTorch layout (OIHW), torchvision names ("layer1.0.conv1.weight")
//   /buffers/<name>   BN running_mean / running_var (fp32), num_batches_tracked (int64)
//   /momentum/<name>  SGD momentum, laid out like /params
//   root attributes   format = "convoy-checkpoint", version, model, epoch, step_in_epoch, global_step,
//                     graph_step, seed, loss_scaling, loss_scale, loss_scale_good_steps, loss_scale_skipped,
//                     config (YAML), sha256
// sha256 covers the name and bytes of every dataset in that order, so a damaged file is recognized.
// The /params + /buffers part is also the interop format with PyTorch (tools/torchvision_to_h5.py).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ops/graph.h"

namespace convoy::trainer {

struct TrainingState {
  int64_t epoch = 0;          // the epoch in progress
  int64_t step_in_epoch = 0;  // its optimizer steps already trained (train.accumulate_steps batches each)
  int64_t global_step = 0;    // optimizer steps since the start
  uint64_t graph_step = 0;    // the graph's training forward count (dropout masks)
  uint64_t seed = 0;
  bool loss_scaling = false;           // the run scales its loss (mixed precision); the three below hold
  double loss_scale = 1.0;             // mixed precision's dynamic loss scale (1 in fp32)
  int64_t loss_scale_good_steps = 0;   // clean steps since the scale last changed
  int64_t loss_scale_skipped = 0;      // steps skipped for overflowing gradients, over the run
};

struct CheckpointContents {
  TrainingState state;
  std::string config_yaml, model, path;
};

class CheckpointStore {
 public:
  // Checkpoints live in `dir` as checkpoint-<global step>.h5; the newest `keep` are kept.
  CheckpointStore(std::string dir, int keep);
  const std::string& dir() const { return dir_; }
  // Writes atomically, then removes all but the newest `keep`; returns the path. Refuses before writing
  // when the file system lacks the space the checkpoint needs, and on a failed write (a disk that filled
  // meanwhile) removes its temporary file: either way the previous checkpoints are left as they were and
  // the error names the path and the space. Leftover temporary files of killed writers are removed.
  std::string save(const ops::Graph& graph, const ops::Arena& momentum, const TrainingState& state,
                   const std::string& config_yaml) const;
  // Refuses a folder where checkpoints cannot be written (read-only, no permission), naming it and why:
  // creates it and writes, syncs and removes a probe file. `what` names the folder's role.
  static void check_writable(const std::string& dir, const std::string& what);
  // About how many bytes save() writes for this graph (parameters, buffers, momentum, attributes).
  static uint64_t checkpoint_bytes(const ops::Graph& graph);
  // Checkpoint files, newest first.
  std::vector<std::string> list() const;
  // The newest checkpoint that verifies; damaged ones are reported through `warn` and passed over.
  std::optional<std::string> newest_valid(const std::function<void(const std::string&)>& warn) const;

 private:
  static void write_checkpoint_file(const ops::Graph& graph, const ops::Arena& momentum, const TrainingState& state,
                                    const std::string& config_yaml, const std::string& tmp);
  std::string dir_;
  int keep_;
};

// Reads the whole file and checks its checksum; throws convoy::Error naming the file and the problem.
CheckpointContents verify_checkpoint(const std::string& path);
// Verifies, then loads parameters, buffers and (if given) momentum into the graph's arenas.
CheckpointContents load_checkpoint(const std::string& path, ops::Graph& graph, const ops::Arena* momentum);
// Loads /params and /buffers by torchvision name (a checkpoint or a file from tools/torchvision_to_h5.py);
// every parameter and buffer of the model must be there with its shape.
void load_weights(const std::string& path, ops::Graph& graph);
// A convoy checkpoint's parameters and buffers (load_checkpoint) or a weights file's (load_weights),
// whichever the file is: a distillation teacher may come from either.
void load_any_weights(const std::string& path, ops::Graph& graph);

}  // namespace convoy::trainer
