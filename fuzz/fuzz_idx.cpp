// The IDX reader (MNIST-style images and labels, gzip-compressed or not) on hostile bytes.
#include "common/error.h"
#include "datasets/idx.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = convoy::fuzz::write_input(data, size, ".idx");
  try {
    const auto images = convoy::datasets::read_idx_images(path);
    if (images.pixels.size() != static_cast<size_t>(images.count * images.height * images.width * images.channels))
      __builtin_trap();  // the reader's own invariant
  } catch (const convoy::Error&) {
  }
  try {
    convoy::datasets::read_idx_labels(path);
  } catch (const convoy::Error&) {
  }
  return 0;
}
