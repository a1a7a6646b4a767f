#include "tests/ops/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace convoy::test {

std::vector<float> conv2d_ref(const ConvRef& p, const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>& b, int64_t& OH, int64_t& OW) {
  OH = (p.H + 2 * p.pad - p.dilation * (p.R - 1) - 1) / p.stride + 1;
  OW = (p.W + 2 * p.pad - p.dilation * (p.S - 1) - 1) / p.stride + 1;
  const int64_t cg = p.C / p.groups, kg = p.K / p.groups;
  std::vector<float> y(static_cast<size_t>(p.N * OH * OW * p.K));
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t k = 0; k < p.K; ++k) {
          const int64_t g = k / kg;
          double acc = b.empty() ? 0.0 : b[static_cast<size_t>(k)];
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t r = 0; r < p.R; ++r)
              for (int64_t s = 0; s < p.S; ++s) {
                int64_t ih = oh * p.stride - p.pad + r * p.dilation, iw = ow * p.stride - p.pad + s * p.dilation;
                if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) continue;
                double xv = x[static_cast<size_t>(((n * p.H + ih) * p.W + iw) * p.C + g * cg + c)];
                double wv = w[static_cast<size_t>(((k * cg + c) * p.R + r) * p.S + s)];
                acc += xv * wv;
              }
          y[static_cast<size_t>(((n * OH + oh) * OW + ow) * p.K + k)] = static_cast<float>(acc);
        }
  return y;
}

std::vector<float> pool2d_ref(const PoolRef& p, const std::vector<float>& x, int64_t& OH, int64_t& OW) {
  auto out_size = [&](int64_t in) {
    int64_t num = in + 2 * p.pad - p.k;
    int64_t o = (p.ceil_mode ? (num + p.stride - 1) / p.stride : num / p.stride) + 1;
    if (p.ceil_mode && (o - 1) * p.stride >= in + p.pad) --o;  // PyTorch: the last window starts inside
    return o;
  };
  OH = out_size(p.H);
  OW = out_size(p.W);
  std::vector<float> y(static_cast<size_t>(p.N * OH * OW * p.C));
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t c = 0; c < p.C; ++c) {
          // PyTorch's avg_pool2d: the divisor with padding counts the window clipped to the padded input.
          int64_t h0 = oh * p.stride - p.pad, w0 = ow * p.stride - p.pad;
          int64_t h1 = std::min(h0 + p.k, p.H + p.pad), w1 = std::min(w0 + p.k, p.W + p.pad);
          int64_t pool_size = (h1 - h0) * (w1 - w0);
          int64_t hs = std::max<int64_t>(h0, 0), ws = std::max<int64_t>(w0, 0);
          int64_t he = std::min(h1, p.H), we = std::min(w1, p.W);
          double acc = p.max ? -std::numeric_limits<double>::infinity() : 0.0;
          for (int64_t h = hs; h < he; ++h)
            for (int64_t w = ws; w < we; ++w) {
              double v = x[static_cast<size_t>(((n * p.H + h) * p.W + w) * p.C + c)];
              acc = p.max ? std::max(acc, v) : acc + v;
            }
          if (!p.max) acc /= static_cast<double>(p.count_include_pad ? pool_size : (he - hs) * (we - ws));
          y[static_cast<size_t>(((n * OH + oh) * OW + ow) * p.C + c)] = static_cast<float>(acc);
        }
  return y;
}

std::vector<float> batch_norm_ref(const std::vector<float>& x, int64_t M, int64_t C, const std::vector<float>& gamma,
                                  const std::vector<float>& beta, float eps, std::vector<double>* mean_out,
                                  std::vector<double>* var_out) {
  std::vector<double> mean(static_cast<size_t>(C), 0.0), var(static_cast<size_t>(C), 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < C; ++c) mean[static_cast<size_t>(c)] += x[static_cast<size_t>(m * C + c)];
  for (auto& v : mean) v /= static_cast<double>(M);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < C; ++c) {
      double d = x[static_cast<size_t>(m * C + c)] - mean[static_cast<size_t>(c)];
      var[static_cast<size_t>(c)] += d * d;
    }
  for (auto& v : var) v /= static_cast<double>(M);
  std::vector<float> y(x.size());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < C; ++c) {
      size_t i = static_cast<size_t>(m * C + c), ci = static_cast<size_t>(c);
      y[i] = static_cast<float>((x[i] - mean[ci]) / std::sqrt(var[ci] + eps) * gamma[ci] + beta[ci]);
    }
  if (mean_out) *mean_out = mean;
  if (var_out) *var_out = var;
  return y;
}

}  // namespace convoy::test
