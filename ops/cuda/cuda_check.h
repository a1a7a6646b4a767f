// Status checks for the CUDA runtime, cuDNN and cuBLAS: every call's status is checked and turned into a
// convoy::Error that names the call, the file and line, and the library's own message.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

#include "common/error.h"

#define CUDA_CHECK(call)                                                                                   \
  do {                                                                                                     \
    cudaError_t convoy_cuda_status_ = (call);                                                              \
    if (convoy_cuda_status_ != cudaSuccess)                                                                \
      ::convoy::detail::fail(__FILE__, __LINE__, #call,                                                    \
                             std::string("CUDA call failed: ") + cudaGetErrorName(convoy_cuda_status_) +  \
                                 ": " + cudaGetErrorString(convoy_cuda_status_));                          \
  } while (0)

#define CUDNN_CHECK(call)                                                                                  \
  do {                                                                                                     \
    cudnnStatus_t convoy_cudnn_status_ = (call);                                                           \
    if (convoy_cudnn_status_ != CUDNN_STATUS_SUCCESS)                                                      \
      ::convoy::detail::fail(__FILE__, __LINE__, #call,                                                    \
                             std::string("cuDNN call failed: ") + cudnnGetErrorString(convoy_cudnn_status_)); \
  } while (0)

#define CUBLAS_CHECK(call)                                                                                 \
  do {                                                                                                     \
    cublasStatus_t convoy_cublas_status_ = (call);                                                         \
    if (convoy_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                    \
      ::convoy::detail::fail(__FILE__, __LINE__, #call,                                                    \
                             std::string("cuBLAS call failed: ") + cublasGetStatusName(convoy_cublas_status_) + \
                                 ": " + cublasGetStatusString(convoy_cublas_status_));                     \
  } while (0)
