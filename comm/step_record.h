// The record of one training step's data-plane collectives: a running hash of (fingerprint) in issue
// order, their count, and a short description. The data-plane communicator adds every collective it
// issues; the per-step vote compares hash and count across ranks, and a mismatch or a stall reports the
// descriptions, so that an error names what every rank issued in that step. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

namespace convoy::comm {

class StepRecord {
 public:
  struct Summary {
    int64_t step = -1;
    uint64_t hash = 0;
    int64_t count = 0;
    std::string text;  // "2 collectives: 'all-reduce of gradient bucket 0' (4000 B), ..."
  };

  // A new step: the record starts empty.
  void begin(int64_t step);
  void add(uint64_t fingerprint, const std::string& what, size_t bytes);
  Summary summary() const;

 private:
  static constexpr size_t kListed = 12;  // descriptions kept per step; the rest are counted
  mutable std::mutex mu_;
  Summary s_;
};

}  // namespace convoy::comm
