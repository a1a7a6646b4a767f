// Convolution weight gradient as im2col + SGEMM. oneDNN 2.6 on AVX2 has no direct kernel for the
// backward-weights pass of some NHWC shapes (ResNet's last stage at small images: 3x3 on 2x2 maps) and
// falls back to a gemm-based convolution that runs at a quarter of the machine's speed; the same
// product done as one large SGEMM over the batch runs near peak. Used only where oneDNN picked that
// fallback. dW[K, R*S*C] = dY^T[K, N*P*Q] x col[N*P*Q, R*S*C], then reordered into the packed layout.
// In bf16 (mixed precision) oneDNN 2.6's direct kernel runs the same small maps at a third of its speed on
// larger ones; there the product is a oneDNN matmul of bf16 dY and columns into f32 dW over the whole
// batch at once (bf16_fits() says whether its column buffer is small enough).
#pragma once

#include "ops/cpu/cpu_backend.h"

namespace convoy::ops::cpu {

// col row (n, p, q) of images [n0, n0 + images) holds the input patch in (r, s, c) order, zeros where it
// overlaps the padding; x is (N, H, W, C) with elements of es bytes, col (images * P * Q, R * S * C).
void im2col_nhwc(const ConvSpec& s, size_t es, const char* x, int64_t n0, int64_t images, char* col);

class Im2colWeightGrad {
 public:
  // packed: the weights' device layout; the workspace from ws_offset on belongs to this object.
  Im2colWeightGrad(CpuBackend& be, const ConvSpec& s, const dnnl::memory::desc& packed, size_t ws_offset);
  static bool bf16_fits(const ConvSpec& s);
  size_t workspace_end() const { return ws_end_; }
  // x: (N, H, W, C) in the spec's dtype  g: (N, P, Q, K) output gradient, the same dtype  dw: packed f32
  // db: (K) f32 or null. Overwrites.
  void run(ExecContext& ctx, const void* x, const void* g, void* dw, float* db);

 private:
  template <typename T>
  void bias_grad(const T* g, float* db) const;

  ConvSpec s_;
  size_t es_;  // element bytes of x and g
  int64_t P_, Q_, rsc_, images_per_chunk_;
  size_t off_plain_, off_col_, off_scratch_, ws_end_;
  Call reorder_, matmul_;
};

}  // namespace convoy::ops::cpu
