#include "comm/step_vote.h"

#include <cstring>
#include <map>
#include <sstream>

namespace convoy::comm {
namespace {

// An all-gather of one fixed-size block per rank.
template <size_t N>
struct Text {
  char s[N] = {};
};

}  // namespace

StepVerdict vote_step(Communicator& control, const StepRecord* record, int64_t step, const StepBallot& mine) {
  const StepRecord::Summary rec = record ? record->summary() : StepRecord::Summary{};
  const int64_t hash = static_cast<int64_t>(rec.hash & 0x3fffffffffffffffull);
  // MAX over every slot: flags become "any rank"; (x, -x) pairs give the maximum and minus the minimum.
  int64_t v[8] = {mine.stop, mine.nonfinite, mine.data_failed, hash, -hash, rec.count, -rec.count, mine.overflow};
  control.all_reduce(host_values(v, 8), ReduceOp::max, fingerprint("step vote", 0, sizeof v), "step vote")->wait();
  StepVerdict out;
  out.stop = v[0] != 0, out.nonfinite = v[1] != 0, out.data_failed = v[2] != 0, out.overflow = v[7] != 0;
  const bool same = v[3] == -v[4] && v[5] == -v[6];
  if (!same) {
    Text<448> my;
    std::strncpy(my.s, rec.text.c_str(), sizeof(my.s) - 1);
    std::vector<Text<448>> all(static_cast<size_t>(control.size()));
    control.all_gather(host_bytes(&my, sizeof my), host_bytes(all.data(), sizeof my * all.size()),
                       fingerprint("step records", 0, sizeof my), "comparison of the step's collectives")
        ->wait();
    std::map<std::string, std::vector<int>> groups;
    for (size_t r = 0; r < all.size(); ++r) groups[all[r].s].push_back(static_cast<int>(r));
    std::ostringstream os;
    os << "step " << step << ": the ranks issued different data-plane collectives (a rank skipped one, added one "
       << "or changed its size):";
    const char* sep = " ";
    for (const auto& [text, ranks] : groups) os << sep << rank_list(ranks) << " issued " << text, sep = "; ";
    os << ". The job cannot continue (comm.check: collective stops at the first differing collective, for "
          "debugging)";
    CONVOY_FAIL(os.str());
  }
  if (out.nonfinite) {
    int32_t flag = mine.nonfinite ? 1 : 0;
    std::vector<int32_t> flags(static_cast<size_t>(control.size()));
    control.all_gather(host_values(&flag, 1), host_values(flags.data(), flags.size()),
                       fingerprint("non-finite ranks", 0, 4), "which ranks saw a non-finite loss")
        ->wait();
    for (size_t r = 0; r < flags.size(); ++r)
      if (flags[r]) out.nonfinite_ranks.push_back(static_cast<int>(r));
  }
  return out;
}

}  // namespace convoy::comm
