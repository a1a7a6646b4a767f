// RAII cuDNN descriptors built from convoy's kernel specs, and the key of the convolution algorithm cache.
// Creating and setting descriptors needs libcudnn but no GPU, so all of this is tested on machines without
// one (tests/ops/test_cuda_host.cpp).
#pragma once

#include <cudnn.h>

#include <string>

#include "ops/backend.h"

namespace convoy::ops::cuda {

cudnnDataType_t cudnn_dtype(DType t);

// How fp32 convolutions and matrix products may round: IEEE fp32 (cuDNN's FMA math, cuBLAS without TF32)
// or TF32 tensor cores (PyTorch's cuDNN default on Ampere and later). fp16/bf16 always use tensor cores.
enum class Fp32Math : uint8_t { ieee, tf32 };
cudnnMathType_t conv_math(DType t, Fp32Math m);

class TensorDesc {
 public:
  TensorDesc();
  ~TensorDesc();
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  // An NHWC activation (N, H, W, C).
  void set_nhwc(int64_t N, int64_t H, int64_t W, int64_t C, DType t);
  cudnnTensorDescriptor_t get() const { return d_; }

 private:
  cudnnTensorDescriptor_t d_ = nullptr;
};

class FilterDesc {
 public:
  FilterDesc();
  ~FilterDesc();
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
  // Weights (K, C/groups, R, S) stored as KRSC (cuDNN's NHWC filter layout).
  void set(const ConvSpec& s);
  cudnnFilterDescriptor_t get() const { return d_; }

 private:
  cudnnFilterDescriptor_t d_ = nullptr;
};

class ConvDesc {
 public:
  ConvDesc();
  ~ConvDesc();
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
  // Cross-correlation (PyTorch's convolution) with fp32 accumulation, groups and the math type.
  void set(const ConvSpec& s, Fp32Math m);
  // The math type an algorithm was found with (cuDNN runs an algorithm with the descriptor's).
  void set_math(cudnnMathType_t math);
  cudnnConvolutionDescriptor_t get() const { return d_; }

 private:
  cudnnConvolutionDescriptor_t d_ = nullptr;
};

class ActivationDesc {
 public:
  explicit ActivationDesc(bool relu);
  ~ActivationDesc();
  ActivationDesc(const ActivationDesc&) = delete;
  ActivationDesc& operator=(const ActivationDesc&) = delete;
  cudnnActivationDescriptor_t get() const { return d_; }

 private:
  cudnnActivationDescriptor_t d_ = nullptr;
};

// The output shape cuDNN computes for s: must agree with ConvSpec's out_h/out_w (checked at set-up).
void cudnn_output_shape(const ConvSpec& s, Fp32Math m, int64_t& N, int64_t& K, int64_t& OH, int64_t& OW);

// The algorithm cache's key: every field of the spec that changes cuDNN's choice, the math, determinism
// and the workspace limit. Two specs with the same key share one search.
std::string conv_algo_key(const ConvSpec& s, Fp32Math m, bool deterministic, size_t workspace_limit);

}  // namespace convoy::ops::cuda
