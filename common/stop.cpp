#include "common/stop.h"

#include <pthread.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <thread>

#include "common/timer.h"

namespace convoy {
namespace {
std::atomic<bool> g_stop{false};
std::atomic<bool> g_armed{false};
std::atomic<double> g_stop_at{-1.0};

sigset_t stop_signals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGUSR1);
  return s;
}

// A forked child (datasets/h5.cpp's HDF5 probe) takes the default dispositions back.
void unblock_in_child() {
  const sigset_t s = stop_signals();
  pthread_sigmask(SIG_UNBLOCK, &s, nullptr);
}

// The only thread that takes SIGTERM and SIGUSR1: every other thread inherits them blocked.
[[noreturn]] void wait_for_signals() {
  const sigset_t s = stop_signals();
  for (;;) {
    int sig = 0;
    if (sigwait(&s, &sig) != 0) continue;
    if (g_armed.load()) {
      request_stop();
      continue;
    }
    // Nothing listens yet (or this command never does): the signal's default action, as if never blocked.
    std::signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
    kill(getpid(), sig);
  }
}
}  // namespace

void take_stop_signals_synchronously() {
  static std::atomic<bool> started{false};
  if (started.exchange(true)) return;
  const sigset_t s = stop_signals();
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  pthread_atfork(nullptr, nullptr, unblock_in_child);
  std::thread(wait_for_signals).detach();
}

void install_stop_handlers() {
  take_stop_signals_synchronously();
  g_armed.store(true);
}

bool stop_requested() { return g_stop.load(); }

double seconds_since_stop_request() {
  const double at = g_stop_at.load();
  return at < 0 ? -1.0 : now_seconds() - at;
}

void request_stop() {
  if (!g_stop.exchange(true)) g_stop_at.store(now_seconds());
}

int run_program(const std::vector<std::string>& argv) {
  if (argv.empty()) return -1;
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawnattr_t attr;
  if (posix_spawnattr_init(&attr) != 0) return -1;
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], nullptr, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return status;
}

}  // namespace convoy
