#include "ops/cuda/cuda_backend.h"

#include <algorithm>

#include <cstdio>
#include <cstring>
#include <vector>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/elementwise.h"

namespace convoy::ops::cuda {

// --- contexts and events ---

CudaContext::CudaContext(Device device, CachingAllocator& alloc, bool with_libraries)
    : device_(device), alloc_(alloc) {
  CUDA_CHECK(cudaSetDevice(device.index));
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  if (with_libraries) {
    CUDNN_CHECK(cudnnCreate(&cudnn_));
    CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
    CUBLAS_CHECK(cublasCreate(&cublas_));
    CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  }
  partials_ = alloc_.allocate(kReduceBlocks * sizeof(double));
}

CudaContext::~CudaContext() {
  cudaStreamSynchronize(stream_);  // nothing enqueued may outlive its memory
  if (workspace_) alloc_.deallocate(workspace_, workspace_bytes_);
  alloc_.deallocate(partials_, kReduceBlocks * sizeof(double));
  if (cublas_) cublasDestroy(cublas_);
  if (cudnn_) cudnnDestroy(cudnn_);
  cudaStreamDestroy(stream_);
}

void CudaContext::synchronize() { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void* CudaContext::workspace(size_t bytes) {
  CONVOY_CHECK(bytes <= workspace_bytes_, "internal: a kernel asked for " << bytes << " bytes of workspace but only "
                                                                         << workspace_bytes_
                                                                         << " were reserved at set-up");
  return workspace_;
}

void CudaContext::reserve(size_t bytes) {
  if (bytes <= workspace_bytes_) return;
  // Kernels already enqueued may use the old workspace: wait for them before it goes back to the cache.
  synchronize();
  if (workspace_) alloc_.deallocate(workspace_, workspace_bytes_);
  workspace_bytes_ = (bytes + 255) / 256 * 256;
  workspace_ = alloc_.allocate(workspace_bytes_);
}

cudnnHandle_t CudaContext::cudnn() const {
  CONVOY_CHECK(cudnn_, "internal: cuDNN is used on a copy context (kernels run on the backend's context)");
  return cudnn_;
}

cublasHandle_t CudaContext::cublas() const {
  CONVOY_CHECK(cublas_, "internal: cuBLAS is used on a copy context (kernels run on the backend's context)");
  return cublas_;
}

CudaEvent::CudaEvent(int device) : device_(device) {
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming));
}
CudaEvent::~CudaEvent() { cudaEventDestroy(e_); }
void CudaEvent::record(ExecContext& ctx) {
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(cudaEventRecord(e_, cuda_ctx(ctx).stream()));
}
void CudaEvent::wait_on(ExecContext& ctx) {
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(cudaStreamWaitEvent(cuda_ctx(ctx).stream(), e_, 0));
}
void CudaEvent::synchronize() {
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(cudaEventSynchronize(e_));
}
bool CudaEvent::query() const {
  CUDA_CHECK(cudaSetDevice(device_));
  const cudaError_t s = cudaEventQuery(e_);
  if (s == cudaErrorNotReady) return false;
  CUDA_CHECK(s);
  return true;
}

// --- the backend ---

Elem elem(DType t) {
  switch (t) {
    case DType::f32: return Elem::f32;
    case DType::f16: return Elem::f16;
    case DType::bf16: return Elem::bf16;
    default: break;
  }
  CONVOY_FAIL("convoy's CUDA kernels take f32, f16 or bf16 tensors, not " << dtype_name(t));
}

void require_float(DType t, const char* kernel) {
  CONVOY_CHECK(t == DType::f32 || t == DType::f16 || t == DType::bf16,
               kernel << " on cuda takes f32, f16 or bf16 tensors, not " << dtype_name(t));
}

namespace {
void* device_malloc(size_t bytes) {
  void* p = nullptr;
  const cudaError_t s = cudaMalloc(&p, bytes);
  if (s == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the sticky-free error so the caller may retry after releasing its cache
    return nullptr;
  }
  CUDA_CHECK(s);
  return p;
}
// Frees run in destructors (the allocators', at shutdown): after a sticky CUDA error they must report,
// not throw, or the first error would be lost to std::terminate.
void device_free(void* p) {
  if (cudaError_t s = cudaFree(p); s != cudaSuccess)
    std::fprintf(stderr, "convoy: warning: cudaFree failed: %s\n", cudaGetErrorString(s));
}
void pinned_free(void* p) {
  if (cudaError_t s = cudaFreeHost(p); s != cudaSuccess)
    std::fprintf(stderr, "convoy: warning: cudaFreeHost failed: %s\n", cudaGetErrorString(s));
}
void* pinned_malloc(size_t bytes) {
  void* p = nullptr;
  const cudaError_t s = cudaHostAlloc(&p, bytes, cudaHostAllocPortable);
  if (s == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    return nullptr;
  }
  CUDA_CHECK(s);
  return p;
}
}  // namespace

CudaBackend::CudaBackend(const CudaOptions& o)
    : o_(o), device_{DeviceKind::cuda, o.device}, boundary_(device_) {
  int count = 0;
  CUDA_CHECK(cudaGetDeviceCount(&count));
  CONVOY_CHECK(o.device >= 0 && o.device < count, "GPU " << o.device << " does not exist: " << count << " visible");
  CUDA_CHECK(cudaSetDevice(o.device));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, o.device));
  gpu_name_ = prop.name;
  device_alloc_ = std::make_unique<CachingAllocator>(device_, device_malloc, device_free,
                                                     "device memory of " + device_.str());
  // Pinned host memory is host memory: tensors on it are cpu tensors the GPU copies from at full speed.
  pinned_alloc_ = std::make_unique<CachingAllocator>(Device{}, pinned_malloc, pinned_free, "pinned host memory");
  ctx_ = std::make_unique<CudaContext>(device_, *device_alloc_, true);
}

CudaBackend::~CudaBackend() {
  ctx_.reset();
  device_alloc_->release_cached();
  pinned_alloc_->release_cached();
}

std::string CudaBackend::name() const {
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  const size_t cudnn = cudnnGetVersion();
  return "cuda:" + std::to_string(o_.device) + " (" + gpu_name_ + ", CUDA " + std::to_string(runtime / 1000) + "." +
         std::to_string(runtime % 1000 / 10) + ", cuDNN " + std::to_string(cudnn / 10000) + "." +
         std::to_string(cudnn % 10000 / 100) + "." + std::to_string(cudnn % 100) + ", fp32 " +
         (o_.fp32 == Fp32Math::tf32 ? "TF32" : "IEEE") + (o_.deterministic ? ", deterministic" : "") + ")";
}

uint64_t CudaBackend::raw_device_allocations() const {
  const MemoryCounters d = device_alloc_->counters(), p = pinned_alloc_->counters();
  return d.raw_allocations + d.raw_frees + p.raw_allocations + p.raw_frees;
}

std::unique_ptr<ExecContext> CudaBackend::make_context() {
  return std::make_unique<CudaContext>(device_, *device_alloc_, false);
}

std::unique_ptr<ConvKernel> CudaBackend::conv2d(const ConvSpec& s) { return guard(make_conv(*this, s), boundary_); }
std::unique_ptr<BatchNormKernel> CudaBackend::batch_norm(const BatchNormSpec& s) {
  return guard(make_batch_norm(*this, s), boundary_);
}
std::unique_ptr<SyncBatchNormKernel> CudaBackend::sync_batch_norm(const BatchNormSpec& s) {
  return guard(make_sync_batch_norm(*this, s), boundary_);
}
std::unique_ptr<PoolKernel> CudaBackend::pool2d(const PoolSpec& s) { return guard(make_pool(*this, s), boundary_); }
std::unique_ptr<AdaptivePoolKernel> CudaBackend::adaptive_avg_pool2d(const AdaptivePoolSpec& s) {
  return guard(make_adaptive_pool(*this, s), boundary_);
}
std::unique_ptr<LinearKernel> CudaBackend::linear(const LinearSpec& s) { return guard(make_linear(*this, s), boundary_); }
std::unique_ptr<ReluKernel> CudaBackend::relu(const Shape& shape, DType t) {
  return guard(make_relu(*this, shape, t), boundary_);
}
std::unique_ptr<AddKernel> CudaBackend::add(const Shape& shape, bool fuse_relu, DType t) {
  return guard(make_add(*this, shape, fuse_relu, t), boundary_);
}
std::unique_ptr<ConcatKernel> CudaBackend::concat(std::span<const Shape> inputs, DType t) {
  return guard(make_concat(*this, inputs, t), boundary_);
}
std::unique_ptr<LrnKernel> CudaBackend::lrn(const LrnSpec& s) { return guard(make_lrn(*this, s), boundary_); }
std::unique_ptr<DropoutKernel> CudaBackend::dropout(const Shape& shape, float p, DType t) {
  return guard(make_dropout(*this, shape, p, t), boundary_);
}
std::unique_ptr<SoftmaxCrossEntropyKernel> CudaBackend::softmax_cross_entropy(int64_t N, int64_t K) {
  return guard(make_softmax_cross_entropy(*this, N, K), boundary_);
}

void CudaBackend::copy(ExecContext& ctx, const Tensor& src, Tensor& dst) {
  for (const Tensor* t : {&src, static_cast<const Tensor*>(&dst)})
    CONVOY_CHECK(t->device().is_cpu() || t->device() == device_,
                 "copy: " << (t == &src ? "the source" : "the destination") << " lives on " << t->device().str()
                          << ", but this backend copies between the host and " << device_.str());
  CONVOY_CHECK(src.bytes() == dst.bytes(), "copy of " << src.bytes() << " bytes into a " << dst.bytes()
                                                      << "-byte tensor");
  if (!src.bytes() || src.data() == dst.data()) return;
  // Unified addressing tells the direction (and whether the host side is pinned).
  CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.bytes(), cudaMemcpyDefault, cuda_ctx(ctx).stream()));
}

void CudaBackend::fill(ExecContext& ctx, Tensor& t, double value) {
  check_device(t, device_, "fill", "the tensor");
  cudaStream_t s = cuda_ctx(ctx).stream();
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::f32: return cuda::fill<float>(s, static_cast<float*>(t.data()), n, static_cast<float>(value));
    case DType::f64: return cuda::fill<double>(s, static_cast<double*>(t.data()), n, value);
    case DType::i32: return cuda::fill<int32_t>(s, static_cast<int32_t*>(t.data()), n, static_cast<int32_t>(value));
    case DType::i64: return cuda::fill<int64_t>(s, static_cast<int64_t*>(t.data()), n, static_cast<int64_t>(value));
    case DType::u8: return cuda::fill<uint8_t>(s, static_cast<uint8_t*>(t.data()), n, static_cast<uint8_t>(value));
    case DType::bf16:
    case DType::f16: break;
  }
  CONVOY_FAIL("fill supports f32, f64, i32, i64 and u8 tensors, got " << dtype_name(t.dtype()));
}

void CudaBackend::cast(ExecContext& ctx, const Tensor& src, Tensor& dst) {
  check_device(src, device_, "cast", "the source");
  check_device(dst, device_, "cast", "the destination");
  CONVOY_CHECK(src.numel() == dst.numel(), "cast of " << src.numel() << " elements into " << dst.numel());
  const DType from = src.dtype(), to = dst.dtype();
  cudaStream_t s = cuda_ctx(ctx).stream();
  if (from == DType::f32 && (to == DType::bf16 || to == DType::f16))
    return cast_to_half(s, static_cast<const float*>(src.data()), static_cast<uint16_t*>(dst.data()), src.numel(),
                        to == DType::bf16);
  if ((from == DType::bf16 || from == DType::f16) && to == DType::f32)
    return cast_from_half(s, static_cast<const uint16_t*>(src.data()), static_cast<float*>(dst.data()), src.numel(),
                          from == DType::bf16);
  CONVOY_FAIL("cast converts f32 to bf16 or f16 and back, not " << dtype_name(from) << " to " << dtype_name(to));
}

void CudaBackend::sgd_update(ExecContext& ctx, const SgdParams& p, Tensor& w, Tensor& v, const Tensor& g) {
  check_device(w, device_, "SGD update", "w");
  check_device(v, device_, "SGD update", "the momentum");
  check_device(g, device_, "SGD update", "the gradient");
  CONVOY_CHECK(w.numel() == v.numel() && w.numel() == g.numel(),
               "SGD update over " << w.numel() << " weights, " << v.numel() << " momenta and " << g.numel()
                                  << " gradients");
  cuda::sgd_update(cuda_ctx(ctx).stream(), w.data_as<float>(), v.data_as<float>(), g.data_as<float>(), w.numel(), p.lr,
                   p.momentum, p.weight_decay, p.nesterov, p.grad_scale);
}

void CudaBackend::sum_squares(ExecContext& ctx, const Tensor& x, Tensor& out) {
  check_device(x, device_, "sum of squares", "x");
  check_device(out, device_, "sum of squares", "the result");
  CONVOY_CHECK(out.numel() == 1, "the sum of squares goes into one f64 element, got " << out.shape().str());
  CudaContext& c = cuda_ctx(ctx);
  cuda::sum_squares(c.stream(), x.data_as<float>(), x.numel(), c.partials(), out.data_as<double>());
}


void CudaBackend::round_to(ExecContext& ctx, const Tensor& src, Tensor& dst, DType storage) {
  check_device(src, device_, "rounding", "the source");
  check_device(dst, device_, "rounding", "the destination");
  CONVOY_CHECK(src.numel() == dst.numel(), "rounding " << src.numel() << " elements into " << dst.numel());
  CONVOY_CHECK(storage == DType::f16 || storage == DType::bf16,
               "rounding emulates f16 or bf16 storage, not " << dtype_name(storage));
  round_through_half(cuda_ctx(ctx).stream(), src.data_as<float>(), dst.data_as<float>(), src.numel(),
                     storage == DType::bf16);
}

void CudaBackend::check_finite(ExecContext& ctx, const Tensor& x, Tensor& flag) {
  check_device(x, device_, "finiteness check", "x");
  check_device(flag, device_, "finiteness check", "the flag");
  CONVOY_CHECK(flag.numel() == 1, "the finiteness flag is one i32 element, got " << flag.shape().str());
  flag_nonfinite(cuda_ctx(ctx).stream(), x.data_as<float>(), x.numel(), flag.data_as<int32_t>());
}

void CudaBackend::mix_with_reverse(ExecContext& ctx, const Tensor& x, float lambda, Tensor& out) {
  check_device(x, device_, "mixup", "the batch");
  check_device(out, device_, "mixup", "the mixed batch");
  check_mix(x, lambda, out);
  mix_rows_with_reverse(cuda_ctx(ctx).stream(), x.data_as<float>(), out.data_as<float>(), x.dim(0),
                        x.numel() / std::max<int64_t>(x.dim(0), 1), lambda);
}

void CudaBackend::add_into(ExecContext& ctx, const Tensor& src, Tensor& dst, float alpha) {
  check_device(src, device_, "add", "the source");
  check_device(dst, device_, "add", "the destination");
  CONVOY_CHECK(src.numel() == dst.numel(), "adding " << src.numel() << " elements into " << dst.numel());
  if (alpha == 1.f)
    write_or_accumulate(cuda_ctx(ctx).stream(), dst.data_as<float>(), src.data_as<float>(), src.numel(), true);
  else
    accumulate_scaled(cuda_ctx(ctx).stream(), dst.data_as<float>(), src.data_as<float>(), src.numel(), alpha);
}

// --- weight layouts ---

int64_t oihw_to_ohwi(int64_t plain, const Shape& s) {
  const int64_t C = s[1], H = s[2], W = s[3];
  const int64_t w = plain % W, h = plain / W % H, c = plain / (W * H) % C, k = plain / (W * H * C);
  return ((k * H + h) * W + w) * C + c;
}

void ReorderedLayout::pack(ExecContext& ctx, const Tensor& plain_host, Tensor& packed) const {
  CONVOY_CHECK(plain_host.numel() == shape_.numel(), "packing " << plain_host.numel() << " values into a layout of "
                                                                << shape_.numel());
  const float* src = plain_host.host<float>();
  std::vector<float> staged(static_cast<size_t>(shape_.numel()));
  for (int64_t i = 0; i < shape_.numel(); ++i) staged[static_cast<size_t>(map_(i, shape_))] = src[i];
  CudaContext& c = cuda_ctx(ctx);
  CUDA_CHECK(cudaMemcpyAsync(packed.data(), staged.data(), bytes(), cudaMemcpyHostToDevice, c.stream()));
  c.synchronize();  // `staged` goes away
}

void ReorderedLayout::unpack(ExecContext& ctx, const Tensor& packed, Tensor& plain_host) const {
  CONVOY_CHECK(plain_host.numel() == shape_.numel(), "unpacking a layout of " << shape_.numel() << " values into "
                                                                              << plain_host.numel());
  std::vector<float> staged(static_cast<size_t>(shape_.numel()));
  CudaContext& c = cuda_ctx(ctx);
  CUDA_CHECK(cudaMemcpyAsync(staged.data(), packed.data(), bytes(), cudaMemcpyDeviceToHost, c.stream()));
  c.synchronize();
  float* dst = plain_host.host<float>();
  for (int64_t i = 0; i < shape_.numel(); ++i) dst[i] = staged[static_cast<size_t>(map_(i, shape_))];
}

std::unique_ptr<Backend> make_cuda_backend(const CudaOptions& o) { return std::make_unique<CudaBackend>(o); }

}  // namespace convoy::ops::cuda
