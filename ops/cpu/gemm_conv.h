// Convolution as three SGEMMs over the whole batch, with plain weights (OHWI: K rows of R*S*C), for f32
// output maps of at most kGemmConvMaxPixels pixels: ResNet's last stage at 64x64 inputs (2x2 maps), where
// oneDNN 2.6's direct kernels run at a third to a half of the machine's peak and its backward-data and
// backward-weights kernels want their own weight layouts, which cost two reorders of the weights (each a
// read and a write of megabytes) per layer and step. Here no pass reorders weights: forward reads W once,
// backward-data reads it once, backward-weights writes dW once, in the layout the optimizer updates.
// A fixed rule, not a timing at start-up, so every rank and run computes the same sums in the same order.
#pragma once

#include <memory>

#include "ops/cpu/cpu_backend.h"

namespace convoy::ops::cpu {

inline constexpr int64_t kGemmConvMaxPixels = 4;

bool gemm_conv_fits(const ConvSpec& s);
std::unique_ptr<ConvKernel> make_gemm_conv(CpuBackend& be, const ConvSpec& spec);

}  // namespace convoy::ops::cpu
