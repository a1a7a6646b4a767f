#include "common/error.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <atomic>

namespace convoy {
namespace {
std::atomic<int> g_rank{-1};

std::string describe(const std::string& message, const std::string& where, const std::string& expr, int rank) {
  std::string s = message;
  s += " [";
  if (rank >= 0) s += "rank " + std::to_string(rank) + ", ";
  s += "host " + host_name() + ", " + where;
  if (!expr.empty()) s += ", check `" + expr + "`";
  s += "]";
  return s;
}
}  // namespace

Error::Error(std::string message, std::string where, std::string expr)
    : std::runtime_error(describe(message, where, expr, g_rank.load())),
      message_(std::move(message)),
      where_(std::move(where)),
      expr_(std::move(expr)),
      rank_(g_rank.load()) {}

void set_error_rank(int rank) { g_rank.store(rank); }
int error_rank() { return g_rank.load(); }

const std::string& host_name() {
  static const std::string name = [] {
    char buf[256] = {};
    if (gethostname(buf, sizeof(buf) - 1) != 0) return std::string("unknown");
    return std::string(buf);
  }();
  return name;
}

void exit_after_error() {
  if (auto logger = spdlog::default_logger()) logger->flush();
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(1);
}

namespace detail {
void fail(const char* file, int line, const char* expr, const std::string& message) {
  std::string f = file;
  // Show paths relative to the source tree: "ops/cpu/conv.cpp:42", not the build machine's absolute path.
  for (const char* top : {"/ops/", "/comm/", "/datasets/", "/trainer/", "/common/", "/tests/"}) {
    auto pos = f.rfind(top);
    if (pos != std::string::npos) {
      f = f.substr(pos + 1);
      break;
    }
  }
  throw Error(message, f + ":" + std::to_string(line), expr);
}
}  // namespace detail

}  // namespace convoy
