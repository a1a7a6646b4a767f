// The classic zoo after LeNet, each as torchvision builds it (layer names, shapes, initialization and
// parameter counts), with NiN as the d2l chapter builds it. Sequential containers become their indices
// ("features.3"), as in torchvision's state_dicts, so that tools/torchvision_to_h5.py maps every tensor.
#include "ops/models/zoo.h"

#include <algorithm>
#include <vector>

namespace convoy::ops {
namespace {

std::string at(const std::string& prefix, int i) { return prefix + "." + std::to_string(i); }

Conv2dOptions conv(int64_t out, int64_t kernel, int64_t stride, int64_t padding, bool bias, InitKind init,
                   InitKind bias_init = InitKind::uniform_fan_in) {
  Conv2dOptions o = conv_options(out, kernel, stride, padding);
  o.bias = bias, o.init = init, o.bias_init = bias_init;
  return o;
}

LinearOptions fc(int64_t out, InitKind init = InitKind::kaiming_uniform_a_sqrt5,
                 InitKind bias_init = InitKind::uniform_fan_in) {
  LinearOptions o;
  o.out_features = out, o.init = init, o.bias_init = bias_init;
  return o;
}

PoolOptions pool(int64_t kernel, int64_t stride, int64_t padding = 0, bool ceil_mode = false) {
  PoolOptions o;
  o.kernel = kernel, o.stride = stride, o.padding = padding, o.ceil_mode = ceil_mode;
  return o;
}

}  // namespace

// torchvision.models.alexnet: PyTorch's default initialization throughout. 61,100,840 parameters.
std::unique_ptr<Graph> make_alexnet(int64_t, int64_t num_classes) {
  auto g = std::make_unique<Graph>("alexnet");
  const InitKind d = InitKind::kaiming_uniform_a_sqrt5;
  std::string x = g->add("features.0", conv2d(conv(64, 11, 4, 2, true, d)), {Graph::kInput});
  x = g->add("features.1", relu(), {x});
  x = g->add("features.2", max_pool2d(pool(3, 2)), {x});
  x = g->add("features.3", conv2d(conv(192, 5, 1, 2, true, d)), {x});
  x = g->add("features.4", relu(), {x});
  x = g->add("features.5", max_pool2d(pool(3, 2)), {x});
  x = g->add("features.6", conv2d(conv(384, 3, 1, 1, true, d)), {x});
  x = g->add("features.7", relu(), {x});
  x = g->add("features.8", conv2d(conv(256, 3, 1, 1, true, d)), {x});
  x = g->add("features.9", relu(), {x});
  x = g->add("features.10", conv2d(conv(256, 3, 1, 1, true, d)), {x});
  x = g->add("features.11", relu(), {x});
  x = g->add("features.12", max_pool2d(pool(3, 2)), {x});
  x = g->add("avgpool", adaptive_avg_pool2d(6, 6), {x});
  x = g->add("classifier.0", dropout(0.5f), {x});
  x = g->add("classifier.1", linear(fc(4096)), {x});
  x = g->add("classifier.2", relu(), {x});
  x = g->add("classifier.3", dropout(0.5f), {x});
  x = g->add("classifier.4", linear(fc(4096)), {x});
  x = g->add("classifier.5", relu(), {x});
  g->add("classifier.6", linear(fc(num_classes)), {x});
  return g;
}

// torchvision.models.vgg*: 3x3 convolutions (kaiming_normal fan_out, zero bias), optional BN after each,
// 2x2 max pools, a 7x7 adaptive pool and three linear layers (N(0, 0.01), zero bias).
std::unique_ptr<Graph> make_vgg(const std::string& name, int64_t, int64_t num_classes, double width) {
  const bool bn = name.ends_with("_bn");
  const std::string depth = name.substr(3, 2);
  const int M = 0;  // a max pool
  std::vector<int> cfg;
  if (depth == "11") cfg = {64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
  if (depth == "13") cfg = {64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
  if (depth == "16") cfg = {64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M};
  if (depth == "19")
    cfg = {64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M};
  CONVOY_CHECK(!cfg.empty(), "internal: no VGG configuration for '" << name << "'");
  auto g = std::make_unique<Graph>(name);
  std::string x = Graph::kInput;
  int i = 0;
  for (int v : cfg) {
    if (v == M) {
      x = g->add(at("features", i++), max_pool2d(pool(2, 2)), {x});
      continue;
    }
    const int64_t out = std::max<int64_t>(1, static_cast<int64_t>(v * width));
    x = g->add(at("features", i++),
               conv2d(conv(out, 3, 1, 1, true, InitKind::kaiming_normal_fan_out, InitKind::zeros)), {x});
    if (bn) x = g->add(at("features", i++), batch_norm(), {x});
    x = g->add(at("features", i++), relu(), {x});
  }
  x = g->add("avgpool", adaptive_avg_pool2d(7, 7), {x});
  const InitKind n = InitKind::normal_0_01, z = InitKind::zeros;
  x = g->add("classifier.0", linear(fc(4096, n, z)), {x});
  x = g->add("classifier.1", relu(), {x});
  x = g->add("classifier.2", dropout(0.5f), {x});
  x = g->add("classifier.3", linear(fc(4096, n, z)), {x});
  x = g->add("classifier.4", relu(), {x});
  x = g->add("classifier.5", dropout(0.5f), {x});
  g->add("classifier.6", linear(fc(num_classes, n, z)), {x});
  return g;
}

// Network in Network as d2l builds it (chapter "Network in Network"): four NiN blocks, each a KxK
// convolution and two 1x1 convolutions with ReLUs, 3x3/2 max pools between the first three, dropout 0.5
// before the last block, whose channels are the classes, and global average pooling for the logits.
// d2l initializes weights with xavier_uniform (init_cnn) and leaves PyTorch's default biases.
// Names follow d2l's nn.Sequential: "0.0" is the first block's first convolution, "7.4" the last's last.
// At 1 input channel and 10 classes: 1,992,166 parameters (30,336 + 746,240 + 1,180,800 + 34,790 by block).
std::unique_ptr<Graph> make_nin(int64_t, int64_t num_classes) {
  auto g = std::make_unique<Graph>("nin");
  const InitKind xav = InitKind::xavier_uniform;
  auto block = [&](int index, const std::string& in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
    const std::string p = std::to_string(index);
    std::string x = g->add(p + ".0", conv2d(conv(out, kernel, stride, padding, true, xav)), {in});
    x = g->add(p + ".1", relu(), {x});
    x = g->add(p + ".2", conv2d(conv(out, 1, 1, 0, true, xav)), {x});
    x = g->add(p + ".3", relu(), {x});
    x = g->add(p + ".4", conv2d(conv(out, 1, 1, 0, true, xav)), {x});
    return g->add(p + ".5", relu(), {x});
  };
  std::string x = block(0, Graph::kInput, 96, 11, 4, 0);
  x = g->add("1", max_pool2d(pool(3, 2)), {x});
  x = block(2, x, 256, 5, 1, 2);
  x = g->add("3", max_pool2d(pool(3, 2)), {x});
  x = block(4, x, 384, 3, 1, 1);
  x = g->add("5", max_pool2d(pool(3, 2)), {x});
  x = g->add("6", dropout(0.5f), {x});
  x = block(7, x, num_classes, 3, 1, 1);
  g->add("8", global_avg_pool(), {x});
  return g;
}

// torchvision.models.googlenet (transform_input=False): BasicConv2d = conv (no bias) + BN (eps 0.001) + ReLU;
// inception branches 1x1 | 1x1-3x3 | 1x1-3x3 (torchvision keeps 3x3 where the paper has 5x5) | 3x3/1 max
// pool-1x1; ceil-mode max pools. Convolutions and linear layers: trunc_normal(0, 0.01), PyTorch's default
// biases on the linear layers. 6,624,904 parameters without the auxiliary classifiers (aux_logits=False).
// With them (aux_logits=True, 13,004,888 parameters): InceptionAux after inception4a ("aux1") and 4d
// ("aux2") - a 4x4 adaptive average pool, a 1x1 BasicConv2d to 128 channels, fc1 2048 -> 1024 with ReLU,
// dropout 0.7, fc2 to the classes - as extra graph outputs whose losses weigh 0.3 (the paper's §5). They are
// added after inception5b, where torchvision registers them, so that parameters keep its order.
std::unique_ptr<Graph> make_googlenet(int64_t, int64_t num_classes, bool aux_logits) {
  auto g = std::make_unique<Graph>("googlenet");
  auto basic = [&](const std::string& p, const std::string& in, int64_t out, int64_t kernel, int64_t stride,
                   int64_t padding) {
    std::string x = g->add(p + ".conv", conv2d(conv(out, kernel, stride, padding, false, InitKind::normal_0_01)), {in});
    BatchNormOptions b;
    b.eps = 0.001f;
    x = g->add(p + ".bn", batch_norm(b), {x});
    return g->add(p + ".relu", relu(), {x});
  };
  auto inception = [&](const std::string& p, const std::string& in, int64_t c1, int64_t c3r, int64_t c3, int64_t c5r,
                       int64_t c5, int64_t pp) {
    std::string b1 = basic(p + ".branch1", in, c1, 1, 1, 0);
    std::string b2 = basic(p + ".branch2.1", basic(p + ".branch2.0", in, c3r, 1, 1, 0), c3, 3, 1, 1);
    std::string b3 = basic(p + ".branch3.1", basic(p + ".branch3.0", in, c5r, 1, 1, 0), c5, 3, 1, 1);
    std::string b4 = basic(p + ".branch4.1", g->add(p + ".branch4.0", max_pool2d(pool(3, 1, 1, true)), {in}), pp, 1, 1, 0);
    return g->add(p + ".cat", concat(), {b1, b2, b3, b4});
  };
  std::string x = basic("conv1", Graph::kInput, 64, 7, 2, 3);
  x = g->add("maxpool1", max_pool2d(pool(3, 2, 0, true)), {x});
  x = basic("conv2", x, 64, 1, 1, 0);
  x = basic("conv3", x, 192, 3, 1, 1);
  x = g->add("maxpool2", max_pool2d(pool(3, 2, 0, true)), {x});
  x = inception("inception3a", x, 64, 96, 128, 16, 32, 32);
  x = inception("inception3b", x, 128, 128, 192, 32, 96, 64);
  x = g->add("maxpool3", max_pool2d(pool(3, 2, 0, true)), {x});
  x = inception("inception4a", x, 192, 96, 208, 16, 48, 64);
  const std::string after4a = x;
  x = inception("inception4b", x, 160, 112, 224, 24, 64, 64);
  x = inception("inception4c", x, 128, 128, 256, 24, 64, 64);
  x = inception("inception4d", x, 112, 144, 288, 32, 64, 64);
  const std::string after4d = x;
  x = inception("inception4e", x, 256, 160, 320, 32, 128, 128);
  x = g->add("maxpool4", max_pool2d(pool(2, 2, 0, true)), {x});
  x = inception("inception5a", x, 256, 160, 320, 32, 128, 128);
  x = inception("inception5b", x, 384, 192, 384, 48, 128, 128);
  auto aux = [&](const std::string& p, const std::string& in) {
    std::string y = g->add(p + ".pool", adaptive_avg_pool2d(4, 4), {in});
    y = basic(p + ".conv", y, 128, 1, 1, 0);
    y = g->add(p + ".fc1", linear(fc(1024, InitKind::normal_0_01)), {y});
    y = g->add(p + ".relu", relu(), {y});
    y = g->add(p + ".dropout", dropout(0.7f), {y});
    return g->add(p + ".fc2", linear(fc(num_classes, InitKind::normal_0_01)), {y});
  };
  const std::string aux1 = aux_logits ? aux("aux1", after4a) : "", aux2 = aux_logits ? aux("aux2", after4d) : "";
  x = g->add("avgpool", global_avg_pool(), {x});
  x = g->add("dropout", dropout(0.2f), {x});
  g->add("fc", linear(fc(num_classes, InitKind::normal_0_01)), {x});
  if (aux_logits) {
    g->add_output("aux1", aux1, 0.3f);
    g->add_output("aux2", aux2, 0.3f);
  }
  return g;
}

// torchvision.models.densenet*: BN-ReLU-conv dense layers (1x1 to 4 x growth, then 3x3 to growth) whose input
// is the concatenation of every earlier feature map of the block, transitions (BN-ReLU-1x1 conv halving the
// channels, 2x2 average pool), a final BN and ReLU, global average pooling and the classifier. Convolutions
// kaiming_normal (fan_in), BN 1/0, classifier bias 0.
std::unique_ptr<Graph> make_densenet(const std::string& name, int64_t, int64_t num_classes) {
  int64_t growth = 32, features = 64;
  std::vector<int> blocks;
  if (name == "densenet121") blocks = {6, 12, 24, 16};
  if (name == "densenet169") blocks = {6, 12, 32, 32};
  if (name == "densenet201") blocks = {6, 12, 48, 32};
  if (name == "densenet161") blocks = {6, 12, 36, 24}, growth = 48, features = 96;
  CONVOY_CHECK(!blocks.empty(), "internal: no DenseNet configuration for '" << name << "'");
  const int64_t bn_size = 4;
  const InitKind k = InitKind::kaiming_normal_fan_in;
  auto g = std::make_unique<Graph>(name);
  std::string x = g->add("features.conv0", conv2d(conv(features, 7, 2, 3, false, k)), {Graph::kInput});
  x = g->add("features.norm0", batch_norm(), {x});
  x = g->add("features.relu0", relu(), {x});
  x = g->add("features.pool0", max_pool2d(pool(3, 2, 1)), {x});
  int64_t channels = features;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const std::string p = "features.denseblock" + std::to_string(b + 1);
    std::vector<std::string> maps{x};
    for (int l = 1; l <= blocks[b]; ++l) {
      const std::string q = p + ".denselayer" + std::to_string(l);
      std::string in = maps.size() == 1 ? maps[0] : g->add(q + ".cat", concat(), maps);
      std::string y = g->add(q + ".norm1", batch_norm(), {in});
      y = g->add(q + ".relu1", relu(), {y});
      y = g->add(q + ".conv1", conv2d(conv(bn_size * growth, 1, 1, 0, false, k)), {y});
      y = g->add(q + ".norm2", batch_norm(), {y});
      y = g->add(q + ".relu2", relu(), {y});
      y = g->add(q + ".conv2", conv2d(conv(growth, 3, 1, 1, false, k)), {y});
      maps.push_back(y);
    }
    x = g->add(p + ".cat", concat(), maps);
    channels += blocks[b] * growth;
    if (b + 1 < blocks.size()) {
      const std::string t = "features.transition" + std::to_string(b + 1);
      x = g->add(t + ".norm", batch_norm(), {x});
      x = g->add(t + ".relu", relu(), {x});
      channels /= 2;
      x = g->add(t + ".conv", conv2d(conv(channels, 1, 1, 0, false, k)), {x});
      x = g->add(t + ".pool", avg_pool2d(pool(2, 2)), {x});
    }
  }
  x = g->add("features.norm5", batch_norm(), {x});
  x = g->add("relu", relu(), {x});
  x = g->add("avgpool", global_avg_pool(), {x});
  g->add("classifier", linear(fc(num_classes, InitKind::kaiming_uniform_a_sqrt5, InitKind::zeros)), {x});
  return g;
}

}  // namespace convoy::ops
