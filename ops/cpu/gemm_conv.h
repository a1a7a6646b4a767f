// Convolution as three products over the whole batch, with plain weights (OHWI: K rows of R*S*C), for f32
// output maps of at most kGemmConvMaxPixels pixels: ResNet's last two stages at 64x64 inputs (4x4 and 2x2
// maps). There oneDNN 2.6's direct kernels run at a quarter to a half of the machine's peak, and its
// backward-data and backward-weights kernels want weight layouts of their own, which cost two reorders of
// the weights (a read and a write of megabytes each) per layer and step. Here no pass reorders weights:
// forward reads W once (a oneDNN matmul reading it transposed in place, bias and ReLU fused),
// backward-data reads it once and backward-weights writes dW once (oneDNN's sgemm), in the layout the
// optimizer updates. A fixed rule, not a timing at start-up, so every rank and run computes the same sums
// in the same order.
#pragma once

#include <memory>

#include "ops/cpu/cpu_backend.h"

namespace convoy::ops::cpu {

inline constexpr int64_t kGemmConvMaxPixels = 16;

bool gemm_conv_fits(const ConvSpec& s);
std::unique_ptr<ConvKernel> make_gemm_conv(CpuBackend& be, const ConvSpec& spec);

}  // namespace convoy::ops::cpu
