// The strict device's memory: one reserved range of address space that is inaccessible (PROT_NONE)
// except for the tensors a running kernel was handed, for the length of that call, so that a host read
// of device memory through .data() or any raw pointer faults at once (SIGSEGV) instead of working by
// accident as it would on the CPU backend. Opening only the call's tensors (not the whole range) keeps
// the cost of the page-table changes proportional to what the kernel touches anyway. Allocations are
// page-aligned blocks of the range (first fit; freed blocks coalesce and give their pages back).
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <vector>

#include "ops/tensor.h"

namespace convoy::ops::strict {

class StrictMemory final : public Allocator {
 public:
  // Reserves `reserve_bytes` of address space (nothing is committed until allocated).
  explicit StrictMemory(size_t reserve_bytes = size_t{64} << 30);
  ~StrictMemory() override;
  StrictMemory(const StrictMemory&) = delete;
  StrictMemory& operator=(const StrictMemory&) = delete;

  Device device() const override { return Device{DeviceKind::strict, 0}; }
  void* allocate(size_t bytes) override;  // zeroed, page-aligned
  void deallocate(void* p, size_t bytes) override;

  // A kernel call begins (calls nest) and ends; at the end of the outermost one everything exposed
  // during it is protected again.
  void enter();
  void leave();
  // Makes [p, p + bytes) accessible until the current call ends (p must be this device's memory).
  void expose(const void* p, size_t bytes);
  // Whether p points into this device's range.
  bool contains(const void* p) const;

 private:
  void protect(size_t begin, size_t end, bool accessible);

  char* base_ = nullptr;
  size_t reserved_ = 0;
  size_t high_ = 0;                  // bytes from base_ ever handed out
  std::map<size_t, size_t> free_;    // offset -> size, below high_
  std::map<size_t, size_t> used_;    // offset -> size
  std::vector<std::pair<size_t, size_t>> exposed_;  // page ranges opened in the current call
  int depth_ = 0;
  mutable std::mutex mu_;
};

}  // namespace convoy::ops::strict
