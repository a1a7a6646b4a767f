// Failure scenarios under a real mpirun, one per process launch (a failed collective leaves MPI unusable,
// so each scenario ends with _exit): `failures desync|stall|stall_moving_data`. Each rank checks the error it
// got and exits 0 only if the message names what it must; CTest runs mpirun and checks the exit code.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <mpi.h>

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

// Rank 1 agrees on the collective, then never moves its data (a rank that dies between the two, which
// the launch test kill_rank hits now and then): rank 0 is stuck inside MPI's blocking all-reduce, where
// only the watchdog can act. A second collective queued behind the stuck one (the trainer waits on a
// gradient bucket queued behind the stop vote) must fail too rather than wait forever.
// Rank 1 plays its part with raw MPI, following MpiCommunicator's protocol: two MPI_Comm_idup of
// MPI_COMM_WORLD (data, control), then a MAX all-reduce of {fingerprint, -fingerprint} on the data one.
// Should that protocol change, rank 0 fails in another phase and the "(moving data)" check says so.
void stall_moving_data(comm::World& w) {
  const uint64_t fp = comm::fingerprint("bucket", 0, 4000);
  if (w.rank() == 1) {
    MPI_Comm data = MPI_COMM_NULL, ctrl = MPI_COMM_NULL;
    MPI_Request req;
    MPI_Comm_idup(MPI_COMM_WORLD, &data, &req);
    MPI_Wait(&req, MPI_STATUS_IGNORE);
    MPI_Comm_idup(MPI_COMM_WORLD, &ctrl, &req);
    MPI_Wait(&req, MPI_STATUS_IGNORE);
    const auto masked = static_cast<int64_t>(fp & 0x3fffffffffffffffull);
    int64_t range[2] = {masked, -masked};
    MPI_Iallreduce(MPI_IN_PLACE, range, 2, MPI_INT64_T, MPI_MAX, data, &req);
    MPI_Wait(&req, MPI_STATUS_IGNORE);
    std::this_thread::sleep_for(std::chrono::seconds(12));
    finish(1, true, "agreed, then stayed away");
  }
  auto c = comm::make_mpi_communicator(w, {3});
  c->set_step(9);
  std::vector<float> a(1000, 1.f), b(1000, 1.f);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    auto first = c->all_reduce(a.data(), a.size(), ops::DType::f32, comm::ReduceOp::sum, fp,
                               "all-reduce of gradient bucket 0");
    auto second = c->all_reduce(b.data(), b.size(), ops::DType::f32, comm::ReduceOp::sum,
                                comm::fingerprint("bucket", 1, 4000), "all-reduce of gradient bucket 1");
    second->wait();
  } catch (const Error& e) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::string m = e.message();
    finish(0, s < 3 + 10 + 2 && contains(m, "step 9") && contains(m, "all-reduce of gradient bucket 0") &&
                  contains(m, "(moving data)") && contains(m, "rank 1 never joined it"),
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
  if (scenario == "stall_moving_data") stall_moving_data(world);
  std::fprintf(stderr, "usage: failures desync|stall|stall_moving_data\n");
  return 2;
}
