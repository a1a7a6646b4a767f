// A caching allocator over a raw allocator (cudaMalloc, cudaHostAlloc): freed blocks go back to a free
// list of their size class and are handed out again, so a steady training step makes no raw allocation
// or free (a CUDA malloc synchronises the device; a free too). Independent of CUDA, so its policy is
// tested on any machine.
//
// Reuse and streams: a block freed on the host may still be read by kernels already enqueued. convoy
// allocates at set-up and frees at tear-down; within a run, a freed block is only reused by a later
// allocation whose kernels are enqueued later on the same (compute) stream, which orders them. Memory
// used by other streams (the copy stream's batch buffers, the communication stream's wire buffers) is
// allocated at set-up and lives as long as the run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "ops/tensor.h"

namespace convoy::ops::cuda {

// Bytes a request of `bytes` occupies: a multiple of 512 B up to 1 MiB, of 2 MiB above (as PyTorch's
// CUDA caching allocator rounds), so that similar shapes share blocks and large blocks do not fragment.
size_t size_class(size_t bytes);

struct MemoryCounters {
  uint64_t raw_allocations = 0;  // calls of the raw allocator (cudaMalloc)
  uint64_t raw_frees = 0;        // calls of the raw free (cudaFree)
  uint64_t requests = 0;         // allocate() calls
  size_t in_use_bytes = 0;       // size classes handed out
  size_t cached_bytes = 0;       // size classes held in the free lists
  size_t peak_in_use_bytes = 0;
};

class CachingAllocator final : public Allocator {
 public:
  // raw_alloc returns null when the memory is exhausted (then the cache is released and it is tried
  // once more); what: "device memory of cuda:0", for messages.
  CachingAllocator(Device device, std::function<void*(size_t)> raw_alloc, std::function<void(void*)> raw_free,
                   std::string what);
  ~CachingAllocator() override;  // returns every cached block; blocks still in use are reported as leaked

  Device device() const override { return device_; }
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;

  // Returns every cached block to the raw allocator.
  void release_cached();
  MemoryCounters counters() const;

 private:
  Device device_;
  std::function<void*(size_t)> raw_alloc_;
  std::function<void(void*)> raw_free_;
  std::string what_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;            // size class -> cached block
  std::unordered_map<void*, size_t> in_use_;     // block -> size class
  MemoryCounters c_;
};

}  // namespace convoy::ops::cuda
