// SHA-256 (FIPS 180-4) for shard checksums in index.json; `sha256sum FILE` prints the same digest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace convoy::datasets {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t bytes);
  std::string hex_digest();  // finishes the hash; call once

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

// Hex SHA-256 of a whole file; throws convoy::Error naming the file if it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace convoy::datasets
