// Checkpoints on a hostile HDF5 file: verification (format, every dataset read and hashed) and loading
// into LeNet-5 by name and shape, as --resume and model.init_from do.
#include "common/error.h"
#include "fuzz/fuzz_util.h"
#include "ops/backend.h"
#include "ops/models/zoo.h"
#include "trainer/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto backend = convoy::ops::make_cpu_backend(1);
  static auto graph = [] {
    auto g = convoy::ops::make_model("lenet5");
    g->setup(backend.get(), convoy::ops::Shape{1, 28, 28, 1});
    return g;
  }();
  const std::string path = convoy::fuzz::write_input(data, size, ".ckpt.h5");
  try {
    convoy::trainer::verify_checkpoint(path);
  } catch (const convoy::Error& e) {
    convoy::fuzz::note(e);
  }
  try {
    convoy::trainer::load_weights(path, *graph);
  } catch (const convoy::Error& e) {
    convoy::fuzz::note(e);
  }
  return 0;
}
