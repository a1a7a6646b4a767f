#include "ops/cpu/cpu_backend.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
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
  // Denormals slow every later step down by orders of magnitude once a loss gets small (a benchmark that
  // repeats one batch with fixed labels drives its gradients there within a few hundred steps):
  // flush them, on every OpenMP thread, as oneDNN's jit kernels do for their own code.
#pragma omp parallel num_threads(threads_)
  {
    unsigned csr = __builtin_ia32_stmxcsr();
    __builtin_ia32_ldmxcsr(csr | 0x8040);  // FTZ | DAZ
  }
  unsigned csr = __builtin_ia32_stmxcsr();
  __builtin_ia32_ldmxcsr(csr | 0x8040);
}

// With the ISA oneDNN dispatches to, so that a run's log says which kind of machine it ran on.
std::string CpuBackend::name() const {
  const dnnl_version_t* v = dnnl_version();
  return "cpu (oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch) + " " + cpu_isa() + ", " + std::to_string(threads_) + " threads)";
}

std::unique_ptr<ConvKernel> CpuBackend::conv2d(const ConvSpec& s) { return guard(make_conv(*this, s), boundary_); }
std::unique_ptr<BatchNormKernel> CpuBackend::batch_norm(const BatchNormSpec& s) {
  return guard(make_batch_norm(*this, s), boundary_);
}
std::unique_ptr<SyncBatchNormKernel> CpuBackend::sync_batch_norm(const BatchNormSpec& s) {
  return guard(make_sync_batch_norm(*this, s), boundary_);
}
std::unique_ptr<PoolKernel> CpuBackend::pool2d(const PoolSpec& s) { return guard(make_pool(*this, s), boundary_); }
std::unique_ptr<AdaptivePoolKernel> CpuBackend::adaptive_avg_pool2d(const AdaptivePoolSpec& s) {
  return guard(make_adaptive_pool(*this, s), boundary_);
}
std::unique_ptr<LinearKernel> CpuBackend::linear(const LinearSpec& s) { return guard(make_linear(*this, s), boundary_); }
std::unique_ptr<ReluKernel> CpuBackend::relu(const Shape& shape, DType t) {
  return guard(make_relu(*this, shape, t), boundary_);
}
std::unique_ptr<AddKernel> CpuBackend::add(const Shape& shape, bool fuse_relu, DType t) {
  return guard(make_add(*this, shape, fuse_relu, t), boundary_);
}
std::unique_ptr<ConcatKernel> CpuBackend::concat(std::span<const Shape> inputs, DType t) {
  return guard(make_concat(*this, inputs, t), boundary_);
}
std::unique_ptr<LrnKernel> CpuBackend::lrn(const LrnSpec& s) { return guard(make_lrn(*this, s), boundary_); }
std::unique_ptr<DropoutKernel> CpuBackend::dropout(const Shape& shape, float p, DType t) {
  return guard(make_dropout(*this, shape, p, t), boundary_);
}
std::unique_ptr<SoftmaxCrossEntropyKernel> CpuBackend::softmax_cross_entropy(int64_t N, int64_t K) {
  return guard(make_softmax_cross_entropy(*this, N, K), boundary_);
}

void CpuBackend::copy(ExecContext&, const Tensor& src, Tensor& dst) {
  check_device(src, device(), "copy", "the source");
  check_device(dst, device(), "copy", "the destination");
  CONVOY_CHECK(src.bytes() == dst.bytes(), "copy of " << src.bytes() << " bytes into a " << dst.bytes()
                                                      << "-byte tensor");
  if (src.bytes() && src.data() != dst.data()) std::memmove(dst.data(), src.data(), src.bytes());
}

namespace {
template <typename T>
void fill_as(Tensor& t, double value) {
  T* p = static_cast<T*>(t.data());
  const T v = static_cast<T>(value);
  const int64_t n = t.numel();
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) p[i] = v;
}
}  // namespace

void CpuBackend::fill(ExecContext&, Tensor& t, double value) {
  check_device(t, device(), "fill", "the tensor");
  switch (t.dtype()) {
    case DType::f32: return fill_as<float>(t, value);
    case DType::f64: return fill_as<double>(t, value);
    case DType::i32: return fill_as<int32_t>(t, value);
    case DType::i64: return fill_as<int64_t>(t, value);
    case DType::u8: return fill_as<uint8_t>(t, value);
    case DType::bf16:
    case DType::f16: break;
  }
  CONVOY_FAIL("fill supports f32, f64, i32, i64 and u8 tensors, got " << dtype_name(t.dtype()));
}

void CpuBackend::cast(ExecContext&, const Tensor& src, Tensor& dst) {
  check_device(src, device(), "cast", "the source");
  check_device(dst, device(), "cast", "the destination");
  CONVOY_CHECK(src.numel() == dst.numel(), "cast of " << src.numel() << " elements into " << dst.numel());
  const int64_t n = src.numel();
  const DType from = src.dtype(), to = dst.dtype();
  if (from == DType::f32 && (to == DType::bf16 || to == DType::f16)) {
    const float* s = static_cast<const float*>(src.data());
    uint16_t* d = static_cast<uint16_t*>(dst.data());
    if (to == DType::bf16) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) d[i] = math::f32_to_bf16(s[i]);
    } else {
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) d[i] = math::f32_to_f16(s[i]);
    }
    return;
  }
  if ((from == DType::bf16 || from == DType::f16) && to == DType::f32) {
    const uint16_t* s = static_cast<const uint16_t*>(src.data());
    float* d = static_cast<float*>(dst.data());
    if (from == DType::bf16) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) d[i] = math::bf16_to_f32(s[i]);
    } else {
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) d[i] = math::f16_to_f32(s[i]);
    }
    return;
  }
  CONVOY_FAIL("cast converts f32 to bf16 or f16 and back, not " << dtype_name(from) << " to " << dtype_name(to));
}

void CpuBackend::sgd_update(ExecContext&, const SgdParams& p, Tensor& w, Tensor& v, const Tensor& g) {
  check_device(w, device(), "SGD update", "w");
  check_device(v, device(), "SGD update", "the momentum");
  check_device(g, device(), "SGD update", "the gradient");
  CONVOY_CHECK(w.numel() == v.numel() && w.numel() == g.numel(),
               "SGD update over " << w.numel() << " weights, " << v.numel() << " momenta and " << g.numel()
                                  << " gradients");
  float* wp = w.data_as<float>();
  float* vp = v.data_as<float>();
  const float* gp = g.data_as<float>();
  const float lr = p.lr, m = p.momentum, wd = p.weight_decay, scale = p.grad_scale;
  const bool nesterov = p.nesterov;
  const int64_t count = w.numel();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < count; ++i) math::sgd_momentum(wp[i], vp[i], gp[i], lr, m, wd, nesterov, scale);
}

void CpuBackend::sum_squares(ExecContext&, const Tensor& x, Tensor& out) {
  check_device(x, device(), "sum of squares", "x");
  check_device(out, device(), "sum of squares", "the result");
  CONVOY_CHECK(out.numel() == 1, "the sum of squares goes into one f64 element, got " << out.shape().str());
  const float* p = x.data_as<float>();
  double s = 0;
  const int64_t count = x.numel();
#pragma omp parallel for reduction(+ : s) schedule(static)
  for (int64_t i = 0; i < count; ++i) s += static_cast<double>(p[i]) * p[i];
  out.data_as<double>()[0] = s;
}

// f(begin, end) over [0, n) split into one chunk per thread; on one thread, or for a small n, a plain call:
// an OpenMP region costs a heap allocation per call in libgomp when the team has one thread.
template <typename F>
void CpuBackend::in_chunks(int64_t n, F f) const {
  if (threads_ == 1 || n <= 16384) return f(0, n);
  const int64_t parts = threads_, per = (n + parts - 1) / parts;
#pragma omp parallel for schedule(static) num_threads(threads_)
  for (int64_t t = 0; t < parts; ++t) f(t * per, std::min(n, (t + 1) * per));
}

void CpuBackend::round_to(ExecContext&, const Tensor& src, Tensor& dst, DType storage) {
  check_device(src, device(), "rounding", "the source");
  check_device(dst, device(), "rounding", "the destination");
  CONVOY_CHECK(src.numel() == dst.numel(), "rounding " << src.numel() << " elements into " << dst.numel());
  CONVOY_CHECK(storage == DType::f16 || storage == DType::bf16,
               "rounding emulates f16 or bf16 storage, not " << dtype_name(storage));
  const float* s = src.data_as<float>();
  float* d = dst.data_as<float>();
  const bool f16 = storage == DType::f16;
  auto round_range = [=](int64_t begin, int64_t end) {
    int64_t i = begin;
    if (f16) {
#if defined(__F16C__)
      // The processor's conversion (round to nearest even, IEEE half with subnormals and infinities; it
      // ignores MXCSR's flush-to-zero) on 8 values at a time; the shared math for the tail.
      for (; i + 8 <= end; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(h));
      }
#endif
      for (; i < end; ++i) d[i] = math::f16_to_f32(math::f32_to_f16(s[i]));
    } else {
      for (; i < end; ++i) d[i] = math::bf16_to_f32(math::f32_to_bf16(s[i]));
    }
  };
  in_chunks(src.numel(), round_range);
}

void CpuBackend::check_finite(ExecContext&, const Tensor& x, Tensor& flag) {
  check_device(x, device(), "finiteness check", "x");
  check_device(flag, device(), "finiteness check", "the flag");
  CONVOY_CHECK(flag.numel() == 1, "the finiteness flag is one i32 element, got " << flag.shape().str());
  const float* p = x.data_as<float>();
  std::atomic<int> bad{0};
  in_chunks(x.numel(), [&](int64_t begin, int64_t end) {
    int b = 0;
    for (int64_t i = begin; i < end; ++i) b |= std::isfinite(p[i]) ? 0 : 1;
    if (b) bad.store(1);
  });
  if (bad.load()) flag.data_as<int32_t>()[0] = 1;
}

void CpuBackend::add_into(ExecContext&, const Tensor& src, Tensor& dst, float alpha) {
  check_device(src, device(), "add", "the source");
  check_device(dst, device(), "add", "the destination");
  CONVOY_CHECK(src.numel() == dst.numel(), "adding " << src.numel() << " elements into " << dst.numel());
  if (alpha == 1.f) {
    write_or_accumulate(dst.data_as<float>(), src.data_as<float>(), static_cast<size_t>(src.numel()), true);
    return;
  }
  const float* s = src.data_as<float>();
  float* d = dst.data_as<float>();
  const int64_t n = src.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) d[i] += alpha * s[i];
}

void CpuBackend::mix_with_reverse(ExecContext&, const Tensor& x, float lambda, Tensor& out) {
  check_device(x, device(), "mixup", "the batch");
  check_device(out, device(), "mixup", "the mixed batch");
  check_mix(x, lambda, out);
  const int64_t N = x.dim(0), per = x.numel() / std::max<int64_t>(N, 1);
  const float* s = x.data_as<float>();
  float* d = out.data_as<float>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* a = s + n * per;
    const float* b = s + (N - 1 - n) * per;
    for (int64_t i = 0; i < per; ++i) d[n * per + i] = lambda * a[i] + (1.f - lambda) * b[i];
  }
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

void write_or_accumulate(void* dst, const void* src, size_t n, bool accumulate, DType t) {
  if (t == DType::f32)
    return write_or_accumulate(static_cast<float*>(dst), static_cast<const float*>(src), n, accumulate);
  CONVOY_CHECK(t == DType::bf16, "gradient accumulation on the CPU supports f32 and bf16, got " << dtype_name(t));
  if (!accumulate) {
    if (dst != src) std::memcpy(dst, src, n * 2);
    return;
  }
  uint16_t* d = static_cast<uint16_t*>(dst);
  const uint16_t* s = static_cast<const uint16_t*>(src);
  const int64_t count = static_cast<int64_t>(n);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < count; ++i) d[i] = math::f32_to_bf16(math::bf16_to_f32(d[i]) + math::bf16_to_f32(s[i]));
}

void check_compute_dtype(DType t, const char* kernel) {
  if (t == DType::f32) return;
  CONVOY_CHECK(t == DType::bf16, kernel << " on the CPU computes in f32 or bf16, not " << dtype_name(t)
                                        << " (fp16 runs on the CPU as an emulation over f32 kernels)");
  CONVOY_CHECK(cpu_has_bf16(), kernel << " in bf16 needs AVX-512 BF16 or AMX; this processor's oneDNN ISA is "
                                      << cpu_isa());
}

void DnnlPackedLayout::pack(ExecContext& ctx, const Tensor& plain_host, Tensor& packed) const {
  dnnl::memory src(plain_, eng_, plain_host.data()), dst(packed_, eng_, packed.data());
  dnnl::reorder(src, dst).execute(cpu_ctx(ctx).stream(), src, dst);
  cpu_ctx(ctx).stream().wait();
}

void DnnlPackedLayout::unpack(ExecContext& ctx, const Tensor& packed, Tensor& plain_host) const {
  dnnl::memory src(packed_, eng_, packed.data()), dst(plain_, eng_, plain_host.data());
  dnnl::reorder(src, dst).execute(cpu_ctx(ctx).stream(), src, dst);
  cpu_ctx(ctx).stream().wait();
}

}  // namespace convoy::ops::cpu

std::string convoy::ops::cpu_isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::all: break;
  }
  return "unknown";
}

bool convoy::ops::cpu_has_bf16() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

std::unique_ptr<convoy::ops::Backend> convoy::ops::make_cpu_backend(int threads) {
  return std::make_unique<cpu::CpuBackend>(threads);
}
