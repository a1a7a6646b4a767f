// The CPU backend: oneDNN primitives (OpenMP threads) for the layers, plain OpenMP loops over the shared
// elementwise math for the rest.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include "ops/backend.h"
#include "ops/boundary.h"
#include "ops/cpu/dnnl_util.h"
#include "ops/math/elementwise.h"

namespace convoy::ops::cpu {

class CpuContext final : public ExecContext {
 public:
  explicit CpuContext(const dnnl::engine& eng) : stream_(eng) {}
  Device device() const override { return {}; }
  void synchronize() override { stream_.wait(); }
  void* workspace(size_t bytes) override;
  void reserve(size_t bytes);
  dnnl::stream& stream() { return stream_; }

 private:
  dnnl::stream stream_;
  Tensor workspace_;
};

inline CpuContext& cpu_ctx(ExecContext& ctx) { return static_cast<CpuContext&>(ctx); }

// Every CPU kernel is called when it runs: an event is reached as soon as it is recorded.
class CpuEvent final : public Event {
 public:
  void record(ExecContext&) override {}
  void wait_on(ExecContext&) override {}
  void synchronize() override {}
};

// The CPU's own boundary: kernels take host tensors only (a GPU's or the strict device's are refused).
class CpuBoundary final : public Boundary {
 public:
  Device device() const override { return {}; }
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads);
  Device device() const override { return {}; }
  std::string name() const override;
  Allocator& allocator() override { return host_allocator(); }
  Allocator& staging_allocator() override { return host_allocator(); }
  ExecContext& context() override { return ctx_; }
  std::unique_ptr<ExecContext> make_context() override { return std::make_unique<CpuContext>(engine_); }
  std::unique_ptr<Event> make_event() override { return std::make_unique<CpuEvent>(); }
  void reserve_workspace(size_t bytes) override { ctx_.reserve(bytes); }
  const dnnl::engine& engine() const { return engine_; }
  int threads() const { return threads_; }

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

 private:
  template <typename F>
  void in_chunks(int64_t n, F f) const;

  int threads_;
  dnnl::engine engine_;
  CpuContext ctx_;
  CpuBoundary boundary_;
};

// Kernel factories, one file each (conv.cpp, batch_norm.cpp, ...).
std::unique_ptr<ConvKernel> make_conv(CpuBackend& be, const ConvSpec& spec);
std::unique_ptr<BatchNormKernel> make_batch_norm(CpuBackend& be, const BatchNormSpec& spec);
std::unique_ptr<SyncBatchNormKernel> make_sync_batch_norm(CpuBackend& be, const BatchNormSpec& spec);
// Batch norm on convoy's own NHWC loops (ops/cpu/sync_batch_norm.cpp); `why` goes into its implementations().
std::unique_ptr<BatchNormKernel> make_loop_batch_norm(const BatchNormSpec& spec, const std::string& why);
std::unique_ptr<PoolKernel> make_pool(CpuBackend& be, const PoolSpec& spec);
std::unique_ptr<AdaptivePoolKernel> make_adaptive_pool(CpuBackend& be, const AdaptivePoolSpec& spec);
std::unique_ptr<LinearKernel> make_linear(CpuBackend& be, const LinearSpec& spec);
std::unique_ptr<ReluKernel> make_relu(CpuBackend& be, const Shape& shape, DType dtype);
std::unique_ptr<AddKernel> make_add(CpuBackend& be, const Shape& shape, bool fuse_relu, DType dtype);
std::unique_ptr<ConcatKernel> make_concat(CpuBackend& be, std::span<const Shape> inputs, DType dtype);
std::unique_ptr<LrnKernel> make_lrn(CpuBackend& be, const LrnSpec& spec);
std::unique_ptr<DropoutKernel> make_dropout(CpuBackend& be, const Shape& shape, float p, DType dtype);
std::unique_ptr<SoftmaxCrossEntropyKernel> make_softmax_cross_entropy(CpuBackend& be, int64_t N, int64_t K);

// dst (+)= src over n floats: the gradient-accumulation step of every kernel that cannot accumulate itself.
void write_or_accumulate(float* dst, const float* src, size_t n, bool accumulate);
// The same over n elements of dtype t (f32 or bf16; a bf16 sum is formed in f32 and rounded once).
void write_or_accumulate(void* dst, const void* src, size_t n, bool accumulate, DType t);
// Convoy's own loops over f32 or bf16 storage (a uint16_t holds a bf16 here): read as f32, write rounded.
inline float load_f32(float v) { return v; }
inline float load_f32(uint16_t v) { return math::bf16_to_f32(v); }
inline void store_f32(float& d, float v) { d = v; }
inline void store_f32(uint16_t& d, float v) { d = math::f32_to_bf16(v); }

// The dtypes the CPU kernels compute in: f32 everywhere, bf16 where the processor has bf16 arithmetic
// (AVX-512 BF16 or AMX; elsewhere oneDNN would emulate it, slower than f32). Throws naming the kernel and
// the ISA otherwise.
void check_compute_dtype(DType t, const char* kernel);

// A packed weight layout that converts with oneDNN reorders.
class DnnlPackedLayout final : public PackedLayout {
 public:
  DnnlPackedLayout(const dnnl::engine& eng, dnnl::memory::desc packed, dnnl::memory::desc plain)
      : eng_(eng), packed_(std::move(packed)), plain_(std::move(plain)) {}
  size_t bytes() const override { return packed_.get_size(); }
  void pack(ExecContext& ctx, const Tensor& plain_host, Tensor& packed) const override;
  void unpack(ExecContext& ctx, const Tensor& packed, Tensor& plain_host) const override;
  const dnnl::memory::desc& desc() const { return packed_; }

 private:
  dnnl::engine eng_;
  dnnl::memory::desc packed_, plain_;
};

}  // namespace convoy::ops::cpu
