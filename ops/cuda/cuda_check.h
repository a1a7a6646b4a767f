// CUDA_CHECK: every CUDA runtime status is checked and turned into a convoy::Error that names the
// call, the file and line, and CUDA's own message.
#pragma once

#include <cuda_runtime.h>

#include "common/error.h"

#define CUDA_CHECK(call)                                                                                   \
  do {                                                                                                     \
    cudaError_t convoy_cuda_status_ = (call);                                                              \
    if (convoy_cuda_status_ != cudaSuccess)                                                                \
      ::convoy::detail::fail(__FILE__, __LINE__, #call,                                                    \
                             std::string("CUDA call failed: ") + cudaGetErrorName(convoy_cuda_status_) +  \
                                 ": " + cudaGetErrorString(convoy_cuda_status_));                          \
  } while (0)
