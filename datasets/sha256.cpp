#include "datasets/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/error.h"

namespace convoy::datasets {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  CONVOY_CHECK(ctx_ && EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) == 1, "OpenSSL cannot start a SHA-256 digest.");
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(const void* data, size_t bytes) {
  CONVOY_CHECK(EVP_DigestUpdate(ctx_, data, bytes) == 1, "OpenSSL's SHA-256 update failed.");
}

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CONVOY_CHECK(EVP_DigestFinal_ex(ctx_, digest, &len) == 1, "OpenSSL's SHA-256 could not finish.");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) out += hex[digest[i] >> 4], out += hex[digest[i] & 0xf];
  return out;
}

std::string sha256_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  CONVOY_CHECK(fd >= 0, "Cannot open " << path << " to compute its checksum: " << std::strerror(errno) << ".");
  Sha256 sha;
  std::vector<uint8_t> buf(1 << 20);
  while (true) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      CONVOY_FAIL("Cannot read " << path << " to compute its checksum: " << std::strerror(err) << ".");
    }
    if (n == 0) break;
    sha.update(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return sha.hex_digest();
}

}  // namespace convoy::datasets
