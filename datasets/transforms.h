// The augmentation's building blocks, each a small pure function so tests can check them one by one.
// Images here are interleaved (H, W, C) NHWC rows; colour values are in 0-255 units.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

#include "datasets/rng.h"

namespace convoy::datasets {

// A rectangle in source pixels.
struct CropBox {
  int x = 0, y = 0, w = 0, h = 0;
};

// torchvision's RandomResizedCrop.get_params: up to 10 attempts at an area fraction from
// [area_min, area_max] and an aspect ratio drawn log-uniformly from [ratio_min, ratio_max] that fits,
// then the fallback: the largest center crop whose aspect ratio is clamped into the range.
CropBox random_resized_crop(Rng& rng, int width, int height, double area_min = 0.08, double area_max = 1.0,
                            double ratio_min = 3.0 / 4.0, double ratio_max = 4.0 / 3.0);

// Evaluation geometry, as torchvision's Resize(resize) + CenterCrop(crop): the short side becomes
// `resize` (the long side int(resize * long / short)), then a crop x crop square at the center.
struct EvalGeometry {
  int resized_w = 0, resized_h = 0;
  int crop_x = 0, crop_y = 0;
};
EvalGeometry eval_geometry(int width, int height, int resize, int crop);

// Brightness, contrast and saturation factors drawn from [1 - strength, 1 + strength], applied in a
// random order (as torchvision's ColorJitter), each result clamped to [0, 255].
struct ColorJitter {
  std::array<int, 3> order{0, 1, 2};      // 0 brightness, 1 contrast, 2 saturation
  std::array<float, 3> factor{1, 1, 1};   // indexed like order's values
};
ColorJitter draw_color_jitter(Rng& rng, float strength);
// rgb: (pixels, 3), in place.
void apply_color_jitter(float* rgb, int64_t pixels, const ColorJitter& jitter);

// AlexNet-style PCA lighting noise: alpha ~ N(0, std) per principal component of ImageNet's RGB
// covariance; returns the RGB offset eigvec * (alpha * eigval) to add to every pixel (0-255 units).
std::array<float, 3> draw_lighting(Rng& rng, float std);
inline constexpr std::array<float, 3> kImageNetEigval{55.46f, 4.794f, 1.148f};
inline constexpr std::array<std::array<float, 3>, 3> kImageNetEigvec{{{-0.5675f, 0.7192f, 0.4009f},
                                                                      {-0.5808f, -0.0045f, -0.8140f},
                                                                      {-0.5836f, -0.6948f, 0.4203f}}};

inline constexpr std::array<float, 3> kImageNetMean{123.68f, 116.779f, 103.939f};
inline constexpr std::array<float, 3> kImageNetStd{58.393f, 57.12f, 57.375f};

// float -> bfloat16 bits, round to nearest even (NaN stays NaN).
// Branch-free (a select, not a jump) so that loops over it vectorize.
inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (u >> 16) | 0x40u;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}
inline float bf16_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// out[y][x][c] = in[y][flip ? w-1-x : x][c] * scale[c] + bias[c], stored as float32 or bf16 bits.
// in: (h, w, channels) float or uint8; out: (h, w, channels).
void store_normalized(const float* in, int h, int w, int channels, bool flip, const float* scale, const float* bias,
                      bool bf16, void* out);
void store_normalized(const uint8_t* in, int h, int w, int channels, bool flip, const float* scale, const float* bias,
                      bool bf16, void* out);

// out = in mirrored left-right: out[i][y][x][c] = in[i][y][w-1-x][c] for n (h, w, channels) float images
// (evaluation's flip view, eval.flip). out must not overlap in.
void mirror_images(const float* in, int64_t n, int64_t h, int64_t w, int64_t channels, float* out);

}  // namespace convoy::datasets
