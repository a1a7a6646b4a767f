#include "common/stop.h"

#include <atomic>
#include <csignal>
#include <ctime>

#include "common/timer.h"

namespace convoy {
namespace {
std::atomic<bool> g_stop{false};
std::atomic<double> g_stop_at{-1.0};

// clock_gettime is async-signal-safe; std::chrono's steady_clock is the same clock on Linux.
double signal_safe_now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

extern "C" void on_stop_signal(int) { request_stop(); }
}  // namespace

void install_stop_handlers() {
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
}

bool stop_requested() { return g_stop.load(); }

double seconds_since_stop_request() {
  const double at = g_stop_at.load();
  return at < 0 ? -1.0 : now_seconds() - at;
}

void request_stop() {
  if (!g_stop.exchange(true)) g_stop_at.store(signal_safe_now());
}

}  // namespace convoy
