// LeNet-5 for 28x28 images (MNIST, Fashion-MNIST): the first convolution pads by 2 to see the 32x32 field
// of the original; ReLU and max pooling as modern re-implementations use. 61,706 parameters at 10 classes.
#include "ops/models/zoo.h"

namespace convoy::ops {

std::unique_ptr<Graph> make_lenet5(int64_t, int64_t num_classes) {
  auto g = std::make_unique<Graph>("lenet5");
  Conv2dOptions c1 = conv_options(6, 5, 1, 2), c2 = conv_options(16, 5, 1, 0);
  c1.bias = c2.bias = true;
  PoolOptions pool;  // 2x2, stride 2
  std::string x = g->add("conv1", conv2d(c1), {Graph::kInput});
  x = g->add("relu1", relu(), {x});
  x = g->add("pool1", max_pool2d(pool), {x});
  x = g->add("conv2", conv2d(c2), {x});
  x = g->add("relu2", relu(), {x});
  x = g->add("pool2", max_pool2d(pool), {x});
  x = g->add("fc1", linear(120), {x});
  x = g->add("relu3", relu(), {x});
  x = g->add("fc2", linear(84), {x});
  x = g->add("relu4", relu(), {x});
  g->add("fc3", linear(num_classes), {x});
  return g;
}

}  // namespace convoy::ops
