#include "ops/strict/strict_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace convoy::ops::strict {
namespace {
size_t page_size() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}
size_t round_up(size_t n) { return (n + page_size() - 1) / page_size() * page_size(); }
}  // namespace

StrictMemory::StrictMemory(size_t reserve_bytes) : reserved_(round_up(reserve_bytes)) {
  exposed_.reserve(256);
  void* p = mmap(nullptr, reserved_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  CONVOY_CHECK(p != MAP_FAILED, "the cpu-strict device cannot reserve " << (reserved_ >> 30)
                                                                          << " GiB of address space: "
                                                                          << std::strerror(errno));
  base_ = static_cast<char*>(p);
}

StrictMemory::~StrictMemory() { munmap(base_, reserved_); }

void StrictMemory::protect(size_t begin, size_t end, bool accessible) {
  if (end <= begin) return;
  const int rc = mprotect(base_ + begin, end - begin, accessible ? PROT_READ | PROT_WRITE : PROT_NONE);
  CONVOY_CHECK(rc == 0, "mprotect of the cpu-strict device's memory failed: " << std::strerror(errno));
}

void* StrictMemory::allocate(size_t bytes) {
  const size_t size = round_up(std::max<size_t>(bytes, 1));
  size_t offset = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.begin();
    while (it != free_.end() && it->second < size) ++it;
    if (it != free_.end()) {
      offset = it->first;
      const size_t rest = it->second - size;
      free_.erase(it);
      if (rest) free_[offset + size] = rest;
    } else {
      CONVOY_CHECK(high_ + size <= reserved_, "the cpu-strict device is out of memory: "
                                                  << (high_ >> 20) << " MB in use, " << (size >> 20)
                                                  << " MB more asked for (its range is " << (reserved_ >> 20)
                                                  << " MB)");
      offset = high_;
      high_ += size;
    }
    used_[offset] = size;
  }
  // Freed pages were given back with MADV_DONTNEED and new ones were never touched: both read as zeros.
  return base_ + offset;
}

void StrictMemory::deallocate(void* p, size_t) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  const size_t offset = static_cast<size_t>(static_cast<char*>(p) - base_);
  auto it = used_.find(offset);
  CONVOY_CHECK(it != used_.end(), "internal: freeing memory the cpu-strict device did not allocate");
  const size_t size = it->second;
  used_.erase(it);
  madvise(base_ + offset, size, MADV_DONTNEED);  // the pages go back to the system and read as zeros again
  auto [pos, inserted] = free_.emplace(offset, size);
  (void)inserted;
  auto next = std::next(pos);
  if (next != free_.end() && pos->first + pos->second == next->first) {
    pos->second += next->second;
    free_.erase(next);
  }
  if (pos != free_.begin()) {
    auto prev = std::prev(pos);
    if (prev->first + prev->second == pos->first) {
      prev->second += pos->second;
      free_.erase(pos);
    }
  }
}

void StrictMemory::enter() {
  std::lock_guard<std::mutex> lock(mu_);
  ++depth_;
}

void StrictMemory::leave() {
  std::lock_guard<std::mutex> lock(mu_);
  if (depth_ > 0 && --depth_ == 0) {
    for (const auto& [begin, end] : exposed_) protect(begin, end, false);
    exposed_.clear();
  }
}

void StrictMemory::expose(const void* p, size_t bytes) {
  if (!bytes) return;
  std::lock_guard<std::mutex> lock(mu_);
  CONVOY_CHECK(depth_ > 0, "internal: cpu-strict memory exposed outside a kernel call");
  CONVOY_CHECK(contains(p), "internal: a cpu-strict tensor does not point into the device's memory");
  const size_t begin = static_cast<size_t>(static_cast<const char*>(p) - base_) / page_size() * page_size();
  const size_t end = std::min(round_up(static_cast<size_t>(static_cast<const char*>(p) - base_) + bytes), high_);
  protect(begin, end, true);
  exposed_.emplace_back(begin, end);
}

bool StrictMemory::contains(const void* p) const {
  const char* c = static_cast<const char*>(p);
  return c >= base_ && c < base_ + reserved_;
}

}  // namespace convoy::ops::strict
