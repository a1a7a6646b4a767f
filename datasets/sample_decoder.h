// Turns one record into one normalized output image: the per-sample work of the Loader's threads.
//   jpeg, training:   RandomResizedCrop (decoded at the smallest DCT scale that still covers the output),
//                     resize (OpenCV), horizontal flip, colour jitter, PCA lighting, normalize.
//   jpeg, evaluation: resize the short side to eval_resize, center-crop output_size, normalize.
//   raw, training:    [bilinear resize to raw_resize], zero-pad by raw_pad, random crop back to the size,
//                     horizontal flip, normalize.
//   raw, evaluation:  [bilinear resize to raw_resize], normalize.
// Random choices come from the Rng passed in, which the Loader derives from (seed, epoch, record), so the
// result does not depend on which thread decodes the sample. One SampleDecoder per thread.
#pragma once

#include <cstdint>
#include <vector>

#include "datasets/jpeg.h"
#include "datasets/rng.h"
#include "datasets/shard_format.h"

namespace convoy::datasets {

struct AugmentOptions {
  bool train = true;
  int output_size = 224;  // jpeg: output height = width
  int eval_resize = 256;  // jpeg evaluation: short side before the center crop
  double area_min = 0.08, area_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  double flip_prob = 0.5;
  float jitter = 0.4f;        // brightness/contrast/saturation factors from [1 - jitter, 1 + jitter]; 0 = off
  float lighting_std = 0.1f;  // 0 = off
  int raw_pad = 4;            // raw training: zero padding before the random crop
  int raw_resize = 0;         // raw: resize to raw_resize x raw_resize (bilinear) first; 0 = keep the size
  std::vector<float> mean, stddev;  // per output channel, 0-255 units
  bool bf16 = false;
  bool dct_scaling = true;  // decode at a reduced DCT scale where the crop allows
};

class SampleDecoder {
 public:
  // raw_* describe raw records (ignored for jpeg).
  SampleDecoder(AugmentOptions options, Encoding encoding, int raw_height = 0, int raw_width = 0, int raw_channels = 0);

  int out_height() const { return out_h_; }
  int out_width() const { return out_w_; }
  int out_channels() const { return out_c_; }
  int64_t out_elements() const { return int64_t{out_h_} * out_w_ * out_c_; }

  // Decodes `record` into `out` ((out_height, out_width, out_channels), float32 or bf16 bits).
  // Throws convoy::Error on undecodable data (the caller adds which record it was).
  void decode(const uint8_t* record, size_t bytes, Rng& rng, void* out);

 private:
  void decode_jpeg_train(const uint8_t* record, size_t bytes, Rng& rng, void* out);
  void decode_jpeg_eval(const uint8_t* record, size_t bytes, void* out);
  void decode_raw(const uint8_t* record, size_t bytes, Rng& rng, void* out);

  AugmentOptions o_;
  Encoding encoding_;
  int raw_h_, raw_w_, raw_c_;
  int out_h_, out_w_, out_c_;
  std::vector<float> scale_, bias_;  // 1 / std and -mean / std per channel
  JpegDecoder jpeg_;
  std::vector<uint8_t> decoded_, resized_, scaled_;
  std::vector<float> work_;
};

}  // namespace convoy::datasets
