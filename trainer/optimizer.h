// SGD with momentum over the parameter arena: one elementwise pass per run of entries that share a
// weight-decay rule. With no_bias_decay, biases and BN γ/β get no weight decay (Bag of Tricks §3.1).
#pragma once

#include <vector>

#include "ops/graph.h"

namespace convoy::trainer {

struct SgdOptions {
  float momentum = 0.9f;
  float weight_decay = 1e-4f;
  bool nesterov = false;
  bool no_bias_decay = false;
};

class Sgd {
 public:
  Sgd(ops::Graph& graph, const SgdOptions& options);
  // grad_scale multiplies every gradient first (averaging over ranks, loss-scale removal).
  void step(float lr, float grad_scale = 1.f);
  ops::Arena& momentum() { return momentum_; }
  // Whether parameter entry i is decayed.
  bool decays(size_t entry) const;

 private:
  struct Range {
    size_t offset_floats, count;
    bool decay;
    ops::Tensor w, v, g;  // the range's views of the parameter, momentum and gradient arenas
  };
  ops::Graph& graph_;
  SgdOptions o_;
  ops::Arena momentum_;
  std::vector<Range> ranges_;
};

}  // namespace convoy::trainer
