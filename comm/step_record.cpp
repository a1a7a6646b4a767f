#include "comm/step_record.h"

#include "ops/math/elementwise.h"

namespace convoy::comm {

void StepRecord::begin(int64_t step) {
  std::lock_guard<std::mutex> lock(mu_);
  s_ = Summary{};
  s_.step = step;
}

void StepRecord::add(uint64_t fingerprint, const std::string& what, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.hash = math::mix64(s_.hash ^ fingerprint);
  if (static_cast<size_t>(s_.count) < kListed)
    s_.text += (s_.count ? ", '" : "'") + what + "' (" + std::to_string(bytes) + " B)";
  ++s_.count;
}

StepRecord::Summary StepRecord::summary() const {
  std::lock_guard<std::mutex> lock(mu_);
  Summary s = s_;
  const std::string head = std::to_string(s.count) + (s.count == 1 ? " collective" : " collectives");
  if (s.count == 0) {
    s.text = "no collectives";
  } else {
    s.text = head + ": " + s.text;
    if (static_cast<size_t>(s.count) > kListed) s.text += " and " + std::to_string(s.count - kListed) + " more";
  }
  return s;
}

}  // namespace convoy::comm
