// SHA-256 for shard and checkpoint digests, computed by OpenSSL's libcrypto (EVP); `sha256sum FILE`
// prints the same digest as sha256_file().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace convoy::datasets {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t bytes);
  std::string hex_digest();  // finishes the hash; call once

 private:
  ::evp_md_ctx_st* ctx_;
};

// Hex SHA-256 of a whole file; throws convoy::Error naming the file if it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace convoy::datasets
