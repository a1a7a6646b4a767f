#include "ops/backend.h"

namespace convoy::ops {

std::vector<std::string> backend_names() { return {"cpu", "cpu-strict"}; }

std::unique_ptr<Backend> make_backend(const std::string& device, int threads) {
  if (device == "cpu") return make_cpu_backend(threads);
  if (device == "cpu-strict") return make_strict_backend(threads);
  if (device == "cuda") {
#if defined(CONVOY_CUDA_TOOLKIT)
    CONVOY_FAIL("device 'cuda': this version of convoy has no CUDA backend yet (the CUDA toolkit "
                << CONVOY_CUDA_TOOLKIT
                << " was found and only convoy's elementwise CUDA kernels are compiled; the cuDNN/NCCL backend is "
                   "the next piece of work): train on device cpu");
#else
    CONVOY_FAIL("device 'cuda': this convoy build has no CUDA backend: it was configured without the CUDA "
                "toolkit. Install the toolkit with cuDNN and NCCL (under /usr/local/cuda, or pass "
                "-DCUDAToolkit_ROOT=DIR to cmake) and configure again with -DCONVOY_WITH_CUDA=ON; or train on "
                "device cpu");
#endif
  }
  std::string known;
  for (const auto& n : backend_names()) known += (known.empty() ? "" : ", ") + n;
  CONVOY_FAIL("unknown device '" << device << "': use one of " << known << " (or cuda, with a CUDA build)");
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
