#include "comm/mpi_watchdog.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <sstream>
#include <vector>

#include "common/stop.h"
#include "common/timer.h"

namespace convoy::comm {

namespace {
constexpr int kStatusTag = 7001;
}  // namespace

Status with_record(Status s, const StepRecord* record) {
  if (record) std::strncpy(s.record, record->summary().text.c_str(), sizeof(s.record) - 1);
  return s;
}

std::string mismatch_message(const std::vector<Status>& all) {
  std::map<std::string, std::vector<int>> groups;
  for (const Status& s : all) groups[describe(s) + " at step " + std::to_string(s.step)].push_back(s.rank);
  std::ostringstream os;
  os << "ranks issued different collectives (a rank skipped or added one):";
  for (const auto& [where, ranks] : groups) os << " " << rank_list(ranks) << " at " << where << ";";
  os << " the job cannot continue";
  return os.str();
}

std::string describe(const Status& s) {
  std::ostringstream os;
  os << s.plane << "-plane collective #" << s.seq << " '" << s.what << "'";
  return os.str();
}

std::string diagnose_stall(MPI_Comm diag, int rank, int size, const Status& mine, const char* phase, double waited,
                           const char* context, double timeout_s) {
  // Peers that are stuck too answer within milliseconds, or when their own watchdog fires (on another
  // plane it may fire a little later); after a stop request the launcher's SIGKILL is near, so the wait
  // is short then.
  const double grace = *context ? 0.5 : std::clamp(timeout_s / 6, 2.0, 10.0);
  std::vector<Status> theirs(static_cast<size_t>(size));
  std::vector<MPI_Request> sends, recvs(static_cast<size_t>(size), MPI_REQUEST_NULL);
  for (int p = 0; p < size; ++p) {
    if (p == rank) continue;
    MPI_Request s;
    MPI_Isend(&mine, sizeof(Status), MPI_BYTE, p, kStatusTag, diag, &s);
    sends.push_back(s);
    MPI_Irecv(&theirs[static_cast<size_t>(p)], sizeof(Status), MPI_BYTE, p, kStatusTag, diag,
              &recvs[static_cast<size_t>(p)]);
  }
  std::vector<bool> answered(static_cast<size_t>(size), false);
  answered[static_cast<size_t>(rank)] = true;
  const double t0 = now_seconds();
  while (now_seconds() - t0 < grace) {
    bool all = true;
    for (int p = 0; p < size; ++p) {
      if (answered[static_cast<size_t>(p)]) continue;
      int flag = 0;
      MPI_Test(&recvs[static_cast<size_t>(p)], &flag, MPI_STATUS_IGNORE);
      answered[static_cast<size_t>(p)] = flag != 0;
      all = all && flag;
    }
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::vector<int> missing;
  std::map<std::string, std::vector<int>> elsewhere, records;
  records[mine.record].push_back(rank);
  for (int p = 0; p < size; ++p) {
    if (p == rank) continue;
    const Status& s = theirs[static_cast<size_t>(p)];
    if (!answered[static_cast<size_t>(p)]) {
      missing.push_back(p);
      continue;
    }
    records[s.record].push_back(p);
    if (s.seq != mine.seq || s.fingerprint != mine.fingerprint || std::string(s.plane) != mine.plane)
      elsewhere[describe(s) + " at step " + std::to_string(s.step)].push_back(p);
  }
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(1);
  os << "step " << mine.step << ": " << describe(mine) << " (" << phase << ") did not finish within " << waited
     << " s" << context;
  if (!missing.empty())
    os << "; " << rank_list(missing) << " never joined it and did not answer (died, or stopped taking part)";
  for (const auto& [where, ranks] : elsewhere)
    os << "; " << rank_list(ranks) << (ranks.size() == 1 ? " is" : " are") << " at " << where << " instead";
  if (missing.empty() && elsewhere.empty()) os << "; every rank is waiting in it (a network or MPI failure?)";
  if (records.size() > 1) {
    os << "; in this step";
    const char* sep = " ";
    for (const auto& [record, ranks] : records) os << sep << rank_list(ranks) << " issued " << record, sep = "; ";
  }
  os << ". The job cannot continue: restart it, with --resume auto to continue from the last checkpoint";
  return os.str();
}

Watchdog::Watchdog(double timeout_s, bool can_diagnose,
                   std::function<std::string(const Status&, double, const char*)> diagnose,
                   std::function<void(const std::string&)> on_stall,
                   std::function<void(const std::string&)> on_stuck_caller)
    : timeout_s_(timeout_s),
      can_diagnose_(can_diagnose),
      diagnose_(std::move(diagnose)),
      on_stall_(std::move(on_stall)),
      on_stuck_caller_(std::move(on_stuck_caller)),
      thread_([this] { watch(); }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::begin(const Status& s, std::shared_ptr<MpiWork> work, bool by_caller) {
  std::lock_guard<std::mutex> lock(mu_);
  watched_ = s;
  by_caller_ = by_caller;
  work_ = std::move(work);
  start_ = now_seconds();
  watching_ = true;
}

void Watchdog::end() {
  std::lock_guard<std::mutex> lock(mu_);
  watching_ = false;
  work_.reset();
}

void Watchdog::watch() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(100));
    if (!watching_ || stop_) continue;
    const double waited = now_seconds() - start_, since_stop = seconds_since_stop_request();
    const bool timed_out = waited > timeout_s_;
    const bool stopping = since_stop > kStuckAfterStop && waited > kStuckAfterStop;
    if (!timed_out && !stopping) continue;
    const Status status = watched_;
    const bool by_caller = by_caller_;
    std::shared_ptr<MpiWork> work = work_;
    watching_ = false;
    abandoned_.store(true);
    lock.unlock();
    std::string message;
    if (can_diagnose_) {
      try {
        message = diagnose_(status, waited, stopping && !timed_out ? kAfterStop : "");
      } catch (const std::exception& e) {
        message = e.what();
      }
    } else {
      message = "step " + std::to_string(status.step) + ": " + describe(status) + " did not finish moving data within " +
                std::to_string(static_cast<int>(waited)) +
                " s (this MPI library lacks MPI_THREAD_MULTIPLE, so the missing ranks cannot be named)";
    }
    on_stall_(message);
    work->finish(0, 0, message, true);
    if (by_caller) on_stuck_caller_(message);  // that thread never comes back out of MPI
    return;
  }
}

}  // namespace convoy::comm
