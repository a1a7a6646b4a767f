#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace convoy {

void set_up_logging(int rank, bool verbose) {
  spdlog::drop("convoy");
  auto logger = spdlog::stderr_color_mt("convoy");
  logger->set_pattern(rank >= 0 ? "[%H:%M:%S rank " + std::to_string(rank) + "] %^%l%$: %v" : "[%H:%M:%S] %^%l%$: %v");
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace convoy
