// `convoy bench peak` and the peak that `convoy bench train --profile` compares its layers with.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "ops/cpu/peak.h"

namespace convoy::trainer {

// The measurement as lines of text under `indent`, and as JSON.
void print_peak(const ops::cpu::MachinePeak& p, const char* indent);
nlohmann::json peak_json(const ops::cpu::MachinePeak& p);

}  // namespace convoy::trainer
