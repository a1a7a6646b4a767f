// The experiment config (YAML into typed structs, every check of trainer/config.cpp) on hostile text.
#include <string>

#include "common/error.h"
#include "trainer/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    convoy::trainer::Config c = convoy::trainer::parse_config(text, "fuzz.yaml");
    (void)c.to_yaml();
    (void)c.hash();
  } catch (const convoy::Error&) {
  }
  return 0;
}
