#include "trainer/optimizer.h"

#include <algorithm>
#include <cmath>

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
  auto bind = [&](Range& r) {
    const ops::Shape n{static_cast<int64_t>(r.count)};
    r.w = graph.params().flat().view(r.offset_floats * 4, n);
    r.v = momentum_.flat().view(r.offset_floats * 4, n);
    r.g = graph.grads().flat().view(r.offset_floats * 4, n);
  };
  for (Range& r : ranges_) bind(r);
  if (!o.lars) return;
  CONVOY_CHECK(o.lars_trust > 0.f, "the LARS trust coefficient must be positive, got " << o.lars_trust);
  size_t slots = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const bool adapt = entries[i].role == ops::ParamRole::weight;
    LarsEntry e{{entries[i].offset / 4, entries[i].bytes / 4, adapt, {}, {}, {}}, adapt, adapt ? slots : 0};
    if (adapt) slots += 2;
    bind(e.r);
    lars_.push_back(e);
  }
  ops::Backend& be = graph.backend();
  norms_ = ops::Tensor::empty(ops::Shape{static_cast<int64_t>(std::max<size_t>(slots, 1))}, ops::DType::f64,
                              be.allocator());
  norms_host_ = ops::Tensor::empty(norms_.shape(), ops::DType::f64, be.staging_allocator());
}

bool Sgd::decays(size_t entry) const {
  return !o_.no_bias_decay || graph_.param_layout().entry(entry).role == ops::ParamRole::weight;
}

void Sgd::step(float lr, float grad_scale) {
  if (o_.lars) return lars_step(lr, grad_scale);
  ops::Backend& be = graph_.backend();
  for (Range& r : ranges_) {
    ops::SgdParams p{lr, o_.momentum, r.decay ? o_.weight_decay : 0.f, o_.nesterov, grad_scale};
    be.sgd_update(be.context(), p, r.w, r.v, r.g);
  }
}

void Sgd::lars_step(float lr, float grad_scale) {
  ops::Backend& be = graph_.backend();
  ops::ExecContext& ctx = be.context();
  for (LarsEntry& e : lars_) {
    if (!e.adapt) continue;
    ops::Tensor w = norms_.view(e.slot * 8, ops::Shape{1}), g = norms_.view((e.slot + 1) * 8, ops::Shape{1});
    be.sum_squares(ctx, e.r.w, w);
    be.sum_squares(ctx, e.r.g, g);
  }
  be.copy(ctx, norms_, norms_host_);
  ctx.synchronize();
  const double* n = norms_host_.host<double>();
  for (LarsEntry& e : lars_) {
    ops::SgdParams p{lr, o_.momentum, 0.f, o_.nesterov, grad_scale};  // excluded: no adaptation, no decay
    if (e.adapt) {
      const double w_norm = std::sqrt(n[e.slot]), g_norm = std::sqrt(n[e.slot + 1]) * std::fabs(grad_scale);
      const double wd = o_.weight_decay;
      const double trust = w_norm > 0 && g_norm > 0 ? o_.lars_trust * w_norm / (g_norm + wd * w_norm) : 1.0;
      p.weight_decay = static_cast<float>(wd * trust);
      p.grad_scale = static_cast<float>(grad_scale * trust);
    }
    be.sgd_update(ctx, p, e.r.w, e.r.v, e.r.g);
  }
}

}  // namespace convoy::trainer
