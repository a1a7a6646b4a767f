// Failure scenarios under a real mpirun, one per process launch (a failed collective leaves MPI unusable,
// so each scenario ends with _exit): `failures desync` and `failures stall`. Each rank checks the error it
// got and exits 0 only if the message names what it must; CTest runs mpirun and checks the exit code.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "comm/world.h"

using namespace convoy;

namespace {

[[noreturn]] void finish(int rank, bool ok, const std::string& what) {
  std::printf("rank %d: %s: %s\n", rank, ok ? "as expected" : "WRONG", what.c_str());
  std::fflush(stdout);
  std::_Exit(ok ? 0 : 1);
}

bool contains(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

// Rank 1 skips bucket 0 and goes straight to bucket 1: every rank must name both sides.
void desync(comm::World& w) {
  auto c = comm::make_mpi_communicator(w, {20});
  c->set_step(17);
  std::vector<float> a(1000, 1.f), b(2000, 1.f);
  try {
    if (w.rank() != 1)
      c->all_reduce(a.data(), a.size(), ops::DType::f32, comm::ReduceOp::sum, comm::fingerprint("bucket", 0, 4000),
                    "all-reduce of gradient bucket 0")->wait();
    c->all_reduce(b.data(), b.size(), ops::DType::f32, comm::ReduceOp::sum, comm::fingerprint("bucket", 1, 8000),
                  "all-reduce of gradient bucket 1")->wait();
  } catch (const Error& e) {
    const std::string m = e.message();
    finish(w.rank(), contains(m, "ranks issued different collectives") && contains(m, "rank 1 at collective #0 'all-reduce of gradient bucket 1' at step 17") &&
                         contains(m, "rank 0 at collective #0 'all-reduce of gradient bucket 0' at step 17"),
           m);
  }
  finish(w.rank(), false, "no error although rank 1 skipped a collective");
}

// Rank 1 stops taking part: rank 0's collective times out and names rank 1 as missing.
void stall(comm::World& w) {
  auto c = comm::make_mpi_communicator(w, {3});
  if (w.rank() == 1) {
    std::this_thread::sleep_for(std::chrono::seconds(12));
    finish(1, true, "stayed away");
  }
  c->set_step(42);
  std::vector<float> a(1000, 1.f);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    c->all_reduce(a.data(), a.size(), ops::DType::f32, comm::ReduceOp::sum, comm::fingerprint("bucket", 3, 4000),
                  "all-reduce of gradient bucket 3")->wait();
  } catch (const Error& e) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::string m = e.message();
    finish(0, s < 3 + 10 + 2 && contains(m, "step 42") && contains(m, "all-reduce of gradient bucket 3") &&
                  contains(m, "rank 1 never joined it"),
           m + " (after " + std::to_string(s) + " s)");
  }
  finish(0, false, "no error although rank 1 stopped taking part");
}

}  // namespace

int main(int argc, char** argv) {
  comm::World world;
  const std::string scenario = argc > 1 ? argv[1] : "";
  if (scenario == "desync") desync(world);
  if (scenario == "stall") stall(world);
  std::fprintf(stderr, "usage: failures desync|stall\n");
  return 2;
}
