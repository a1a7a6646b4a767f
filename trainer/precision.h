// What train.precision (--precision) means on a backend, decided once for the trainer and `bench train`:
//   fp32  plain fp32 (no loss scaling);
//   fp16  dynamic loss scaling, and on a GPU native fp16 kernels (cuDNN, cuBLAS tensor cores) with fp32
//         master weights (ops::Graph::set_compute_dtype); on the CPU an exact emulation of fp16 storage
//         (ops::Graph::set_emulated_storage): the CPU reference of GPU fp16 training, a numerics check and
//         not a speed-up;
//   bf16  native bf16 kernels with fp32 master weights (ops::Graph::set_compute_dtype): on a GPU through
//         cuDNN/cuBLAS, on the CPU through oneDNN where the processor has AVX-512 BF16 or AMX (refused
//         elsewhere, naming the ISA found). No
//         loss scaling: bf16 has fp32's exponent range, so gradients do not underflow (as PyTorch's bf16
//         autocast, which uses no GradScaler);
//   auto  the fastest of these the device runs natively: fp16 on a GPU (tensor cores since Volta), bf16 on
//         a CPU with AVX-512 BF16 or AMX, fp32 on other CPUs. The plan's description names the choice
//         (the run log and `bench train` print it). Master weights are fp32 in every case, so a run may
//         resume on a machine where auto chooses differently.
#pragma once

#include <string>

#include "ops/backend.h"

namespace convoy::trainer {

struct PrecisionPlan {
  ops::DType emulated = ops::DType::f32;  // the storage the graph emulates (f32: none)
  ops::DType compute = ops::DType::f32;   // the dtype the graph's kernels run in (f32: plain fp32)
  bool loss_scaling = false;              // dynamic loss scaling (trainer/loss_scale.h)
  std::string describe;                   // "fp32", "fp16 (emulated storage on cpu)"
};

// Throws, saying why and what works instead, for a precision this backend cannot run.
PrecisionPlan plan_precision(const std::string& precision, const ops::Backend& backend);

}  // namespace convoy::trainer
