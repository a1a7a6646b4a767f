// Failure scenarios under a real mpirun, one per process launch (a failed collective leaves MPI unusable,
// so each scenario ends with _exit): `failures desync|desync_step_skip|desync_step_size|stall|
// stall_moving_data|stall_in_caller`. Each rank checks the error it got and prints whether the message names what it
// must; CTest runs mpirun and checks the output.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <mpi.h>

#include "comm/communicator.h"
#include "comm/step_vote.h"
#include "comm/world.h"

using namespace convoy;

namespace {

// Prints the verdict, then gives the other ranks time to print theirs before this one's exit makes
// mpirun end the job.
[[noreturn]] void finish(int rank, bool ok, const std::string& what) {
  std::printf("rank %d: %s: %s\n", rank, ok ? "as expected" : "WRONG", what.c_str());
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  std::_Exit(ok ? 0 : 1);
}

bool contains(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

// A stall comes back as an error from wait(), or, when the waiting thread was running the collective
// itself (comm/mpi_queue.h), through CommOptions::on_stuck_caller: the same check judges both.
comm::CommOptions options(double timeout_s, comm::CheckMode check, const std::function<void(const std::string&)>& judge) {
  comm::CommOptions o;
  o.timeout_s = timeout_s, o.check = check, o.on_stuck_caller = judge;
  return o;
}

std::shared_ptr<comm::Work> bucket(comm::Communicator& c, std::vector<float>& v, int id) {
  const size_t bytes = v.size() * 4;
  return c.all_reduce(comm::host_values(v.data(), v.size()), comm::ReduceOp::sum, comm::fingerprint("bucket", id, bytes),
                      "all-reduce of gradient bucket " + std::to_string(id));
}

// comm.check: collective. Rank 1 skips bucket 0 and goes straight to bucket 1: every rank must name both
// sides before any data moves.
void desync(comm::World& w) {
  comm::CommOptions o;
  o.timeout_s = 20, o.check = comm::CheckMode::collective;
  auto c = comm::make_mpi_communicator(w, o);
  c->set_step(17);
  std::vector<float> a(1000, 1.f), b(2000, 1.f);
  try {
    if (w.rank() != 1) bucket(*c, a, 0)->wait();
    bucket(*c, b, 1)->wait();
  } catch (const Error& e) {
    const std::string m = e.message();
    finish(w.rank(),
           contains(m, "ranks issued different collectives") &&
               contains(m, "rank 1 at data-plane collective #0 'all-reduce of gradient bucket 1' at step 17") &&
               contains(m, "rank 0 at data-plane collective #0 'all-reduce of gradient bucket 0' at step 17"),
           m);
  }
  finish(w.rank(), false, "no error although rank 1 skipped a collective");
}

// comm.check: step, as the trainer runs a step (trainer/step.cpp): the step's data-plane collectives,
// then the vote on the control plane, which a data-plane failure does not skip. `rank1` is what rank 1
// issues instead of {bucket 0, bucket 1}. Whatever MPI does with the mismatch (moves garbage, fails, or
// hangs until the watchdog fires), every rank's error must name what each rank issued in the step.
void desync_step(comm::World& w, const std::vector<size_t>& rank1, const char* rank1_record) {
  auto judge = [&w, rank1_record](const std::string& m) {
    const bool names_both = contains(m, "rank 0 issued 2 collectives: 'all-reduce of gradient bucket 0' (1024 B), "
                                        "'all-reduce of gradient bucket 1' (2048 B)") &&
                            contains(m, (std::string("rank 1 issued ") + rank1_record).c_str());
    finish(w.rank(), names_both && contains(m, "step 17"), m);
  };
  auto record = std::make_shared<comm::StepRecord>();
  comm::CommOptions c = options(4, comm::CheckMode::step, judge), d = c;
  c.plane = "control", c.record = record;
  d.plane = "data", d.record = record, d.records = true;
  auto control = comm::make_mpi_communicator(w, c);
  auto data = comm::make_mpi_communicator(w, d);
  data->set_step(17);
  control->set_step(17);
  const std::vector<size_t> mine = w.rank() == 1 ? rank1 : std::vector<size_t>{256, 512};
  std::vector<std::vector<float>> bufs;
  for (size_t n : mine) bufs.emplace_back(n, 1.f);
  comm::StepBallot ballot;
  std::string data_error;
  try {
    std::vector<std::shared_ptr<comm::Work>> works;
    for (size_t i = 0; i < bufs.size(); ++i) works.push_back(bucket(*data, bufs[i], static_cast<int>(i)));
    for (auto& wk : works) wk->wait();
  } catch (const comm::StallError& e) {
    data_error = e.message();  // the diagnosis named everything: no vote, as in trainer/step.cpp
  } catch (const Error& e) {
    ballot.data_failed = true;
    data_error = e.message();
  }
  std::string m;
  try {
    if (ballot.data_failed || data_error.empty()) comm::vote_step(*control, record.get(), 17, ballot);
    m = data_error.empty() ? "" : data_error;
  } catch (const Error& e) {
    m = e.message();
  }
  if (m.empty()) finish(w.rank(), false, "no error although the ranks issued different collectives");
  judge(m);
}

// Rank 1 stops taking part: rank 0's collective times out and names rank 1 as missing.
void stall(comm::World& w) {
  auto c = comm::make_mpi_communicator(w, options(3, comm::CheckMode::collective, nullptr));
  if (w.rank() == 1) {
    std::this_thread::sleep_for(std::chrono::seconds(12));
    finish(1, true, "stayed away");
  }
  c->set_step(42);
  std::vector<float> a(1000, 1.f);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    bucket(*c, a, 3)->wait();
  } catch (const Error& e) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::string m = e.message();
    finish(0, s < 3 + 10 + 2 && contains(m, "step 42") && contains(m, "all-reduce of gradient bucket 3") &&
                  contains(m, "(agreeing on the collective)") && contains(m, "rank 1 never joined it"),
           m + " (after " + std::to_string(s) + " s)");
  }
  finish(0, false, "no error although rank 1 stopped taking part");
}

// comm.check: step, so a collective moves data at once: rank 1 sets up its communicator (one
// MPI_Comm_idup of MPI_COMM_WORLD, as MpiCommunicator does), then never moves its data (a rank that dies
// mid-step, which the launch test kill_rank hits): rank 0 is stuck inside MPI's blocking all-reduce,
// where only the watchdog can act. Should MpiCommunicator's set-up change, rank 0 fails in another phase
// and the "(moving data)" check says so. by_caller = false: only the communication thread runs
// collectives, and a second one queued behind the stuck one (the trainer waits on a later bucket) must
// fail too rather than wait forever. by_caller = true: rank 0's waiting thread runs the collective
// itself, is stuck in it for good, and the watchdog's diagnosis reaches on_stuck_caller.
void stall_moving_data(comm::World& w, bool by_caller) {
  if (w.rank() == 1) {
    MPI_Comm data = MPI_COMM_NULL;
    MPI_Request req;
    MPI_Comm_idup(MPI_COMM_WORLD, &data, &req);
    MPI_Wait(&req, MPI_STATUS_IGNORE);
    std::this_thread::sleep_for(std::chrono::seconds(12));
    finish(1, true, "set up, then stayed away");
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto judge = [t0](const std::string& m) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    finish(0, s < 3 + 10 + 2 && contains(m, "step 9") && contains(m, "all-reduce of gradient bucket 0") &&
                  contains(m, "(moving data)") && contains(m, "rank 1 never joined it"),
           m + " (after " + std::to_string(s) + " s)");
  };
  comm::CommOptions o = options(3, comm::CheckMode::step, judge);
  o.waiters_help = by_caller;
  auto c = comm::make_mpi_communicator(w, o);
  c->set_step(9);
  std::vector<float> a(1000, 1.f), b(1000, 1.f);
  try {
    auto first = bucket(*c, a, 0);
    auto second = bucket(*c, b, 1);
    second->wait();
  } catch (const Error& e) {
    judge(e.message());
  }
  finish(0, false, "no error although rank 1 stopped taking part");
}

}  // namespace

int main(int argc, char** argv) {
  comm::World world;
  const std::string scenario = argc > 1 ? argv[1] : "";
  if (scenario == "desync") desync(world);
  // Rank 1 leaves out the step's last collective: rank 0's bucket 1 hangs until the watchdog.
  if (scenario == "desync_step_skip") desync_step(world, {256}, "1 collective: 'all-reduce of gradient bucket 0' (1024 B)");
  // Rank 1 issues bucket 1 with another size.
  if (scenario == "desync_step_size")
    desync_step(world, {256, 1024},
                "2 collectives: 'all-reduce of gradient bucket 0' (1024 B), 'all-reduce of gradient bucket 1' (4096 B)");
  if (scenario == "stall") stall(world);
  if (scenario == "stall_moving_data") stall_moving_data(world, false);
  if (scenario == "stall_in_caller") stall_moving_data(world, true);
  std::fprintf(stderr, "usage: failures desync|desync_step_skip|desync_step_size|stall|stall_moving_data|stall_in_caller\n");
  return 2;
}
