#include "comm/agreement.h"

#include <algorithm>
#include <cstring>
#include <sstream>
#include <vector>

#include "comm/staging.h"
#include "ops/math/elementwise.h"

namespace convoy::comm {

uint64_t hash_bytes(const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = math::mix64(bytes);
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = math::mix64(h ^ w);
  }
  for (; i < bytes; ++i) h = math::mix64(h ^ p[i]);
  return h;
}

namespace {

struct Fingerprints {
  char config[40] = {};
  uint64_t layout = 0, params = 0, buffers = 0;
};

uint64_t layout_hash(const ops::ArenaLayout& layout) {
  uint64_t h = 0;
  for (const auto& e : layout.entries()) {
    h = math::mix64(h ^ hash_bytes(e.name.data(), e.name.size()));
    h = math::mix64(h ^ e.offset ^ (static_cast<uint64_t>(e.bytes) << 20));
  }
  return h;
}

// "rank 3" or "ranks 1, 2" for the ranks where `same` fails against rank 0; "" when none.
std::string ranks_differing(const std::vector<Fingerprints>& all, bool (*same)(const Fingerprints&, const Fingerprints&)) {
  std::vector<size_t> bad;
  for (size_t r = 1; r < all.size(); ++r)
    if (!same(all[r], all[0])) bad.push_back(r);
  std::string s;
  for (size_t r : bad) s += (s.empty() ? (bad.size() == 1 ? "rank " : "ranks ") : ", ") + std::to_string(r);
  return s;
}

}  // namespace

void broadcast_model(Communicator& data, ops::Graph& graph) {
  broadcast_tensor(data, graph.backend(), const_cast<ops::Tensor&>(graph.params().flat()), 0,
                   fingerprint("parameters", 0, graph.params().flat().bytes()), "broadcast of rank 0's parameters");
  broadcast_buffers(data, graph);
}

void broadcast_buffers(Communicator& data, ops::Graph& graph) {
  broadcast_tensor(data, graph.backend(), const_cast<ops::Tensor&>(graph.buffers().flat()), 0,
                   fingerprint("buffers", 0, graph.buffers().flat().bytes()), "broadcast of rank 0's buffers");
}

// A checksum of an arena over a host copy (the arena may live on a device the host cannot read).
static uint64_t arena_hash(ops::Graph& graph, const ops::Arena& arena) {
  const ops::Tensor host = ops::to_host(graph.backend(), arena.flat());
  return hash_bytes(host.data(), host.bytes());
}

void check_weights_agree(Communicator& control, ops::Graph& graph, int64_t step) {
  const ops::Tensor host = ops::to_host(graph.backend(), graph.params().flat());
  const auto& entries = graph.param_layout().entries();
  std::vector<uint64_t> mine;
  for (const auto& e : entries) mine.push_back(hash_bytes(static_cast<const char*>(host.data()) + e.offset, e.bytes));
  const size_t n = static_cast<size_t>(control.size()), k = mine.size();
  uint64_t total = hash_bytes(mine.data(), k * 8);
  std::vector<uint64_t> totals(n);
  control
      .all_gather(host_bytes(&total, 8), host_bytes(totals.data(), n * 8), fingerprint("weight agreement", 0, 8),
                  "weight agreement")
      ->wait();
  if (std::all_of(totals.begin(), totals.end(), [&](uint64_t t) { return t == totals[0]; })) return;
  std::vector<uint64_t> all(n * k);  // rank r's tensor i at r * k + i
  control
      .all_gather(host_bytes(mine.data(), k * 8), host_bytes(all.data(), n * k * 8),
                  fingerprint("weight agreement per tensor", 1, k * 8), "weight agreement per tensor")
      ->wait();
  std::vector<int> ranks;
  size_t first = k, differing = 0;
  for (size_t i = 0; i < k; ++i) {
    bool any = false;
    for (size_t r = 1; r < n; ++r) any = any || all[r * k + i] != all[i];
    if (any) differing += 1, first = std::min(first, i);
  }
  for (size_t r = 1; r < n; ++r)
    if (totals[r] != totals[0]) ranks.push_back(static_cast<int>(r));
  std::ostringstream os;
  os << "step " << step << ": the ranks' weights drifted apart: " << rank_list(ranks) << " hold" << (ranks.size() == 1 ? "s" : "") << " parameters that differ from rank 0's (the first differing tensor: "
     << (first < k ? entries[first].name : std::string("none")) << "; " << differing << " of " << k
     << " tensors differ). Every rank applies the same averaged gradients, so this is a fault (memory, a "
        "non-deterministic kernel or collective, a bug); the job stops. Checkpoints hold rank 0's weights: "
        "restart with --resume auto";
  CONVOY_FAIL(os.str());
}

void check_startup_agreement(Communicator& control, const std::string& config_hash, ops::Graph& graph) {
  Fingerprints mine;
  std::strncpy(mine.config, config_hash.c_str(), sizeof(mine.config) - 1);
  mine.layout = math::mix64(layout_hash(graph.param_layout()) ^ layout_hash(graph.buffer_layout()));
  mine.params = arena_hash(graph, graph.params());
  mine.buffers = arena_hash(graph, graph.buffers());
  std::vector<Fingerprints> all(static_cast<size_t>(control.size()));
  control
      .all_gather(host_bytes(&mine, sizeof mine), host_bytes(all.data(), sizeof mine * all.size()),
                  fingerprint("startup agreement", 0, sizeof mine), "startup agreement")
      ->wait();
  std::ostringstream os;
  std::string r = ranks_differing(all, [](const Fingerprints& a, const Fingerprints& b) {
    return std::strncmp(a.config, b.config, sizeof a.config) == 0;
  });
  if (!r.empty())
    os << " " << r << " differ from rank 0 in the config hash (rank 0: " << all[0].config
       << "): every rank must run the same config file with the same --set options;";
  r = ranks_differing(all, [](const Fingerprints& a, const Fingerprints& b) { return a.layout == b.layout; });
  if (!r.empty())
    os << " " << r << " lay out the parameters differently from rank 0 (different convoy builds or CPU "
       << "kinds pick different packed layouts): run one build on one kind of machine;";
  r = ranks_differing(all, [](const Fingerprints& a, const Fingerprints& b) {
    return a.params == b.params && a.buffers == b.buffers;
  });
  if (!r.empty()) os << " " << r << " hold parameters or buffers that differ from rank 0's after its broadcast;";
  const std::string problems = os.str();
  CONVOY_CHECK(problems.empty(), "startup check failed:" << problems << " no rank has trained a step");
}

}  // namespace convoy::comm
