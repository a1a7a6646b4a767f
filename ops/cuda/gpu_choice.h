// Which GPU a rank drives, decided before any other CUDA call. Pure logic (no CUDA), tested everywhere.
#pragma once

#include <string>

namespace convoy::ops::cuda {

// visible: the GPUs this process sees (cudaGetDeviceCount). One visible GPU is this rank's own (Slurm's
// --gpus-per-task or --gpu-bind, or CUDA_VISIBLE_DEVICES set per rank); otherwise GPU = local rank, and
// more local ranks than GPUs is an error naming both counts and CUDA_VISIBLE_DEVICES (cuda_visible: its
// value, or null when unset).
int choose_gpu(int visible, int local_rank, int local_size, const char* cuda_visible);

}  // namespace convoy::ops::cuda
