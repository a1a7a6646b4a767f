#include "datasets/jpeg.h"

#include <turbojpeg.h>

#include "common/error.h"

namespace convoy::datasets {

namespace {
// Largest image accepted (a guard against decompression bombs): 2^28 pixels, e.g. 16384 x 16384.
constexpr int64_t kMaxPixels = int64_t{1} << 28;
}  // namespace

bool JpegInfo::cmyk() const { return colorspace == TJCS_CMYK || colorspace == TJCS_YCCK; }
bool JpegInfo::gray() const { return colorspace == TJCS_GRAY; }

JpegDecoder::JpegDecoder() : handle_(tjInitDecompress()) {
  CONVOY_CHECK(handle_ != nullptr, "Cannot create a TurboJPEG decompressor: " << tjGetErrorStr2(nullptr) << ".");
}

JpegDecoder::~JpegDecoder() { tjDestroy(handle_); }

JpegInfo JpegDecoder::header(const uint8_t* data, size_t bytes) {
  JpegInfo info;
  CONVOY_CHECK(bytes > 0, "not a JPEG: the record is empty");
  if (tjDecompressHeader3(handle_, data, static_cast<unsigned long>(bytes), &info.width, &info.height,
                          &info.subsampling, &info.colorspace) != 0)
    CONVOY_FAIL("not a JPEG: " << tjGetErrorStr2(handle_));
  CONVOY_CHECK(info.width > 0 && info.height > 0 && int64_t{info.width} * info.height <= kMaxPixels,
               "the JPEG claims an invalid or too large size " << info.width << "x" << info.height);
  return info;
}

Scale JpegDecoder::choose_scale(int region_w, int region_h, int need_w, int need_h) {
  int count = 0;
  const tjscalingfactor* f = tjGetScalingFactors(&count);
  Scale best{1, 1};
  for (int i = 0; i < count; ++i) {
    const int num = f[i].num, denom = f[i].denom;
    if (num > denom) continue;  // only downscaling
    const bool covers = int64_t{region_w} * num >= int64_t{need_w} * denom &&
                        int64_t{region_h} * num >= int64_t{need_h} * denom;
    if (covers && int64_t{num} * best.denom < int64_t{best.num} * denom) best = {num, denom};
  }
  return best;
}

void JpegDecoder::decode_rgb(const uint8_t* data, size_t bytes, const JpegInfo& info, Scale scale,
                             std::vector<uint8_t>& rgb) {
  const int w = scale.apply(info.width), h = scale.apply(info.height);
  const size_t pixels = static_cast<size_t>(w) * static_cast<size_t>(h);
  rgb.resize(pixels * 3);
  if (!info.cmyk()) {
    if (tjDecompress2(handle_, data, static_cast<unsigned long>(bytes), rgb.data(), w, 0, h, TJPF_RGB, 0) != 0 &&
        tjGetErrorCode(handle_) == TJERR_FATAL)
      CONVOY_FAIL("corrupt JPEG data: " << tjGetErrorStr2(handle_));
    return;
  }
  // libjpeg cannot convert CMYK to RGB itself. Adobe (Photoshop) stores CMYK inverted, so the decoded
  // values are 255 - ink and RGB = (255 - C)(255 - K) / 255 = c k / 255 on the stored values.
  cmyk_.resize(pixels * 4);
  if (tjDecompress2(handle_, data, static_cast<unsigned long>(bytes), cmyk_.data(), w, 0, h, TJPF_CMYK, 0) != 0 &&
      tjGetErrorCode(handle_) == TJERR_FATAL)
    CONVOY_FAIL("corrupt JPEG data: " << tjGetErrorStr2(handle_));
  for (size_t i = 0; i < pixels; ++i) {
    const uint32_t k = cmyk_[4 * i + 3];
    for (int c = 0; c < 3; ++c) rgb[3 * i + c] = static_cast<uint8_t>((cmyk_[4 * i + c] * k + 127) / 255);
  }
}

std::string JpegDecoder::check(const uint8_t* data, size_t bytes) {
  if (bytes == 0) return "the file is empty";
  JpegInfo info;
  try {
    info = header(data, bytes);
  } catch (const Error& e) {
    return e.message();
  }
  const Scale s{1, 8};
  const int w = s.apply(info.width), h = s.apply(info.height);
  const int format = info.cmyk() ? TJPF_CMYK : info.gray() ? TJPF_GRAY : TJPF_RGB;
  std::vector<uint8_t> out(static_cast<size_t>(w) * static_cast<size_t>(h) * static_cast<size_t>(tjPixelSize[format]));
  if (tjDecompress2(handle_, data, static_cast<unsigned long>(bytes), out.data(), w, 0, h, format,
                    TJFLAG_STOPONWARNING) != 0)
    return std::string(tjGetErrorCode(handle_) == TJERR_WARNING ? "damaged JPEG data (libjpeg warning): "
                                                                : "corrupt JPEG data: ") +
           tjGetErrorStr2(handle_);
  return "";
}

}  // namespace convoy::datasets
