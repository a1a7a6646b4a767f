// Shared by the libFuzzer targets (fuzz/README.md): hostile bytes go into a file (the parsers read
// paths, as convoy does), and convoy::Error is the only acceptable way for a parser to refuse them. Any
// other exception escapes to libFuzzer and counts as a crash, as does any sanitizer report.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "common/error.h"

namespace convoy::fuzz {

// A file of the input's bytes in /dev/shm (tmpfs: no disk traffic), one per process.
inline std::string write_input(const uint8_t* data, size_t size, const char* suffix) {
  const std::string path = "/dev/shm/convoy-fuzz-" + std::to_string(::getpid()) + suffix;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return path;
}

// Counts the errors that are HDF5 crashes or endless loops contained in a child (datasets/h5.h
// contain()): not crashes of this process, but what the target found; printed when the fuzzer exits.
inline void note(const convoy::Error& e) {
  struct Counts {
    int64_t crashes = 0, hangs = 0;
    ~Counts() { std::fprintf(stderr, "contained HDF5 crashes: %lld, hangs: %lld\n", (long long)crashes, (long long)hangs); }
  };
  static Counts counts;
  if (e.message().find("HDF5 crashed reading it") != std::string::npos) ++counts.crashes;
  if (e.message().find("HDF5 did not finish reading it") != std::string::npos) ++counts.hangs;
}

}  // namespace convoy::fuzz
