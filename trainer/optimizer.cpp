#include "trainer/optimizer.h"

namespace convoy::trainer {

Sgd::Sgd(ops::Graph& graph, const SgdOptions& o)
    : graph_(graph), o_(o), momentum_(graph.param_layout(), graph.backend().allocator()) {
  CONVOY_CHECK(o.momentum >= 0.f && o.momentum < 1.f, "momentum must be in [0, 1), got " << o.momentum);
  CONVOY_CHECK(o.weight_decay >= 0.f, "weight decay must not be negative, got " << o.weight_decay);
  ops::Tensor m = momentum_.flat();
  graph.backend().fill(graph.backend().context(), m, 0.0);
  const auto& entries = graph.param_layout().entries();
  // Merge neighbouring entries with the same decay rule; the gaps between entries (alignment padding)
  // are zero in every arena and stay zero under the update.
  for (size_t i = 0; i < entries.size(); ++i) {
    size_t begin = entries[i].offset / 4, end = (entries[i].offset + entries[i].bytes) / 4;
    bool d = decays(i);
    if (!ranges_.empty() && ranges_.back().decay == d)
      ranges_.back().count = end - ranges_.back().offset_floats;
    else
      ranges_.push_back({begin, end - begin, d, {}, {}, {}});
  }
  for (Range& r : ranges_) {
    const ops::Shape n{static_cast<int64_t>(r.count)};
    r.w = graph.params().flat().view(r.offset_floats * 4, n);
    r.v = momentum_.flat().view(r.offset_floats * 4, n);
    r.g = graph.grads().flat().view(r.offset_floats * 4, n);
  }
}

bool Sgd::decays(size_t entry) const {
  return !o_.no_bias_decay || graph_.param_layout().entry(entry).role == ops::ParamRole::weight;
}

void Sgd::step(float lr, float grad_scale) {
  ops::Backend& be = graph_.backend();
  for (Range& r : ranges_) {
    ops::SgdParams p{lr, o_.momentum, r.decay ? o_.weight_decay : 0.f, o_.nesterov, grad_scale};
    be.sgd_update(be.context(), p, r.w, r.v, r.g);
  }
}

}  // namespace convoy::trainer
