// Pooling windows as PyTorch defines them, shared by the CUDA kernels and tested on the CPU against the
// oneDNN backend's results (tests/ops/test_window.cpp).
#pragma once

#include <cstdint>

#include "ops/math/elementwise.h"

namespace convoy::math {

// The input rows [begin, end) of output row o along one dimension of size `in`, kernel k, stride s and
// padding p, clipped to the input; `padded_size` is the window's size counting padding as PyTorch's
// count_include_pad does (clipped to in + p, so a ceil-mode window that hangs past the padding counts
// only up to it).
struct Window {
  int64_t begin, end, padded_size;
};

CONVOY_HD Window pool_window(int64_t o, int64_t in, int64_t k, int64_t s, int64_t p) {
  int64_t b = o * s - p;
  int64_t e = b + k < in + p ? b + k : in + p;
  Window w;
  w.padded_size = e - b;
  w.begin = b > 0 ? b : 0;
  w.end = e < in ? e : in;
  return w;
}

// The output rows [first, last] whose windows contain input row i (last < first: none).
CONVOY_HD void windows_containing(int64_t i, int64_t out, int64_t k, int64_t s, int64_t p, int64_t& first,
                                  int64_t& last) {
  // o*s - p <= i < o*s - p + k  <=>  (i + p - k) / s < o <= (i + p) / s
  int64_t hi = (i + p) / s;
  int64_t lo_num = i + p - k + 1;
  int64_t lo = lo_num <= 0 ? 0 : (lo_num + s - 1) / s;
  first = lo;
  last = hi < out - 1 ? hi : out - 1;
}

// Adaptive average pooling as PyTorch's AdaptiveAvgPool2d: output row o of `out` averages input rows
// [floor(o * in / out), ceil((o + 1) * in / out)). Windows overlap when in is not a multiple of out, and
// repeat rows when out > in.
CONVOY_HD int64_t adaptive_begin(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
CONVOY_HD int64_t adaptive_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

// The output rows [first, last] whose adaptive windows contain input row i:
// begin(o) <= i  <=>  o <= ceil((i + 1) * out / in) - 1;  end(o) > i  <=>  o >= floor(i * out / in).
CONVOY_HD void adaptive_windows_containing(int64_t i, int64_t in, int64_t out, int64_t& first, int64_t& last) {
  first = (i * out) / in;
  last = ((i + 1) * out + in - 1) / in - 1;
  if (last > out - 1) last = out - 1;
}

// One output of adaptive average pooling: the mean of x(h, w) over output (oh, ow)'s window.
template <typename X>
CONVOY_HD float adaptive_avg_at(int64_t oh, int64_t ow, int64_t H, int64_t W, int64_t OH, int64_t OW, X x) {
  const int64_t h0 = adaptive_begin(oh, H, OH), h1 = adaptive_end(oh, H, OH);
  const int64_t w0 = adaptive_begin(ow, W, OW), w1 = adaptive_end(ow, W, OW);
  float sum = 0.f;
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t w = w0; w < w1; ++w) sum += x(h, w);
  return sum / static_cast<float>((h1 - h0) * (w1 - w0));
}

// Its backward at input (h, w): dy(oh, ow) / window size summed over the outputs whose windows hold it,
// in a fixed order.
template <typename DY>
CONVOY_HD float adaptive_avg_grad_at(int64_t h, int64_t w, int64_t H, int64_t W, int64_t OH, int64_t OW, DY dy) {
  int64_t oh0, oh1, ow0, ow1;
  adaptive_windows_containing(h, H, OH, oh0, oh1);
  adaptive_windows_containing(w, W, OW, ow0, ow1);
  float g = 0.f;
  for (int64_t oh = oh0; oh <= oh1; ++oh) {
    const int64_t kh = adaptive_end(oh, H, OH) - adaptive_begin(oh, H, OH);
    for (int64_t ow = ow0; ow <= ow1; ++ow) {
      const int64_t kw = adaptive_end(ow, W, OW) - adaptive_begin(ow, W, OW);
      g += dy(oh, ow) / static_cast<float>(kh * kw);
    }
  }
  return g;
}

}  // namespace convoy::math
