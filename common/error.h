// convoy's one error family. Library code throws convoy::Error; only main() decides the exit code,
// so that communicators can be aborted cleanly first.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace convoy {

class Error : public std::runtime_error {
 public:
  // message: a sentence saying what was wrong and what to do; where: "file:line"; expr: the failed check.
  Error(std::string message, std::string where, std::string expr);

  const std::string& message() const { return message_; }
  const std::string& where() const { return where_; }
  const std::string& expr() const { return expr_; }
  int rank() const { return rank_; }

 private:
  std::string message_, where_, expr_;
  int rank_;
};

// The rank and host named in every error; comm::World sets the rank once MPI is up (-1 = not known yet).
void set_error_rank(int rank);
int error_rank();
const std::string& host_name();

// Ends the process with status 1 after an error was reported: flushes stdout, stderr and the log, then
// _Exit, skipping static destructors and atexit handlers. HDF5 1.10's own atexit handler crashes
// (H5F__close_cb) on a file whose write failed, such as a checkpoint on a disk that filled up; every
// file convoy writes is complete under its final name or not there at all, so nothing is lost.
[[noreturn]] void exit_after_error();

namespace detail {
[[noreturn]] void fail(const char* file, int line, const char* expr, const std::string& message);
}  // namespace detail

}  // namespace convoy

// CONVOY_CHECK(n > 0, "batch size must be positive, got " << n): the message is a stream expression.
#define CONVOY_CHECK(cond, msg)                                                    \
  do {                                                                             \
    if (!(cond)) [[unlikely]] {                                                    \
      std::ostringstream convoy_check_os_;                                         \
      convoy_check_os_ << msg;                                                     \
      ::convoy::detail::fail(__FILE__, __LINE__, #cond, convoy_check_os_.str());   \
    }                                                                              \
  } while (0)

#define CONVOY_FAIL(msg)                                                           \
  do {                                                                             \
    std::ostringstream convoy_check_os_;                                           \
    convoy_check_os_ << msg;                                                       \
    ::convoy::detail::fail(__FILE__, __LINE__, "", convoy_check_os_.str());        \
  } while (0)
