#include "ops/cuda/caching_allocator.h"

#include <cstdio>

#include "common/error.h"

namespace convoy::ops::cuda {

size_t size_class(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{2} << 20, kSmallLimit = size_t{1} << 20;
  if (bytes == 0) bytes = 1;
  if (bytes <= kSmallLimit) return (bytes + kSmall - 1) / kSmall * kSmall;
  return (bytes + kLarge - 1) / kLarge * kLarge;
}

CachingAllocator::CachingAllocator(Device device, std::function<void*(size_t)> raw_alloc,
                                   std::function<void(void*)> raw_free, std::string what)
    : device_(device), raw_alloc_(std::move(raw_alloc)), raw_free_(std::move(raw_free)), what_(std::move(what)) {}

CachingAllocator::~CachingAllocator() {
  release_cached();
  if (!in_use_.empty())  // a destructor must not throw: say it, the process is ending its use of the device
    std::fprintf(stderr, "convoy: warning: %zu blocks (%zu bytes) of %s were still in use at shutdown\n",
                 in_use_.size(), c_.in_use_bytes, what_.c_str());
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t cls = size_class(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  ++c_.requests;
  void* p = nullptr;
  auto it = free_.find(cls);
  if (it != free_.end()) {
    p = it->second;
    free_.erase(it);
    c_.cached_bytes -= cls;
  } else {
    p = raw_alloc_(cls);
    if (!p && !free_.empty()) {  // exhausted: give the cache back and try once more
      for (auto& [size, block] : free_) raw_free_(block), ++c_.raw_frees;
      free_.clear();
      c_.cached_bytes = 0;
      p = raw_alloc_(cls);
    }
    CONVOY_CHECK(p, "out of " << what_ << ": " << bytes << " bytes requested with " << c_.in_use_bytes
                              << " bytes in use (peak " << c_.peak_in_use_bytes
                              << "); use a smaller batch or model");
    ++c_.raw_allocations;
  }
  in_use_.emplace(p, cls);
  c_.in_use_bytes += cls;
  if (c_.in_use_bytes > c_.peak_in_use_bytes) c_.peak_in_use_bytes = c_.in_use_bytes;
  return p;
}

void CachingAllocator::deallocate(void* p, size_t bytes) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = in_use_.find(p);
  CONVOY_CHECK(it != in_use_.end(), "internal: " << bytes << "-byte block " << p << " freed to " << what_
                                                 << " was not allocated there (or was freed twice)");
  const size_t cls = it->second;
  in_use_.erase(it);
  c_.in_use_bytes -= cls;
  free_.emplace(cls, p);
  c_.cached_bytes += cls;
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [size, block] : free_) raw_free_(block), ++c_.raw_frees;
  free_.clear();
  c_.cached_bytes = 0;
}

MemoryCounters CachingAllocator::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return c_;
}

}  // namespace convoy::ops::cuda
