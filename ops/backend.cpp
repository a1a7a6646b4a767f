#include "ops/backend.h"

#include <cmath>
#include <cstdlib>

#if defined(CONVOY_CUDA_BACKEND)
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/gpu_choice.h"
#endif

namespace convoy::ops {

void check_loss_terms(const LossTerms& t, int64_t N, int64_t K) {
  CONVOY_CHECK(t.smoothing >= 0.f && t.smoothing < 1.f, "label smoothing must be in [0, 1), got " << t.smoothing);
  CONVOY_CHECK(t.mix_lambda >= 0.f && t.mix_lambda <= 1.f, "the mixup weight must be in [0, 1], got " << t.mix_lambda);
  CONVOY_CHECK(t.temperature > 0.f, "the distillation temperature must be positive, got " << t.temperature);
  CONVOY_CHECK(t.weight > 0.f && std::isfinite(t.weight), "a loss term's weight must be positive, got " << t.weight);
  if (t.teacher)
    CONVOY_CHECK(t.teacher->numel() == N * K && t.teacher->dtype() == DType::f32,
                 "the teacher's logits must be (" << N << ", " << K << ") f32, got " << t.teacher->shape().str() << " "
                                                  << dtype_name(t.teacher->dtype()));
}

void check_mix(const Tensor& x, float lambda, const Tensor& out) {
  CONVOY_CHECK(x.dtype() == DType::f32 && out.dtype() == DType::f32 && x.shape() == out.shape() && x.shape().rank() >= 1,
               "mixup mixes f32 batches of one shape, got " << x.shape().str() << " " << dtype_name(x.dtype())
                                                            << " into " << out.shape().str() << " "
                                                            << dtype_name(out.dtype()));
  CONVOY_CHECK(x.data() != out.data(), "mixup writes a batch other than its input (rows are read twice)");
  CONVOY_CHECK(lambda >= 0.f && lambda <= 1.f, "the mixup weight must be in [0, 1], got " << lambda);
}

bool has_cuda_backend() {
#if defined(CONVOY_CUDA_BACKEND)
  return true;
#else
  return false;
#endif
}

int cuda_devices() {
#if defined(CONVOY_CUDA_BACKEND)
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
#else
  return 0;
#endif
}

std::vector<std::string> backend_names() {
  std::vector<std::string> names{"cpu", "cpu-strict"};
  if (has_cuda_backend()) names.push_back("cuda");
  return names;
}

std::unique_ptr<Backend> make_backend(const std::string& device, int threads) {
  BackendOptions o;
  o.threads = threads;
  return make_backend(device, o);
}

std::unique_ptr<Backend> make_backend(const std::string& device, const BackendOptions& o) {
  if (device == "cpu") return make_cpu_backend(o.threads);
  if (device == "cpu-strict") return make_strict_backend(o.threads);
  if (device == "cuda") {
#if defined(CONVOY_CUDA_BACKEND)
    cuda::CudaOptions c;
    c.device = cuda::choose_gpu(cuda_devices(), o.local_rank, o.local_size, std::getenv("CUDA_VISIBLE_DEVICES"));
    c.fp32 = o.tf32 ? cuda::Fp32Math::tf32 : cuda::Fp32Math::ieee;
    c.deterministic = o.deterministic;
    return cuda::make_cuda_backend(c);
#elif defined(CONVOY_CUDA_TOOLKIT)
    CONVOY_FAIL("device 'cuda': this convoy build has no CUDA backend: the CUDA toolkit "
                << CONVOY_CUDA_TOOLKIT
                << " was found but not all of cuDNN, cuBLAS and NCCL (the configure summary says which); install "
                   "them and configure again with -DCONVOY_WITH_CUDA=on, or train on device cpu");
#else
    CONVOY_FAIL("device 'cuda': this convoy build has no CUDA backend: it was configured without the CUDA "
                "toolkit. Install the toolkit with cuDNN and NCCL (under /usr/local/cuda, or pass "
                "-DCUDAToolkit_ROOT=DIR to cmake) and configure again with -DCONVOY_WITH_CUDA=on; or train on "
                "device cpu");
#endif
  }
  std::string known;
  for (const auto& n : backend_names()) known += (known.empty() ? "" : ", ") + n;
  CONVOY_FAIL("unknown device '" << device << "': use one of " << known
                                 << (has_cuda_backend() ? "" : " (or cuda, with a CUDA build)"));
}

void check_pool_spec(const PoolSpec& s) {
  CONVOY_CHECK(s.out_h() > 0 && s.out_w() > 0, "pooling a " << s.H << "x" << s.W << " input with a " << s.kh << "x"
                                                            << s.kw << " window gives an empty output");
  CONVOY_CHECK(s.pad_h * 2 <= s.kh && s.pad_w * 2 <= s.kw,
               "pooling padding must be at most half the window (PyTorch's rule), got pad " << s.pad_h << "x"
                                                                                           << s.pad_w);
}

void check_lrn_spec(const LrnSpec& s) {
  CONVOY_CHECK(s.size % 2 == 1, "local response normalization supports odd window sizes, got " << s.size);
}

Tensor to_host(Backend& backend, const Tensor& device_tensor) {
  Tensor host = Tensor::empty(device_tensor.shape(), device_tensor.dtype(), host_allocator());
  backend.copy(backend.context(), device_tensor, host);
  backend.context().synchronize();
  return host;
}

void from_host(Backend& backend, const Tensor& host_tensor, Tensor& device_tensor) {
  backend.copy(backend.context(), host_tensor, device_tensor);
  backend.context().synchronize();
}

}  // namespace convoy::ops
