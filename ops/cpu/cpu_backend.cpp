#include "ops/cpu/cpu_backend.h"

#include <omp.h>

#include <cstring>

#include "ops/math/elementwise.h"

namespace convoy::ops::cpu {

void* CpuContext::workspace(size_t bytes) {
  CONVOY_CHECK(bytes <= workspace_.bytes(), "internal: a kernel asked for " << bytes << " bytes of workspace but only "
                                                                          << workspace_.bytes()
                                                                          << " were reserved at set-up");
  return workspace_.data();
}

void CpuContext::reserve(size_t bytes) {
  if (bytes <= workspace_.bytes()) return;
  workspace_ = Tensor::empty(Shape{static_cast<int64_t>((bytes + 63) / 64 * 64)}, DType::u8);
}

CpuBackend::CpuBackend(int threads)
    : threads_(threads > 0 ? threads : omp_get_num_procs()), engine_(dnnl::engine::kind::cpu, 0), ctx_(engine_) {
  omp_set_num_threads(threads_);
  // Denormals slow every later step down by orders of magnitude once a loss gets small (BENCHMARKS.md):
  // flush them, on every OpenMP thread, as oneDNN's jit kernels do for their own code.
#pragma omp parallel num_threads(threads_)
  {
    unsigned csr = __builtin_ia32_stmxcsr();
    __builtin_ia32_ldmxcsr(csr | 0x8040);  // FTZ | DAZ
  }
  unsigned csr = __builtin_ia32_stmxcsr();
  __builtin_ia32_ldmxcsr(csr | 0x8040);
}

std::string CpuBackend::name() const {
  const dnnl_version_t* v = dnnl_version();
  return "cpu (oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch) + ", " + std::to_string(threads_) + " threads)";
}

std::unique_ptr<ConvKernel> CpuBackend::conv2d(const ConvSpec& s) { return make_conv(*this, s); }
std::unique_ptr<BatchNormKernel> CpuBackend::batch_norm(const BatchNormSpec& s) { return make_batch_norm(*this, s); }
std::unique_ptr<PoolKernel> CpuBackend::pool2d(const PoolSpec& s) { return make_pool(*this, s); }
std::unique_ptr<LinearKernel> CpuBackend::linear(const LinearSpec& s) { return make_linear(*this, s); }
std::unique_ptr<ReluKernel> CpuBackend::relu(const Shape& shape, DType t) { return make_relu(*this, shape, t); }
std::unique_ptr<AddKernel> CpuBackend::add(const Shape& shape, bool fuse_relu, DType t) {
  return make_add(*this, shape, fuse_relu, t);
}
std::unique_ptr<ConcatKernel> CpuBackend::concat(std::span<const Shape> inputs, DType t) {
  return make_concat(*this, inputs, t);
}
std::unique_ptr<LrnKernel> CpuBackend::lrn(const LrnSpec& s) { return make_lrn(*this, s); }
std::unique_ptr<DropoutKernel> CpuBackend::dropout(const Shape& shape, float p, DType t) {
  return make_dropout(*this, shape, p, t);
}
std::unique_ptr<SoftmaxCrossEntropyKernel> CpuBackend::softmax_cross_entropy(int64_t N, int64_t K) {
  return make_softmax_cross_entropy(*this, N, K);
}

void CpuBackend::copy(ExecContext&, const void* src, Device src_device, void* dst, Device dst_device, size_t bytes) {
  CONVOY_CHECK(src_device.is_cpu() && dst_device.is_cpu(),
               "the CPU backend cannot copy between " << src_device.str() << " and " << dst_device.str());
  if (bytes) std::memmove(dst, src, bytes);
}

void CpuBackend::fill(ExecContext&, Tensor& t, float value) {
  CONVOY_CHECK(t.dtype() == DType::f32, "fill supports f32 tensors, got " << dtype_name(t.dtype()));
  float* p = t.host<float>();
  int64_t n = t.numel();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

void CpuBackend::sgd_update(ExecContext&, const SgdParams& p, float* w, float* v, const float* g, size_t n) {
  const float lr = p.lr, m = p.momentum, wd = p.weight_decay, scale = p.grad_scale;
  const bool nesterov = p.nesterov;
  const int64_t count = static_cast<int64_t>(n);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < count; ++i) math::sgd_momentum(w[i], v[i], g[i], lr, m, wd, nesterov, scale);
}

double CpuBackend::sum_squares(ExecContext&, const float* x, size_t n) {
  double s = 0;
  const int64_t count = static_cast<int64_t>(n);
#pragma omp parallel for reduction(+ : s) schedule(static)
  for (int64_t i = 0; i < count; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

void write_or_accumulate(float* dst, const float* src, size_t n, bool accumulate) {
  const int64_t count = static_cast<int64_t>(n);
  if (accumulate) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < count; ++i) dst[i] += src[i];
  } else if (dst != src) {
    std::memcpy(dst, src, n * sizeof(float));
  }
}

void DnnlPackedLayout::pack(ExecContext& ctx, const float* plain_host, void* packed) const {
  dnnl::memory src(plain_, eng_, const_cast<float*>(plain_host)), dst(packed_, eng_, packed);
  dnnl::reorder(src, dst).execute(cpu_ctx(ctx).stream(), src, dst);
  cpu_ctx(ctx).stream().wait();
}

void DnnlPackedLayout::unpack(ExecContext& ctx, const void* packed, float* plain_host) const {
  dnnl::memory src(packed_, eng_, const_cast<void*>(packed)), dst(plain_, eng_, plain_host);
  dnnl::reorder(src, dst).execute(cpu_ctx(ctx).stream(), src, dst);
  cpu_ctx(ctx).stream().wait();
}

}  // namespace convoy::ops::cpu

std::unique_ptr<convoy::ops::Backend> convoy::ops::make_cpu_backend(int threads) {
  return std::make_unique<cpu::CpuBackend>(threads);
}
