// SGD with momentum over the parameter arena: one elementwise pass per run of entries that share a
// weight-decay rule. With no_bias_decay, biases and BN γ/β get no weight decay (Bag of Tricks §3.1).
//
// LARS (You et al. 2017, for batches of 8k and more; train.optimizer: lars) scales each weight tensor's
// update by its trust ratio η·‖w‖ / (‖g‖ + wd·‖w‖) (1 where either norm is 0), applied to the gradient and
// the weight decay before momentum. As MLPerf's reference, biases and BN γ/β are excluded from both the
// adaptation and weight decay. The norms are computed on the device and read back once per step.
#pragma once

#include <vector>

#include "ops/graph.h"

namespace convoy::trainer {

struct SgdOptions {
  float momentum = 0.9f;
  float weight_decay = 1e-4f;
  bool nesterov = false;
  bool no_bias_decay = false;
  bool lars = false;
  float lars_trust = 0.001f;  // η
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
  void lars_step(float lr, float grad_scale);

  ops::Graph& graph_;
  SgdOptions o_;
  ops::Arena momentum_;
  std::vector<Range> ranges_;
  // LARS: one range per entry; adapted entries have their two norms' slots in norms_ (w, then g).
  struct LarsEntry {
    Range r;
    bool adapt;
    size_t slot;
  };
  std::vector<LarsEntry> lars_;
  ops::Tensor norms_, norms_host_;  // f64 (2 per adapted entry) on the device, and in staging memory
};

}  // namespace convoy::trainer
