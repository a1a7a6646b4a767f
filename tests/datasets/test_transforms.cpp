// Augmentation properties: crop bounds over many draws, flip, colour and lighting, DCT scale choice,
// colour spaces, and the evaluation transform against an independently computed reference.
#include <gtest/gtest.h>
#include <turbojpeg.h>

#include <cmath>
#include <set>
#include <opencv2/imgproc.hpp>

#include "common/error.h"
#include "datasets/jpeg.h"
#include "datasets/sample_decoder.h"
#include "datasets/transforms.h"
#include "test_util.h"

namespace convoy::datasets {
namespace {

TEST(RandomResizedCrop, AreaAndAspectWithinBoundsOverManyDraws) {
  for (auto [w, h] : {std::pair{500, 375}, std::pair{375, 500}, std::pair{224, 224}, std::pair{1024, 300}}) {
    double log_aspect_sum = 0, area_sum = 0;
    int n = 0, wide = 0, tall = 0;
    for (uint64_t i = 0; i < 20000; ++i) {
      Rng rng(7, Stream::sample, 0, i);
      const CropBox c = random_resized_crop(rng, w, h);
      ASSERT_TRUE(c.x >= 0 && c.y >= 0 && c.w > 0 && c.h > 0 && c.x + c.w <= w && c.y + c.h <= h)
          << c.x << "," << c.y << " " << c.w << "x" << c.h;
      const double area = static_cast<double>(c.w) * c.h / (static_cast<double>(w) * h);
      const double aspect = static_cast<double>(c.w) / c.h;
      // Rounding w and h to whole pixels moves the area and aspect a little: allow one pixel each way.
      const double slack_aspect = 1.0 / c.h + 1.0 / c.w;
      ASSERT_GE(aspect, 3.0 / 4.0 - slack_aspect - 1e-9) << c.w << "x" << c.h;
      ASSERT_LE(aspect, 4.0 / 3.0 + slack_aspect + 1e-9) << c.w << "x" << c.h;
      ASSERT_GE(area, 0.08 - (c.w + c.h + 1.0) / (static_cast<double>(w) * h)) << c.w << "x" << c.h;
      ASSERT_LE(area, 1.0);
      log_aspect_sum += std::log(aspect);
      area_sum += area;
      wide += aspect > 1.05;
      tall += aspect < 0.95;
      ++n;
    }
    // Both orientations are common everywhere. On a square image the draws are symmetric, so the
    // log-aspect averages 0; a draw (area a, aspect r) fits iff a <= m = min(r, 1/r), and redrawing
    // until one fits gives E[a] = E_u[(m^2 - 0.08^2) / 2] / E_u[m - 0.08] with u = |log r| uniform on
    // [0, L], L = log(4/3), m = exp(-u): (1 - e^{-2L}) / 2L and (1 - e^{-L}) / L are the two means.
    EXPECT_GT(wide, n / 5) << w << "x" << h;
    EXPECT_GT(tall, n / 5) << w << "x" << h;
    if (w == h) {
      const double L = std::log(4.0 / 3.0);
      const double m2 = (1 - std::exp(-2 * L)) / (2 * L), m1 = (1 - std::exp(-L)) / L;
      EXPECT_NEAR(log_aspect_sum / n, 0.0, 0.01);
      EXPECT_NEAR(area_sum / n, (m2 - 0.0064) / 2 / (m1 - 0.08), 0.01);
    }
  }
}

TEST(RandomResizedCrop, FallbackIsTheCenteredClampedCrop) {
  // A 1000 x 10 strip: no crop with aspect <= 4/3 and area >= 8 % fits; torchvision then takes the
  // center crop of aspect 4/3 and full height.
  Rng rng(1, Stream::sample, 0, 0);
  const CropBox c = random_resized_crop(rng, 1000, 10);
  EXPECT_EQ(c.h, 10);
  EXPECT_EQ(c.w, 13);
  EXPECT_EQ(c.x, (1000 - 13) / 2);
  EXPECT_EQ(c.y, 0);
}

TEST(EvalGeometry, MatchesTorchvisionResizeAndCenterCrop) {
  // 500 x 375: short side 375 -> 256, long int(256 * 500 / 375) = 341; crop offsets round half to even.
  EvalGeometry g = eval_geometry(500, 375, 256, 224);
  EXPECT_EQ(g.resized_w, 341);
  EXPECT_EQ(g.resized_h, 256);
  EXPECT_EQ(g.crop_x, 58);  // round(58.5) = 58
  EXPECT_EQ(g.crop_y, 16);
  g = eval_geometry(280, 360, 256, 224);
  EXPECT_EQ(g.resized_w, 256);
  EXPECT_EQ(g.resized_h, 329);
  EXPECT_EQ(g.crop_y, 52);  // round(52.5) = 52
}

TEST(JpegDecoder, ChoosesTheSmallestScaleThatStillCoversTheOutput) {
  EXPECT_EQ(JpegDecoder::choose_scale(500, 375, 224, 224).num * 8 / JpegDecoder::choose_scale(500, 375, 224, 224).denom, 5);
  const Scale s = JpegDecoder::choose_scale(2000, 1800, 224, 224);
  EXPECT_EQ(s.num * 8, s.denom * 1);  // 1/8: 225 x 250 still covers 224
  EXPECT_EQ(JpegDecoder::choose_scale(100, 100, 224, 224).num, JpegDecoder::choose_scale(100, 100, 224, 224).denom);
  for (uint64_t i = 0; i < 2000; ++i) {
    Rng rng(3, Stream::sample, 0, i);
    const CropBox c = random_resized_crop(rng, 1600, 1200);
    const Scale f = JpegDecoder::choose_scale(c.w, c.h, 224, 224);
    ASSERT_GE(int64_t{c.w} * f.num, int64_t{224} * f.denom);
    ASSERT_GE(int64_t{c.h} * f.num, int64_t{224} * f.denom);
  }
}

TEST(JpegDecoder, GrayAndCmykComeOutAsRgb) {
  const int w = 48, h = 40;
  const auto rgb = testing::make_rgb(w, h, 5);
  JpegDecoder dec;
  std::vector<uint8_t> out;
  const auto gray = testing::make_jpeg(w, h, 5, testing::JpegKind::gray);
  JpegInfo info = dec.header(gray.data(), gray.size());
  EXPECT_TRUE(info.gray());
  dec.decode_rgb(gray.data(), gray.size(), info, {}, out);
  ASSERT_EQ(out.size(), static_cast<size_t>(w * h * 3));
  for (size_t p = 0; p < out.size(); p += 3) ASSERT_TRUE(out[p] == out[p + 1] && out[p] == out[p + 2]);

  // The CMYK file stores (R, G, B, 255) inverted-Adobe style, so it must decode about as close to the
  // original RGB as the same image saved as a plain RGB JPEG does (an inverted or channel-swapped
  // conversion would be off by ~100 levels).
  auto mean_error = [&](const std::vector<uint8_t>& jpeg, bool cmyk) {
    const JpegInfo i = dec.header(jpeg.data(), jpeg.size());
    EXPECT_EQ(i.cmyk(), cmyk);
    dec.decode_rgb(jpeg.data(), jpeg.size(), i, {}, out);
    double err = 0;
    for (size_t k = 0; k < out.size(); ++k) err += std::abs(int{out[k]} - int{rgb[k]});
    return err / static_cast<double>(out.size());
  };
  const auto cmyk = testing::make_jpeg(w, h, 5, testing::JpegKind::cmyk);
  const double baseline = mean_error(testing::make_jpeg(w, h, 5, testing::JpegKind::rgb444), false);
  EXPECT_LT(mean_error(cmyk, true), baseline + 1.0) << "RGB JPEG error " << baseline;

  EXPECT_NE(dec.check(cmyk.data(), cmyk.size() / 2), "");
  EXPECT_EQ(dec.check(cmyk.data(), cmyk.size()), "");
  EXPECT_THROW(dec.header(rgb.data(), rgb.size()), Error);
}

AugmentOptions eval_options(int size, int resize) {
  AugmentOptions o;
  o.train = false;
  o.output_size = size;
  o.eval_resize = resize;
  o.mean.assign(kImageNetMean.begin(), kImageNetMean.end());
  o.stddev.assign(kImageNetStd.begin(), kImageNetStd.end());
  return o;
}

// The reference: TurboJPEG full-size decode, cv::resize of the whole image to short side `resize`
// (long side truncated, as torchvision), a plain center crop and per-pixel normalization, written out
// directly rather than through the library's geometry and store helpers.
std::vector<float> eval_reference(const std::vector<uint8_t>& jpeg, int size, int resize,
                                  int interpolation = cv::INTER_LINEAR) {
  tjhandle t = tjInitDecompress();
  int w = 0, h = 0, ss = 0, cs = 0;
  tjDecompressHeader3(t, jpeg.data(), jpeg.size(), &w, &h, &ss, &cs);
  cv::Mat full(h, w, CV_8UC3);
  tjDecompress2(t, jpeg.data(), jpeg.size(), full.data, w, 0, h, TJPF_RGB, 0);
  tjDestroy(t);
  const int rw = w <= h ? resize : resize * w / h, rh = w <= h ? resize * h / w : resize;
  cv::Mat resized;
  cv::resize(full, resized, cv::Size(rw, rh), 0, 0, interpolation);
  const int top = static_cast<int>(std::nearbyint((rh - size) / 2.0)), left = static_cast<int>(std::nearbyint((rw - size) / 2.0));
  std::vector<float> out;
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x)
      for (int c = 0; c < 3; ++c)
        out.push_back((resized.at<cv::Vec3b>(top + y, left + x)[c] - kImageNetMean[static_cast<size_t>(c)]) /
                      kImageNetStd[static_cast<size_t>(c)]);
  return out;
}

TEST(EvalTransform, EqualsAnIndependentReference) {
  // 280 x 360: no DCT scale below 1 still covers the 256 x 329 resize, so decoding is full size and the
  // library must agree with the reference to float rounding (1e-4 in normalized units, ~0.006 levels).
  const auto jpeg = testing::make_jpeg(280, 360, 11);
  SampleDecoder dec(eval_options(224, 256), Encoding::jpeg);
  std::vector<float> out(static_cast<size_t>(dec.out_elements()));
  Rng rng(0, Stream::sample, 0, 0);
  dec.decode(jpeg.data(), jpeg.size(), rng, out.data());
  const auto ref = eval_reference(jpeg, 224, 256);
  ASSERT_EQ(out.size(), ref.size());
  float worst = 0;
  for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::abs(out[i] - ref[i]));
  EXPECT_LT(worst, 1e-4f);
}

TEST(EvalTransform, DctScalingStaysCloseToFullDecode) {
  // 1024 x 768 decodes at 3/8 (384 x 288) before the bilinear resize to 341 x 256. Compared with an
  // ideal reference (full decode, area averaging straight to 341 x 256), the DCT-domain downscale is a
  // slightly different low-pass filter: allow a small mean difference (under 1 level of 255; measured
  // 0.48) and bounded local differences at the test image's hard disc edges (under 25 levels; measured 14).
  const auto jpeg = testing::make_jpeg(1024, 768, 12);
  SampleDecoder dec(eval_options(224, 256), Encoding::jpeg);
  std::vector<float> out(static_cast<size_t>(dec.out_elements()));
  Rng rng(0, Stream::sample, 0, 0);
  dec.decode(jpeg.data(), jpeg.size(), rng, out.data());
  const auto ref = eval_reference(jpeg, 224, 256, cv::INTER_AREA);
  double sum = 0, worst = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const double d = std::abs(out[i] - ref[i]) * kImageNetStd[i % 3];
    sum += d;
    worst = std::max(worst, d);
  }
  EXPECT_LT(sum / static_cast<double>(out.size()), 1.0);
  EXPECT_LT(worst, 25.0);
  std::printf("DCT-scaled eval vs full decode + area resize: mean |diff| %.3f, max %.1f (0-255 levels)\n",
              sum / static_cast<double>(out.size()), worst);
}

TEST(TrainTransform, FlipMirrorsTheImage) {
  // A square image with the crop forced to the whole image (area 1, aspect 1) at its own size: the
  // resize is a copy, so flip on and off must be exact mirrors of each other.
  const auto jpeg = testing::make_jpeg(64, 64, 3);
  AugmentOptions o = eval_options(64, 64);
  o.train = true;
  o.area_min = o.area_max = 1.0;
  o.ratio_min = o.ratio_max = 1.0;
  o.jitter = 0;
  o.lighting_std = 0;
  o.flip_prob = 1.0;
  SampleDecoder flipped(o, Encoding::jpeg);
  o.flip_prob = 0.0;
  SampleDecoder plain(o, Encoding::jpeg);
  std::vector<float> a(64 * 64 * 3), b(64 * 64 * 3);
  Rng r1(0, Stream::sample, 0, 0), r2(0, Stream::sample, 0, 0);
  flipped.decode(jpeg.data(), jpeg.size(), r1, a.data());
  plain.decode(jpeg.data(), jpeg.size(), r2, b.data());
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x)
      for (int c = 0; c < 3; ++c)
        ASSERT_EQ(a[static_cast<size_t>((y * 64 + x) * 3 + c)], b[static_cast<size_t>((y * 64 + 63 - x) * 3 + c)]);
  EXPECT_NE(a, b);
}

TEST(TrainTransform, FlipHappensHalfTheTimeAndSamplesAreDeterministic) {
  // raw 6 x 5, no padding: output is the input or its mirror.
  AugmentOptions o;
  o.raw_pad = 0;
  o.mean = {0};
  o.stddev = {1};
  SampleDecoder dec(o, Encoding::raw, 6, 5, 1);
  std::vector<uint8_t> px(30);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i);
  int flips = 0;
  std::vector<float> out(30), again(30);
  for (uint64_t i = 0; i < 2000; ++i) {
    Rng rng(5, Stream::sample, 1, i), rng2(5, Stream::sample, 1, i);
    dec.decode(px.data(), px.size(), rng, out.data());
    dec.decode(px.data(), px.size(), rng2, again.data());
    ASSERT_EQ(out, again);
    flips += out[0] == 4.f;
    ASSERT_TRUE(out[0] == 4.f || out[0] == 0.f);
  }
  EXPECT_NEAR(flips, 1000, 120);
}

// data.resize_raw: bilinear with half-pixel centres, as d2l's Resize (PIL) upscales. A 1 x 2 row [0, 200]
// to 1 x 4 samples at x = -0.25, 0.25, 0.75, 1.25 (clamped): 0, 50, 150, 200; rows repeat likewise.
TEST(EvalTransform, RawResizeIsBilinearWithHalfPixelCentres) {
  AugmentOptions o;
  o.train = false;
  o.raw_resize = 4;
  o.mean = {0};
  o.stddev = {1};
  SampleDecoder dec(o, Encoding::raw, 1, 2, 1);
  EXPECT_EQ(dec.out_height(), 4);
  EXPECT_EQ(dec.out_width(), 4);
  const std::vector<uint8_t> px{0, 200};
  std::vector<float> out(16);
  Rng rng(1, Stream::sample, 0, 0);
  dec.decode(px.data(), px.size(), rng, out.data());
  for (int y = 0; y < 4; ++y)
    EXPECT_EQ(std::vector<float>(out.begin() + 4 * y, out.begin() + 4 * y + 4), (std::vector<float>{0, 50, 150, 200}))
        << "row " << y;
  // Training augments the resized image: its size, not the record's.
  o.train = true;
  o.raw_pad = 1;
  SampleDecoder train(o, Encoding::raw, 1, 2, 1);
  EXPECT_EQ(train.out_elements(), 16);
  train.decode(px.data(), px.size(), rng, out.data());
}

TEST(TrainTransform, RawPadAndCropShiftsByAtMostThePadding) {
  AugmentOptions o;
  o.raw_pad = 2;
  o.flip_prob = 0;
  o.mean = {0};
  o.stddev = {1};
  SampleDecoder dec(o, Encoding::raw, 8, 8, 1);
  std::vector<uint8_t> px(64);
  for (int i = 0; i < 64; ++i) px[static_cast<size_t>(i)] = static_cast<uint8_t>(i + 1);  // no zeros
  std::set<std::pair<int, int>> shifts;
  std::vector<float> out(64);
  for (uint64_t i = 0; i < 500; ++i) {
    Rng rng(1, Stream::sample, 0, i);
    dec.decode(px.data(), px.size(), rng, out.data());
    // Find the shift from the position of the center pixel's value.
    const float center = px[4 * 8 + 4];
    int found = 0;
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x)
        if (out[static_cast<size_t>(y * 8 + x)] == center) shifts.insert({y - 4, x - 4}), ++found;
    ASSERT_EQ(found, 1);
  }
  EXPECT_EQ(shifts.size(), 25u);  // every shift in [-2, 2]^2
  for (auto [dy, dx] : shifts) EXPECT_TRUE(std::abs(dy) <= 2 && std::abs(dx) <= 2);
}

TEST(ColorJitter, EachOperation) {
  std::vector<float> px = {10, 20, 30, 200, 100, 50};
  // One operation at a time: the other two at factor 1 are the identity.
  auto run = [&](int op, float f) {
    ColorJitter j;
    j.factor[static_cast<size_t>(op)] = f;
    std::vector<float> v = px;
    apply_color_jitter(v.data(), 2, j);
    return v;
  };
  EXPECT_EQ(run(0, 1.f), px);
  EXPECT_EQ(run(0, 0.5f), (std::vector<float>{5, 10, 15, 100, 50, 25}));
  const auto gray = run(2, 0.f);  // saturation 0: every pixel its own gray level
  EXPECT_NEAR(gray[0], 0.299f * 10 + 0.587f * 20 + 0.114f * 30, 1e-3);
  EXPECT_FLOAT_EQ(gray[0], gray[2]);
  const auto flat = run(1, 0.f);  // contrast 0: everything the mean gray level
  EXPECT_NEAR(flat[0], flat[5], 1e-3);
  const auto bright = run(0, 1.4f);
  EXPECT_EQ(bright[3], 255.f);  // clamped
  // Factors are drawn from [0.6, 1.4] and all three orders appear.
  std::set<std::array<int, 3>> orders;
  for (uint64_t i = 0; i < 500; ++i) {
    Rng rng(2, Stream::sample, 0, i);
    const ColorJitter j = draw_color_jitter(rng, 0.4f);
    for (float f : j.factor) ASSERT_TRUE(f >= 0.6f && f <= 1.4f);
    orders.insert(j.order);
  }
  EXPECT_EQ(orders.size(), 6u);
}

TEST(Lighting, OffsetsHaveTheImageNetPcaCovariance) {
  // offset = V diag(eigval) alpha, alpha ~ N(0, 0.1^2 I): Var(offset_c) = 0.01 sum_k (V_ck eigval_k)^2.
  const int n = 20000;
  double sum[3] = {0, 0, 0}, sq[3] = {0, 0, 0};
  for (uint64_t i = 0; i < n; ++i) {
    Rng rng(4, Stream::sample, 0, i);
    const auto off = draw_lighting(rng, 0.1f);
    for (int c = 0; c < 3; ++c) sum[c] += off[static_cast<size_t>(c)], sq[c] += off[static_cast<size_t>(c)] * off[static_cast<size_t>(c)];
  }
  for (size_t c = 0; c < 3; ++c) {
    double var = 0;
    for (size_t k = 0; k < 3; ++k) var += 0.01 * std::pow(kImageNetEigvec[c][k] * kImageNetEigval[k], 2);
    const double mean = sum[c] / n;
    EXPECT_NEAR(mean, 0.0, 5 * std::sqrt(var / n));
    EXPECT_NEAR(sq[c] / n - mean * mean, var, 0.05 * var) << "channel " << c;
  }
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(bf16_to_float(float_to_bf16(3.140625f)), 3.140625f);  // exactly representable
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(float_to_bf16(1.0f + 1.0f / 256), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.0f + 3.0f / 256), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
}

}  // namespace
}  // namespace convoy::datasets
