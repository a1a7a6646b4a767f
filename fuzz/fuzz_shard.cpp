// The shard reader on a hostile HDF5 file: opening (every check of docs/shard-format.md) and reading and
// verifying every record, as the Loader does.
#include <vector>

#include "common/error.h"
#include "datasets/shard_reader.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = convoy::fuzz::write_input(data, size, ".h5");
  try {
    convoy::datasets::ShardReader r(path);
    std::vector<uint8_t> record;
    for (int64_t i = 0; i < r.size() && i < 64; ++i) {
      record.resize(static_cast<size_t>(r.record_bytes(i)));
      if (!r.read_checked(i, record.data())) (void)r.mismatch(i, record.data());
    }
  } catch (const convoy::Error& e) {
    convoy::fuzz::note(e);
  }
  return 0;
}
