// JPEG decode with the training augmentation (RandomResizedCrop at a reduced DCT scale, resize, flip,
// colour jitter, lighting) and the evaluation transform, on hostile bytes. The first byte picks the
// transform and the random stream.
#include <vector>

#include "common/error.h"
#include "datasets/sample_decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace convoy::datasets;
  if (size < 1) return 0;
  static SampleDecoder* train = [] {
    AugmentOptions o;
    o.train = true, o.output_size = 48;
    o.mean = {124, 116, 104}, o.stddev = {58, 57, 57};
    return new SampleDecoder(o, Encoding::jpeg);
  }();
  static SampleDecoder* eval = [] {
    AugmentOptions o;
    o.train = false, o.output_size = 48, o.eval_resize = 56;
    o.mean = {124, 116, 104}, o.stddev = {58, 57, 57};
    return new SampleDecoder(o, Encoding::jpeg);
  }();
  SampleDecoder& d = data[0] & 1 ? *eval : *train;
  std::vector<float> out(static_cast<size_t>(d.out_elements()));
  Rng rng(data[0], Stream::sample, 0, 0);
  try {
    d.decode(data + 1, size - 1, rng, out.data());
  } catch (const convoy::Error&) {
  }
  return 0;
}
