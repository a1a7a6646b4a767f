#include "datasets/sample_decoder.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "common/error.h"
#include "datasets/transforms.h"

namespace convoy::datasets {
namespace {

// Bilinear (OpenCV's fixed-point SIMD path, ~7x faster than INTER_AREA at these sizes). It aliases
// when shrinking by much more than 2x, but the DCT-domain downscale (an antialiased reduction by n/8)
// has already done the large part, so what is left is a factor below 2 (usually below 1.3).
int interpolation(int /*from_w*/, int /*from_h*/, int /*to_w*/, int /*to_h*/) { return cv::INTER_LINEAR; }

}  // namespace

SampleDecoder::SampleDecoder(AugmentOptions options, Encoding encoding, int raw_height, int raw_width,
                             int raw_channels)
    : o_(std::move(options)), encoding_(encoding), raw_h_(raw_height), raw_w_(raw_width), raw_c_(raw_channels) {
  if (encoding_ == Encoding::jpeg) {
    out_h_ = out_w_ = o_.output_size;
    out_c_ = 3;
  } else {
    CONVOY_CHECK(o_.raw_resize >= 0 && o_.raw_resize <= 4096,
                 "The raw resize must be in [0, 4096] (0: keep the records' size), got " << o_.raw_resize << ".");
    out_h_ = o_.raw_resize ? o_.raw_resize : raw_h_;
    out_w_ = o_.raw_resize ? o_.raw_resize : raw_w_;
    out_c_ = raw_c_;
  }
  CONVOY_CHECK(out_h_ > 0 && out_w_ > 0 && out_c_ > 0, "The output image size must be positive.");
  CONVOY_CHECK(static_cast<int>(o_.mean.size()) == out_c_ && static_cast<int>(o_.stddev.size()) == out_c_,
               "Normalization needs " << out_c_ << " means and stds (one per channel), got " << o_.mean.size()
                                      << " and " << o_.stddev.size() << ".");
  for (int c = 0; c < out_c_; ++c) {
    CONVOY_CHECK(o_.stddev[static_cast<size_t>(c)] > 0, "Normalization std must be positive.");
    scale_.push_back(1.f / o_.stddev[static_cast<size_t>(c)]);
    bias_.push_back(-o_.mean[static_cast<size_t>(c)] / o_.stddev[static_cast<size_t>(c)]);
  }
}

void SampleDecoder::decode(const uint8_t* record, size_t bytes, Rng& rng, void* out) {
  if (encoding_ == Encoding::raw)
    decode_raw(record, bytes, rng, out);
  else if (o_.train)
    decode_jpeg_train(record, bytes, rng, out);
  else
    decode_jpeg_eval(record, bytes, out);
}

void SampleDecoder::decode_jpeg_train(const uint8_t* record, size_t bytes, Rng& rng, void* out) {
  const JpegInfo info = jpeg_.header(record, bytes);
  const CropBox crop = random_resized_crop(rng, info.width, info.height, o_.area_min, o_.area_max, o_.ratio_min,
                                           o_.ratio_max);
  const int S = o_.output_size;
  const Scale scale = o_.dct_scaling ? JpegDecoder::choose_scale(crop.w, crop.h, S, S) : Scale{};
  jpeg_.decode_rgb(record, bytes, info, scale, decoded_);
  const int sw = scale.apply(info.width), sh = scale.apply(info.height);

  // The crop in the scaled image's pixels.
  const double fx = static_cast<double>(sw) / info.width, fy = static_cast<double>(sh) / info.height;
  const int cw = std::clamp(static_cast<int>(std::lround(crop.w * fx)), 1, sw);
  const int ch = std::clamp(static_cast<int>(std::lround(crop.h * fy)), 1, sh);
  const int cx = std::clamp(static_cast<int>(std::lround(crop.x * fx)), 0, sw - cw);
  const int cy = std::clamp(static_cast<int>(std::lround(crop.y * fy)), 0, sh - ch);

  resized_.resize(static_cast<size_t>(S) * S * 3);
  const cv::Mat src(sh, sw, CV_8UC3, decoded_.data());
  cv::Mat dst(S, S, CV_8UC3, resized_.data());
  cv::resize(src(cv::Rect(cx, cy, cw, ch)), dst, cv::Size(S, S), 0, 0, interpolation(cw, ch, S, S));

  const bool flip = rng.uniform() < o_.flip_prob;
  const int64_t pixels = int64_t{S} * S;
  float bias[3];
  if (o_.jitter > 0 || o_.lighting_std > 0) {
    const ColorJitter jitter = draw_color_jitter(rng, o_.jitter);
    const std::array<float, 3> light = draw_lighting(rng, o_.lighting_std);
    work_.resize(static_cast<size_t>(pixels) * 3);
    for (int64_t i = 0; i < pixels * 3; ++i) work_[static_cast<size_t>(i)] = resized_[static_cast<size_t>(i)];
    if (o_.jitter > 0) apply_color_jitter(work_.data(), pixels, jitter);
    for (int c = 0; c < 3; ++c) bias[c] = bias_[static_cast<size_t>(c)] + light[static_cast<size_t>(c)] * scale_[static_cast<size_t>(c)];
    store_normalized(work_.data(), S, S, 3, flip, scale_.data(), bias, o_.bf16, out);
  } else {
    store_normalized(resized_.data(), S, S, 3, flip, scale_.data(), bias_.data(), o_.bf16, out);
  }
}

void SampleDecoder::decode_jpeg_eval(const uint8_t* record, size_t bytes, void* out) {
  const JpegInfo info = jpeg_.header(record, bytes);
  const int S = o_.output_size;
  const EvalGeometry g = eval_geometry(info.width, info.height, o_.eval_resize, S);
  const Scale scale = o_.dct_scaling ? JpegDecoder::choose_scale(info.width, info.height, g.resized_w, g.resized_h)
                                     : Scale{};
  jpeg_.decode_rgb(record, bytes, info, scale, decoded_);
  const int sw = scale.apply(info.width), sh = scale.apply(info.height);
  resized_.resize(static_cast<size_t>(g.resized_w) * g.resized_h * 3);
  const cv::Mat src(sh, sw, CV_8UC3, decoded_.data());
  cv::Mat dst(g.resized_h, g.resized_w, CV_8UC3, resized_.data());
  cv::resize(src, dst, cv::Size(g.resized_w, g.resized_h), 0, 0, interpolation(sw, sh, g.resized_w, g.resized_h));
  const uint8_t* corner = resized_.data() + (static_cast<int64_t>(g.crop_y) * g.resized_w + g.crop_x) * 3;
  // Row by row: the crop's rows are g.resized_w pixels apart in `resized_`.
  for (int y = 0; y < S; ++y)
    store_normalized(corner + static_cast<int64_t>(y) * g.resized_w * 3, 1, S, 3, false, scale_.data(), bias_.data(),
                     o_.bf16,
                     o_.bf16 ? static_cast<void*>(static_cast<uint16_t*>(out) + int64_t{y} * S * 3)
                             : static_cast<void*>(static_cast<float*>(out) + int64_t{y} * S * 3));
}

void SampleDecoder::decode_raw(const uint8_t* record, size_t bytes, Rng& rng, void* out) {
  CONVOY_CHECK(static_cast<int64_t>(bytes) == int64_t{raw_h_} * raw_w_ * raw_c_,
               "a raw record has " << bytes << " bytes, expected " << raw_h_ << "x" << raw_w_ << "x" << raw_c_);
  const int H = out_h_, W = out_w_, C = raw_c_;
  if (o_.raw_resize) {  // bilinear with half-pixel centres (OpenCV's INTER_LINEAR, PIL's bilinear upscaling)
    scaled_.resize(static_cast<size_t>(H) * W * C);
    const cv::Mat src(raw_h_, raw_w_, CV_8UC(C), const_cast<uint8_t*>(record));
    cv::Mat dst(H, W, CV_8UC(C), scaled_.data());
    cv::resize(src, dst, cv::Size(W, H), 0, 0, cv::INTER_LINEAR);
    record = scaled_.data();
  }
  if (!o_.train) {
    store_normalized(record, H, W, C, false, scale_.data(), bias_.data(), o_.bf16, out);
    return;
  }
  // Zero-pad by P on every side, crop H x W at a random offset in [0, 2P], flip.
  const int P = o_.raw_pad;
  const int dy = static_cast<int>(rng.between(0, 2 * P)) - P;
  const int dx = static_cast<int>(rng.between(0, 2 * P)) - P;
  const bool flip = rng.uniform() < o_.flip_prob;
  resized_.assign(static_cast<size_t>(H) * W * C, 0);
  for (int y = 0; y < H; ++y) {
    const int sy = y + dy;
    if (sy < 0 || sy >= H) continue;
    for (int x = 0; x < W; ++x) {
      const int sx = x + dx;
      if (sx < 0 || sx >= W) continue;
      std::copy_n(record + (int64_t{sy} * W + sx) * C, C, resized_.data() + (int64_t{y} * W + x) * C);
    }
  }
  store_normalized(resized_.data(), H, W, C, flip, scale_.data(), bias_.data(), o_.bf16, out);
}

}  // namespace convoy::datasets
