// JPEG decoding with libjpeg-turbo's TurboJPEG API. One JpegDecoder per thread (a TurboJPEG handle is
// not thread-safe). DCT-domain downscaling (n/8) makes decoding much cheaper when the crop that the
// augmentation needs is larger than the output anyway.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace convoy::datasets {

struct JpegInfo {
  int width = 0, height = 0;
  int subsampling = 0;  // TJSAMP_*
  int colorspace = 0;   // TJCS_*
  bool cmyk() const;
  bool gray() const;
};

// A TurboJPEG scaling factor num / denom.
struct Scale {
  int num = 1, denom = 1;
  int apply(int dim) const { return (dim * num + denom - 1) / denom; }  // TJSCALED
};

class JpegDecoder {
 public:
  JpegDecoder();
  ~JpegDecoder();
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  // Reads the header; throws convoy::Error ("not a JPEG: ...") if it cannot.
  JpegInfo header(const uint8_t* data, size_t bytes);

  // The smallest DCT scaling factor <= 1 such that a region of region_w x region_h source pixels is
  // still at least need_w x need_h pixels after scaling (so the resize that follows only shrinks).
  static Scale choose_scale(int region_w, int region_h, int need_w, int need_h);

  // Decodes at `scale` into `rgb` as interleaved RGB rows of scale.apply(width) pixels. Grayscale and
  // CMYK/YCCK JPEGs come out as RGB (CMYK as Adobe writes it, inverted, like PIL reads it).
  // Corrupt data that libjpeg can still decode (a warning) is accepted; a fatal error throws.
  void decode_rgb(const uint8_t* data, size_t bytes, const JpegInfo& info, Scale scale, std::vector<uint8_t>& rgb);

  // The converter's and inspect's check: "" if the bytes are a JPEG that decodes without any error or
  // warning (truncated files warn), otherwise the reason. Decodes at 1/8 scale: every bit of the
  // entropy-coded data is still read, only the inverse DCT is cheaper.
  std::string check(const uint8_t* data, size_t bytes);

 private:
  void* handle_;
  std::vector<uint8_t> cmyk_;
};

}  // namespace convoy::datasets
