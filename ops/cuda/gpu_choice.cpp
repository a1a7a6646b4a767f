#include "ops/cuda/gpu_choice.h"

#include "common/error.h"

namespace convoy::ops::cuda {

int choose_gpu(int visible, int local_rank, int local_size, const char* cuda_visible) {
  const std::string env = cuda_visible ? std::string("CUDA_VISIBLE_DEVICES=") + cuda_visible
                                       : std::string("CUDA_VISIBLE_DEVICES is not set");
  CONVOY_CHECK(visible > 0, "device 'cuda': no GPU is visible to this process (" << env
                                 << "): run on a machine with a GPU, or train on device cpu");
  if (visible == 1) return 0;
  CONVOY_CHECK(local_size <= visible,
               "device 'cuda': " << local_size << " ranks on this node but only " << visible
                                 << " GPUs visible (" << env
                                 << "); convoy drives one GPU per rank: start at most " << visible
                                 << " ranks per node, or give each rank its own GPU (Slurm --gpus-per-task=1)");
  CONVOY_CHECK(local_rank >= 0 && local_rank < visible, "internal: local rank " << local_rank << " of " << local_size);
  return local_rank;
}

}  // namespace convoy::ops::cuda
