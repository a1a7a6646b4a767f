// index.json (the dataset's table of contents) on hostile bytes.
#include <filesystem>

#include "common/error.h"
#include "datasets/index.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    const std::string d = "/dev/shm/convoy-fuzz-index-" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    return d;
  }();
  const std::string path = convoy::fuzz::write_input(data, size, ".json");
  std::filesystem::rename(path, dir + "/index.json");
  try {
    const convoy::datasets::DatasetIndex index = convoy::datasets::read_index(dir);
    for (const auto& [name, split] : index.splits) (void)index.split(name, dir);
  } catch (const convoy::Error&) {
  }
  return 0;
}
