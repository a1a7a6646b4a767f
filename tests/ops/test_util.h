// Small helpers shared by the ops tests: a CPU backend and one-layer graphs.
#pragma once

#include <memory>
#include <vector>

#include "ops/graph.h"
#include "ops/layer.h"

namespace convoy::test {

ops::Backend& cpu();  // one CPU backend (2 threads) for the whole test binary

inline std::vector<float> host_values(const ops::Tensor& t) {
  const float* p = t.host<float>();
  return std::vector<float>(p, p + t.numel());
}

inline ops::Tensor host_tensor(const ops::Shape& shape, const std::vector<float>& v) {
  ops::Tensor t = ops::Tensor::zeros_host(shape);
  std::copy(v.begin(), v.end(), t.host<float>());
  return t;
}

// input -> layer [-> relu, fused when fuse_relu]; set up on the CPU with the input gradient on.
std::unique_ptr<ops::Graph> one_layer(std::unique_ptr<ops::Layer> layer, const ops::Shape& input,
                                      bool then_relu = false, bool fuse = true, uint64_t seed = 3);

}  // namespace convoy::test
