// Sliding-window kernels: max, average and adaptive average pooling, and LRN (a window over channels).
#include "ops/cuda/kernels.cuh"
#include "ops/math/window.h"

namespace convoy::ops::cuda {
namespace {

template <typename T>
void max_pool_forward_t(cudaStream_t stream, const PoolShape& s, const T* x, T* y, int32_t* argmax) {
  launch(stream, s.N * s.OH * s.OW * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C, ow = (i / s.C) % s.OW, oh = (i / (s.C * s.OW)) % s.OH, n = i / (s.C * s.OW * s.OH);
    const math::Window wh = math::pool_window(oh, s.H, s.kh, s.sh, s.ph), ww = math::pool_window(ow, s.W, s.kw, s.sw, s.pw);
    float best = -INFINITY;
    int32_t at = static_cast<int32_t>(wh.begin * s.W + ww.begin);
    for (int64_t h = wh.begin; h < wh.end; ++h)
      for (int64_t w = ww.begin; w < ww.end; ++w) {
        const float v = ld(x[((n * s.H + h) * s.W + w) * s.C + c]);
        if (v > best || isnan(v)) best = v, at = static_cast<int32_t>(h * s.W + w);  // NaN wins, as in PyTorch's kernel
      }
    y[i] = st<T>(best);
    argmax[i] = at;
  });
}

// Backward as a gather over the windows that contain each input: a fixed summation order, no atomics.
template <typename T>
void max_pool_backward_t(cudaStream_t stream, const PoolShape& s, const T* dy, const int32_t* argmax, T* dx,
                         bool accumulate) {
  launch(stream, s.N * s.H * s.W * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C, w = (i / s.C) % s.W, h = (i / (s.C * s.W)) % s.H, n = i / (s.C * s.W * s.H);
    int64_t oh0, oh1, ow0, ow1;
    math::windows_containing(h, s.OH, s.kh, s.sh, s.ph, oh0, oh1);
    math::windows_containing(w, s.OW, s.kw, s.sw, s.pw, ow0, ow1);
    const int32_t self = static_cast<int32_t>(h * s.W + w);
    float g = 0.f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const int64_t o = ((n * s.OH + oh) * s.OW + ow) * s.C + c;
        if (argmax[o] == self) g += ld(dy[o]);
      }
    dx[i] = st<T>(accumulate ? ld(dx[i]) + g : g);
  });
}

template <typename T>
void avg_pool_forward_t(cudaStream_t stream, const PoolShape& s, const T* x, T* y) {
  launch(stream, s.N * s.OH * s.OW * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C, ow = (i / s.C) % s.OW, oh = (i / (s.C * s.OW)) % s.OH, n = i / (s.C * s.OW * s.OH);
    const math::Window wh = math::pool_window(oh, s.H, s.kh, s.sh, s.ph), ww = math::pool_window(ow, s.W, s.kw, s.sw, s.pw);
    float sum = 0.f;
    for (int64_t h = wh.begin; h < wh.end; ++h)
      for (int64_t w = ww.begin; w < ww.end; ++w) sum += ld(x[((n * s.H + h) * s.W + w) * s.C + c]);
    const int64_t count = s.count_include_pad ? wh.padded_size * ww.padded_size
                                              : (wh.end - wh.begin) * (ww.end - ww.begin);
    y[i] = st<T>(count > 0 ? sum / static_cast<float>(count) : 0.f);
  });
}

template <typename T>
void avg_pool_backward_t(cudaStream_t stream, const PoolShape& s, const T* dy, T* dx, bool accumulate) {
  launch(stream, s.N * s.H * s.W * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C, w = (i / s.C) % s.W, h = (i / (s.C * s.W)) % s.H, n = i / (s.C * s.W * s.H);
    int64_t oh0, oh1, ow0, ow1;
    math::windows_containing(h, s.OH, s.kh, s.sh, s.ph, oh0, oh1);
    math::windows_containing(w, s.OW, s.kw, s.sw, s.pw, ow0, ow1);
    float g = 0.f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const math::Window wh = math::pool_window(oh, s.H, s.kh, s.sh, s.ph),
                           ww = math::pool_window(ow, s.W, s.kw, s.sw, s.pw);
        const int64_t count = s.count_include_pad ? wh.padded_size * ww.padded_size
                                                  : (wh.end - wh.begin) * (ww.end - ww.begin);
        if (count > 0) g += ld(dy[((n * s.OH + oh) * s.OW + ow) * s.C + c]) / static_cast<float>(count);
      }
    dx[i] = st<T>(accumulate ? ld(dx[i]) + g : g);
  });
}

template <typename T>
void adaptive_avg_pool_forward_t(cudaStream_t stream, const AdaptiveShape& s, const T* x, T* y) {
  launch(stream, s.N * s.OH * s.OW * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C, ow = (i / s.C) % s.OW, oh = (i / (s.C * s.OW)) % s.OH, n = i / (s.C * s.OW * s.OH);
    y[i] = st<T>(math::adaptive_avg_at(oh, ow, s.H, s.W, s.OH, s.OW, [&](int64_t h, int64_t w) {
      return ld(x[((n * s.H + h) * s.W + w) * s.C + c]);
    }));
  });
}

template <typename T>
void adaptive_avg_pool_backward_t(cudaStream_t stream, const AdaptiveShape& s, const T* dy, T* dx, bool accumulate) {
  launch(stream, s.N * s.H * s.W * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C, w = (i / s.C) % s.W, h = (i / (s.C * s.W)) % s.H, n = i / (s.C * s.W * s.H);
    const float g = math::adaptive_avg_grad_at(h, w, s.H, s.W, s.OH, s.OW, [&](int64_t oh, int64_t ow) {
      return ld(dy[((n * s.OH + oh) * s.OW + ow) * s.C + c]);
    });
    dx[i] = st<T>(accumulate ? ld(dx[i]) + g : g);
  });
}

template <typename T>
void lrn_forward_t(cudaStream_t stream, const T* x, T* y, float* scale, int64_t pixels, int64_t C, int64_t size,
                   float alpha, float beta, float k) {
  launch(stream, pixels * C, [=] __device__(int64_t i) {
    const int64_t c = i % C, base = i - c;
    const int64_t lo = c - size / 2 > 0 ? c - size / 2 : 0, hi = c + (size - 1) / 2 < C - 1 ? c + (size - 1) / 2 : C - 1;
    float sum = 0.f;
    for (int64_t j = lo; j <= hi; ++j) sum += ld(x[base + j]) * ld(x[base + j]);
    const float sc = k + alpha / static_cast<float>(size) * sum;
    scale[i] = sc;
    y[i] = st<T>(ld(x[i]) * powf(sc, -beta));
  });
}

template <typename T>
void lrn_backward_t(cudaStream_t stream, const T* x, const T* dy, const float* scale, T* dx, int64_t pixels, int64_t C,
                    int64_t size, float alpha, float beta, bool accumulate) {
  launch(stream, pixels * C, [=] __device__(int64_t i) {
    const int64_t c = i % C, base = i - c;
    // Channel c is in the window of channel j when j - size/2 <= c <= j + (size-1)/2.
    const int64_t lo = c - (size - 1) / 2 > 0 ? c - (size - 1) / 2 : 0, hi = c + size / 2 < C - 1 ? c + size / 2 : C - 1;
    float acc = 0.f;
    for (int64_t j = lo; j <= hi; ++j) acc += ld(dy[base + j]) * ld(x[base + j]) * powf(scale[base + j], -beta - 1.f);
    const float g = ld(dy[i]) * powf(scale[i], -beta) - 2.f * alpha * beta / static_cast<float>(size) * ld(x[i]) * acc;
    dx[i] = st<T>(accumulate ? ld(dx[i]) + g : g);
  });
}

}  // namespace

void max_pool_forward(cudaStream_t stream, Elem t, const PoolShape& s, const void* x, void* y, int32_t* argmax) {
  CONVOY_BY_DTYPE(t, "max pooling", max_pool_forward_t(stream, s, C(x), P(y), argmax));
}
void max_pool_backward(cudaStream_t stream, Elem t, const PoolShape& s, const void* dy, const int32_t* argmax,
                       void* dx, bool accumulate) {
  CONVOY_BY_DTYPE(t, "max pooling", max_pool_backward_t(stream, s, C(dy), argmax, P(dx), accumulate));
}
void avg_pool_forward(cudaStream_t stream, Elem t, const PoolShape& s, const void* x, void* y) {
  CONVOY_BY_DTYPE(t, "average pooling", avg_pool_forward_t(stream, s, C(x), P(y)));
}
void avg_pool_backward(cudaStream_t stream, Elem t, const PoolShape& s, const void* dy, void* dx, bool accumulate) {
  CONVOY_BY_DTYPE(t, "average pooling", avg_pool_backward_t(stream, s, C(dy), P(dx), accumulate));
}
void adaptive_avg_pool_forward(cudaStream_t stream, Elem t, const AdaptiveShape& s, const void* x, void* y) {
  CONVOY_BY_DTYPE(t, "adaptive pooling", adaptive_avg_pool_forward_t(stream, s, C(x), P(y)));
}
void adaptive_avg_pool_backward(cudaStream_t stream, Elem t, const AdaptiveShape& s, const void* dy, void* dx,
                                bool accumulate) {
  CONVOY_BY_DTYPE(t, "adaptive pooling", adaptive_avg_pool_backward_t(stream, s, C(dy), P(dx), accumulate));
}
void lrn_forward(cudaStream_t stream, Elem t, const void* x, void* y, float* scale, int64_t pixels, int64_t C_,
                 int64_t size, float alpha, float beta, float k) {
  CONVOY_BY_DTYPE(t, "LRN", lrn_forward_t(stream, C(x), P(y), scale, pixels, C_, size, alpha, beta, k));
}
void lrn_backward(cudaStream_t stream, Elem t, const void* x, const void* dy, const float* scale, void* dx,
                  int64_t pixels, int64_t C_, int64_t size, float alpha, float beta, bool accumulate) {
  CONVOY_BY_DTYPE(t, "LRN", lrn_backward_t(stream, C(x), C(dy), scale, P(dx), pixels, C_, size, alpha, beta,
                                           accumulate));
}

}  // namespace convoy::ops::cuda
