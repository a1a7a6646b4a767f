#include "tests/ops/test_util.h"

namespace convoy::test {

ops::Backend& cpu() {
  static std::unique_ptr<ops::Backend> backend = ops::make_cpu_backend(2);
  return *backend;
}

std::unique_ptr<ops::Graph> one_layer(std::unique_ptr<ops::Layer> layer, const ops::Shape& input, bool then_relu,
                                      bool fuse, uint64_t seed) {
  auto g = std::make_unique<ops::Graph>("test");
  std::string x = g->add("layer", std::move(layer), {ops::Graph::kInput});
  if (then_relu) g->add("relu", ops::relu(), {x});
  g->set_input_grad(true);
  g->setup(&cpu(), input, fuse);
  g->init_params(seed);
  return g;
}

}  // namespace convoy::test
