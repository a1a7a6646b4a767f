// The CUDA backend: cuDNN for convolution and batch norm, cuBLAS for linear layers, convoy's own kernels
// (ops/cuda/*.cu, declared in elementwise.h, over the shared math) for the rest. Three kinds of stream: the default
// context's (compute), copy contexts from make_context() (host-to-device batches), and the NCCL
// communicator's own; they are ordered by events.
//
// None of this has run on a GPU on this project's machines (they have none): it is compiled and its
// host-side pieces (descriptors, the algorithm-cache key, the allocator's policy) are tested; the rest is
// verified by tools/gpu-check.sh on a GPU machine.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "ops/backend.h"
#include "ops/boundary.h"
#include "ops/cuda/caching_allocator.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/cudnn_desc.h"

namespace convoy::ops::cuda {

struct CudaOptions {
  int device = 0;                           // the GPU (ops/cuda/gpu_choice.h chose it)
  Fp32Math fp32 = Fp32Math::tf32;           // train.tf32 (default true, as PyTorch's cuDNN default)
  bool deterministic = false;               // train.deterministic: deterministic cuDNN algorithms only
  size_t conv_workspace_limit = size_t{1} << 30;  // per convolution algorithm
};

class CudaContext final : public ExecContext {
 public:
  // with_libraries: create cuDNN and cuBLAS handles bound to the stream (the compute context); copy
  // contexts need none.
  CudaContext(Device device, CachingAllocator& alloc, bool with_libraries);
  ~CudaContext() override;
  Device device() const override { return device_; }
  void synchronize() override;
  void* workspace(size_t bytes) override;
  void reserve(size_t bytes);
  cudaStream_t stream() const { return stream_; }
  cudnnHandle_t cudnn() const;
  cublasHandle_t cublas() const;
  // kReduceBlocks doubles for the fixed-order reductions (sum of squares).
  double* partials() const { return static_cast<double*>(partials_); }

 private:
  Device device_;
  CachingAllocator& alloc_;
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  void* partials_ = nullptr;
};

inline CudaContext& cuda_ctx(ExecContext& ctx) { return static_cast<CudaContext&>(ctx); }

// Usable from any thread (the MPI communication thread waits on them): every call first makes the
// event's GPU current on the calling thread, so no thread creates a context on GPU 0 by accident.
class CudaEvent final : public Event {
 public:
  explicit CudaEvent(int device);
  ~CudaEvent() override;
  void record(ExecContext& ctx) override;
  void wait_on(ExecContext& ctx) override;
  void synchronize() override;
  // True when the recorded point has been reached (never blocks).
  bool query() const;
  cudaEvent_t get() const { return e_; }

 private:
  int device_;
  cudaEvent_t e_ = nullptr;
};

class CudaBoundary final : public Boundary {
 public:
  explicit CudaBoundary(Device d) : d_(d) {}
  Device device() const override { return d_; }

 private:
  Device d_;
};

// The convolution algorithms chosen for one key (ops/cuda/cudnn_desc.h conv_algo_key).
struct ConvAlgos {
  cudnnConvolutionFwdAlgo_t fwd;
  cudnnConvolutionBwdDataAlgo_t bwd_data;
  cudnnConvolutionBwdFilterAlgo_t bwd_filter;
  size_t fwd_bytes = 0, bwd_data_bytes = 0, bwd_filter_bytes = 0;
  cudnnMathType_t fwd_math, bwd_data_math, bwd_filter_math;  // each found with this math type
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaOptions& o);
  ~CudaBackend() override;
  Device device() const override { return device_; }
  std::string name() const override;
  Allocator& allocator() override { return *device_alloc_; }
  Allocator& staging_allocator() override { return *pinned_alloc_; }
  ExecContext& context() override { return *ctx_; }
  std::unique_ptr<ExecContext> make_context() override;
  std::unique_ptr<Event> make_event() override { return std::make_unique<CudaEvent>(o_.device); }
  void reserve_workspace(size_t bytes) override { ctx_->reserve(bytes); }
  uint64_t raw_device_allocations() const override;

  std::unique_ptr<ConvKernel> conv2d(const ConvSpec& spec) override;
  std::unique_ptr<BatchNormKernel> batch_norm(const BatchNormSpec& spec) override;
  std::unique_ptr<SyncBatchNormKernel> sync_batch_norm(const BatchNormSpec& spec) override;
  std::unique_ptr<PoolKernel> pool2d(const PoolSpec& spec) override;
  std::unique_ptr<AdaptivePoolKernel> adaptive_avg_pool2d(const AdaptivePoolSpec& spec) override;
  std::unique_ptr<LinearKernel> linear(const LinearSpec& spec) override;
  std::unique_ptr<ReluKernel> relu(const Shape& shape, DType dtype) override;
  std::unique_ptr<AddKernel> add(const Shape& shape, bool fuse_relu, DType dtype) override;
  std::unique_ptr<ConcatKernel> concat(std::span<const Shape> inputs, DType dtype) override;
  std::unique_ptr<LrnKernel> lrn(const LrnSpec& spec) override;
  std::unique_ptr<DropoutKernel> dropout(const Shape& shape, float p, DType dtype) override;
  std::unique_ptr<SoftmaxCrossEntropyKernel> softmax_cross_entropy(int64_t N, int64_t K) override;

  void copy(ExecContext& ctx, const Tensor& src, Tensor& dst) override;
  void fill(ExecContext& ctx, Tensor& t, double value) override;
  void cast(ExecContext& ctx, const Tensor& src, Tensor& dst) override;
  void sgd_update(ExecContext& ctx, const SgdParams& p, Tensor& w, Tensor& v, const Tensor& g) override;
  void sum_squares(ExecContext& ctx, const Tensor& x, Tensor& out) override;
  void round_to(ExecContext& ctx, const Tensor& src, Tensor& dst, DType storage) override;
  void check_finite(ExecContext& ctx, const Tensor& x, Tensor& flag) override;
  void add_into(ExecContext& ctx, const Tensor& src, Tensor& dst, float alpha) override;
  void mix_with_reverse(ExecContext& ctx, const Tensor& x, float lambda, Tensor& out) override;

  const CudaOptions& options() const { return o_; }
  CudaContext& cuda_context() { return *ctx_; }
  CachingAllocator& device_memory() { return *device_alloc_; }
  CachingAllocator& pinned_memory() { return *pinned_alloc_; }
  // The algorithms for spec, searched once per key (cudnnFind*AlgorithmEx on scratch buffers) and cached.
  ConvAlgos conv_algorithms(const ConvSpec& spec);

 private:
  CudaOptions o_;
  Device device_;
  std::string gpu_name_;
  std::unique_ptr<CachingAllocator> device_alloc_, pinned_alloc_;
  std::unique_ptr<CudaContext> ctx_;
  CudaBoundary boundary_;
  std::mutex algo_mu_;
  std::map<std::string, ConvAlgos> algos_;
};

// Kernel factories, one file per family (conv.cpp, batch_norm.cpp, ...).
std::unique_ptr<ConvKernel> make_conv(CudaBackend& be, const ConvSpec& spec);
std::unique_ptr<BatchNormKernel> make_batch_norm(CudaBackend& be, const BatchNormSpec& spec);
std::unique_ptr<PoolKernel> make_pool(CudaBackend& be, const PoolSpec& spec);
std::unique_ptr<SyncBatchNormKernel> make_sync_batch_norm(CudaBackend& be, const BatchNormSpec& spec);
std::unique_ptr<AdaptivePoolKernel> make_adaptive_pool(CudaBackend& be, const AdaptivePoolSpec& spec);
std::unique_ptr<LinearKernel> make_linear(CudaBackend& be, const LinearSpec& spec);
std::unique_ptr<LrnKernel> make_lrn(CudaBackend& be, const LrnSpec& spec);
std::unique_ptr<ReluKernel> make_relu(CudaBackend& be, const Shape& shape, DType dtype);
std::unique_ptr<AddKernel> make_add(CudaBackend& be, const Shape& shape, bool fuse_relu, DType dtype);
std::unique_ptr<ConcatKernel> make_concat(CudaBackend& be, std::span<const Shape> inputs, DType dtype);
std::unique_ptr<DropoutKernel> make_dropout(CudaBackend& be, const Shape& shape, float p, DType dtype);
std::unique_ptr<SoftmaxCrossEntropyKernel> make_softmax_cross_entropy(CudaBackend& be, int64_t N, int64_t K);

// The layer kernels compute in f32, f16 or bf16 (mixed precision: tensor cores for the half types);
// any other dtype is refused, naming the kernel.
void require_float(DType t, const char* kernel);
// The element type of elementwise.h's kernels for a dtype (f32, f16, bf16; others refused).
Elem elem(DType t);

// A weight kept in another layout on the device than its plain (PyTorch) one: pack reorders on the host
// with `to_packed` (plain index -> packed index) and copies; unpack copies back and reorders.
class ReorderedLayout final : public PackedLayout {
 public:
  using IndexMap = int64_t (*)(int64_t plain, const Shape& plain_shape);
  ReorderedLayout(Shape plain_shape, IndexMap to_packed) : shape_(plain_shape), map_(to_packed) {}
  size_t bytes() const override { return static_cast<size_t>(shape_.numel()) * sizeof(float); }
  void pack(ExecContext& ctx, const Tensor& plain_host, Tensor& packed) const override;
  void unpack(ExecContext& ctx, const Tensor& packed, Tensor& plain_host) const override;

 private:
  Shape shape_;
  IndexMap map_;
};

// OIHW -> OHWI (cuDNN's KRSC filters); (K, C, H, W) flattened -> (K, H, W, C) (a linear layer over NHWC input).
int64_t oihw_to_ohwi(int64_t plain, const Shape& s);

std::unique_ptr<Backend> make_cuda_backend(const CudaOptions& o);

}  // namespace convoy::ops::cuda
