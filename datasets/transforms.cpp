#include "datasets/transforms.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace convoy::datasets {

CropBox random_resized_crop(Rng& rng, int width, int height, double area_min, double area_max, double ratio_min,
                            double ratio_max) {
  const double area = static_cast<double>(width) * height;
  const double log_lo = std::log(ratio_min), log_hi = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(area_min, area_max);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    // Python's round() rounds half to even, as nearbyint does in the default rounding mode.
    const int w = static_cast<int>(std::nearbyint(std::sqrt(target * aspect)));
    const int h = static_cast<int>(std::nearbyint(std::sqrt(target / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int y = static_cast<int>(rng.between(0, height - h));
      const int x = static_cast<int>(rng.between(0, width - w));
      return {x, y, w, h};
    }
  }
  const double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < ratio_min) {
    h = static_cast<int>(std::nearbyint(w / ratio_min));
  } else if (in_ratio > ratio_max) {
    w = static_cast<int>(std::nearbyint(h * ratio_max));
  }
  w = std::clamp(w, 1, width);
  h = std::clamp(h, 1, height);
  return {(width - w) / 2, (height - h) / 2, w, h};
}

EvalGeometry eval_geometry(int width, int height, int resize, int crop) {
  EvalGeometry g;
  if (width <= height) {
    g.resized_w = resize;
    g.resized_h = static_cast<int>(int64_t{resize} * height / width);
  } else {
    g.resized_h = resize;
    g.resized_w = static_cast<int>(int64_t{resize} * width / height);
  }
  g.crop_x = static_cast<int>(std::nearbyint((g.resized_w - crop) / 2.0));
  g.crop_y = static_cast<int>(std::nearbyint((g.resized_h - crop) / 2.0));
  return g;
}

ColorJitter draw_color_jitter(Rng& rng, float strength) {
  ColorJitter j;
  for (int i = 2; i > 0; --i) std::swap(j.order[static_cast<size_t>(i)], j.order[rng.below(static_cast<uint64_t>(i + 1))]);
  for (float& f : j.factor) f = static_cast<float>(rng.uniform(1.0 - strength, 1.0 + strength));
  return j;
}

namespace {

inline float clamp255(float v) { return std::min(std::max(v, 0.f), 255.f); }

}  // namespace

// Sums of the R, G and B values of an interleaved image, with 24 independent float accumulators
// (8 pixels per step) so that the loop vectorizes; partial sums stay far below float's exact range.
std::array<double, 3> channel_sums(const float* rgb, int64_t pixels) {
  float acc[24] = {};
  int64_t p = 0;
  for (; p + 8 <= pixels; p += 8)
    for (int k = 0; k < 24; ++k) acc[k] += rgb[3 * p + k];
  std::array<double, 3> s{0, 0, 0};
  for (int k = 0; k < 24; ++k) s[static_cast<size_t>(k % 3)] += acc[k];
  for (; p < pixels; ++p)
    for (size_t c = 0; c < 3; ++c) s[c] += rgb[3 * p + static_cast<int64_t>(c)];
  return s;
}

void apply_color_jitter(float* rgb, int64_t pixels, const ColorJitter& jitter) {
  const int64_t n = pixels * 3;
  for (int op : jitter.order) {
    const float f = jitter.factor[static_cast<size_t>(op)];
    if (op == 0) {  // brightness: blend with black
      for (int64_t i = 0; i < n; ++i) rgb[i] = clamp255(rgb[i] * f);
    } else if (op == 1) {  // contrast: blend with the mean gray level
      const std::array<double, 3> s = channel_sums(rgb, pixels);
      const double mean_gray = (0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2]) / static_cast<double>(pixels);
      const float m = static_cast<float>(mean_gray) * (1.f - f);
      for (int64_t i = 0; i < n; ++i) rgb[i] = clamp255(rgb[i] * f + m);
    } else {  // saturation: blend with each pixel's gray level
      const float g = 1.f - f;
      for (int64_t p = 0; p < pixels; ++p) {
        float* q = rgb + 3 * p;
        const float r = q[0], gr = q[1], b = q[2];
        const float gray_part = (0.299f * r + 0.587f * gr + 0.114f * b) * g;
        q[0] = clamp255(r * f + gray_part);
        q[1] = clamp255(gr * f + gray_part);
        q[2] = clamp255(b * f + gray_part);
      }
    }
  }
}

std::array<float, 3> draw_lighting(Rng& rng, float std) {
  std::array<float, 3> alpha{};
  for (float& a : alpha) a = static_cast<float>(rng.normal()) * std;
  std::array<float, 3> offset{};
  for (size_t c = 0; c < 3; ++c)
    for (size_t k = 0; k < 3; ++k) offset[c] += kImageNetEigvec[c][k] * alpha[k] * kImageNetEigval[k];
  return offset;
}

namespace {

template <typename In, typename Out, typename Convert>
void store_rows(const In* in, int h, int w, int channels, bool flip, const float* scale, const float* bias, Out* out,
                Convert convert) {
  for (int y = 0; y < h; ++y) {
    const In* row = in + static_cast<int64_t>(y) * w * channels;
    Out* o = out + static_cast<int64_t>(y) * w * channels;
    if (channels == 3) {
      const float s0 = scale[0], s1 = scale[1], s2 = scale[2], b0 = bias[0], b1 = bias[1], b2 = bias[2];
      for (int x = 0; x < w; ++x) {
        const In* p = row + 3 * (flip ? w - 1 - x : x);
        o[3 * x] = convert(static_cast<float>(p[0]) * s0 + b0);
        o[3 * x + 1] = convert(static_cast<float>(p[1]) * s1 + b1);
        o[3 * x + 2] = convert(static_cast<float>(p[2]) * s2 + b2);
      }
    } else {
      for (int x = 0; x < w; ++x) {
        const In* p = row + static_cast<int64_t>(channels) * (flip ? w - 1 - x : x);
        for (int c = 0; c < channels; ++c)
          o[channels * x + c] = convert(static_cast<float>(p[c]) * scale[c] + bias[c]);
      }
    }
  }
}

template <typename In>
void store_any(const In* in, int h, int w, int channels, bool flip, const float* scale, const float* bias, bool bf16,
               void* out) {
  if (bf16)
    store_rows(in, h, w, channels, flip, scale, bias, static_cast<uint16_t*>(out), float_to_bf16);
  else
    store_rows(in, h, w, channels, flip, scale, bias, static_cast<float*>(out), [](float v) { return v; });
}

}  // namespace

void store_normalized(const float* in, int h, int w, int channels, bool flip, const float* scale, const float* bias,
                      bool bf16, void* out) {
  store_any(in, h, w, channels, flip, scale, bias, bf16, out);
}

void store_normalized(const uint8_t* in, int h, int w, int channels, bool flip, const float* scale, const float* bias,
                      bool bf16, void* out) {
  store_any(in, h, w, channels, flip, scale, bias, bf16, out);
}

void mirror_images(const float* in, int64_t n, int64_t h, int64_t w, int64_t channels, float* out) {
  const int64_t rows = n * h;
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = in + r * w * channels;
    float* dst = out + r * w * channels;
    for (int64_t x = 0; x < w; ++x) std::memcpy(dst + x * channels, src + (w - 1 - x) * channels, channels * sizeof(float));
  }
}

}  // namespace convoy::datasets
