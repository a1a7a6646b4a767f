// Logging goes through spdlog; set_up_logging() gives every line the rank, so interleaved output from
// several ranks stays readable.
#pragma once

#include <spdlog/spdlog.h>

namespace convoy {

void set_up_logging(int rank, bool verbose);

}  // namespace convoy
