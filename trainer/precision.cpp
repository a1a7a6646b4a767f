#include "trainer/precision.h"

#include "common/error.h"

namespace convoy::trainer {

PrecisionPlan plan_precision(const std::string& precision, const ops::Backend& backend) {
  PrecisionPlan p;
  const bool gpu = backend.device().kind == ops::DeviceKind::cuda;
  if (precision == "auto") {
    // The fastest precision this device trains in without emulation; the plan says what it chose.
    const std::string chosen = gpu ? "fp16" : ops::cpu_has_bf16() ? "bf16" : "fp32";
    p = plan_precision(chosen, backend);
    p.describe = "auto: " + p.describe +
                 (gpu ? "" : ops::cpu_has_bf16() ? "" : " (this processor has no bf16 arithmetic: oneDNN ISA " + ops::cpu_isa() + ")");
    return p;
  }
  if (precision == "fp32") {
    p.describe = "fp32";
    return p;
  }
  if (precision == "fp16") {
    p.loss_scaling = true;
    if (gpu) {
      p.compute = ops::DType::f16;
      p.describe = "fp16 (cuDNN/cuBLAS fp16 tensor-core kernels on " + backend.device().str() +
                   ", fp32 master weights, dynamic loss scaling)";
      return p;
    }
    p.emulated = ops::DType::f16;
    p.describe = "fp16 (emulated fp16 storage on " + backend.device().str() + ", dynamic loss scaling)";
    return p;
  }
  if (precision == "bf16") {
    if (gpu) {
      p.compute = ops::DType::bf16;
      p.describe = "bf16 (cuDNN/cuBLAS bf16 tensor-core kernels on " + backend.device().str() + ", fp32 master weights)";
      return p;
    }
    CONVOY_CHECK(ops::cpu_has_bf16(), "precision bf16: this processor has no bf16 arithmetic (oneDNN ISA "
                                          << ops::cpu_isa()
                                          << "; bf16 needs AVX-512 BF16 or AMX); use fp32, or fp16 (an exact "
                                             "emulation on the CPU)");
    p.compute = ops::DType::bf16;
    p.describe = "bf16 (oneDNN bf16 kernels on " + ops::cpu_isa() + ", fp32 master weights)";
    return p;
  }
  CONVOY_FAIL("unknown precision '" << precision << "': use fp32, fp16, bf16 or auto");
}

}  // namespace convoy::trainer
