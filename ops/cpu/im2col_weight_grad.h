// Convolution weight gradient as im2col + SGEMM. oneDNN 2.6 on AVX2 has no direct kernel for the
// backward-weights pass of some NHWC shapes (ResNet's last stage at small images: 3x3 on 2x2 maps) and
// falls back to a gemm-based convolution that runs at a quarter of the machine's speed; the same
// product done as one large SGEMM over the batch runs near peak. Used only where oneDNN picked that
// fallback. dW[K, R*S*C] = dY^T[K, N*P*Q] x col[N*P*Q, R*S*C], then reordered into the packed layout.
#pragma once

#include "ops/cpu/cpu_backend.h"

namespace convoy::ops::cpu {

class Im2colWeightGrad {
 public:
  // packed: the weights' device layout; the workspace from ws_offset on belongs to this object.
  Im2colWeightGrad(CpuBackend& be, const ConvSpec& s, const dnnl::memory::desc& packed, size_t ws_offset);
  size_t workspace_end() const { return ws_end_; }
  // x: (N, H, W, C)  g: (N, P, Q, K) output gradient  dw: packed  db: (K) or null. Overwrites.
  void run(ExecContext& ctx, const float* x, const float* g, void* dw, float* db);

 private:
  void im2col(const float* x, int64_t n0, int64_t images, float* col) const;

  ConvSpec s_;
  int64_t P_, Q_, rsc_, images_per_chunk_;
  size_t off_plain_, off_col_, off_scratch_, ws_end_;
  Call reorder_;
};

}  // namespace convoy::ops::cpu
