// ResNets as torchvision builds them (stride on the 3x3 conv: the paper's ResNet-B), plus the original
// ResNet-A, the deep-stem ResNet-C and the average-pool-shortcut ResNet-D of "Bag of Tricks" (names as
// timm gives them: conv1.0/.1/.3/.4/.6 for the stem, downsample.1/.2 after the pool), and the CIFAR ResNet.
#include <cmath>

#include "ops/models/zoo.h"

namespace convoy::ops {
namespace {

Conv2dOptions resnet_conv(int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  Conv2dOptions o = conv_options(out, kernel, stride, padding);
  o.init = InitKind::kaiming_normal_fan_out;  // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu")
  return o;
}

class ResNetBuilder {
 public:
  ResNetBuilder(Graph& g, const ResNetConfig& cfg, bool zero_gamma) : g_(g), cfg_(cfg), zero_gamma_(zero_gamma) {}

  std::string conv_bn(const std::string& conv, const std::string& bn, const std::string& in, int64_t out,
                      int64_t kernel, int64_t stride, bool last_in_block = false) {
    std::string x = g_.add(conv, conv2d(resnet_conv(out, kernel, stride, kernel / 2)), {in});
    BatchNormOptions o;
    o.zero_gamma = last_in_block && zero_gamma_;
    return g_.add(bn, batch_norm(o), {x});
  }

  std::string block(const std::string& p, const std::string& in, int64_t in_ch, int64_t planes, int64_t stride) {
    const int64_t expansion = cfg_.bottleneck ? 4 : 1, out_ch = planes * expansion;
    std::string x;
    if (cfg_.bottleneck) {
      int64_t s1 = cfg_.stride_on_1x1 ? stride : 1, s2 = cfg_.stride_on_1x1 ? 1 : stride;
      x = conv_bn(p + ".conv1", p + ".bn1", in, planes, 1, s1);
      x = g_.add(p + ".relu1", relu(), {x});
      x = conv_bn(p + ".conv2", p + ".bn2", x, planes, 3, s2);
      x = g_.add(p + ".relu2", relu(), {x});
      x = conv_bn(p + ".conv3", p + ".bn3", x, out_ch, 1, 1, true);
    } else {
      x = conv_bn(p + ".conv1", p + ".bn1", in, planes, 3, stride);
      x = g_.add(p + ".relu1", relu(), {x});
      x = conv_bn(p + ".conv2", p + ".bn2", x, planes, 3, 1, true);
    }
    std::string shortcut = in;
    if (stride != 1 || in_ch != out_ch) {
      if (cfg_.avg_down) {
        std::string pooled = in;
        if (stride != 1) {
          PoolOptions po;
          po.kernel = po.stride = stride;
          po.ceil_mode = true;
          po.count_include_pad = false;
          pooled = g_.add(p + ".downsample.0", avg_pool2d(po), {in});
        }
        shortcut = conv_bn(p + ".downsample.1", p + ".downsample.2", pooled, out_ch, 1, 1);
      } else {
        shortcut = conv_bn(p + ".downsample.0", p + ".downsample.1", in, out_ch, 1, stride);
      }
    }
    x = g_.add(p + ".add", add(), {x, shortcut});
    return g_.add(p + ".relu", relu(), {x});
  }

  void build(int64_t num_classes) {
    std::string x = Graph::kInput;
    int64_t ch;
    std::vector<int64_t> widths{64, 128, 256, 512};
    if (cfg_.cifar) {
      auto wide = [&](int64_t c) { return std::max<int64_t>(1, std::llround(static_cast<double>(c) * cfg_.width)); };
      widths = {wide(16), wide(32), wide(64)};
      x = conv_bn("conv1", "bn1", x, widths[0], 3, cfg_.stem_stride);
      x = g_.add("relu", relu(), {x});
      ch = widths[0];
    } else {
      if (cfg_.stem == ResNetStem::deep) {
        x = conv_bn("conv1.0", "conv1.1", x, 32, 3, 2);
        x = g_.add("conv1.2", relu(), {x});
        x = conv_bn("conv1.3", "conv1.4", x, 32, 3, 1);
        x = g_.add("conv1.5", relu(), {x});
        x = g_.add("conv1.6", conv2d(resnet_conv(64, 3, 1, 1)), {x});
        x = g_.add("bn1", batch_norm(), {x});
      } else {
        x = conv_bn("conv1", "bn1", x, 64, 7, 2);
      }
      x = g_.add("relu", relu(), {x});
      PoolOptions mp;
      mp.kernel = 3, mp.stride = 2, mp.padding = 1;
      x = g_.add("maxpool", max_pool2d(mp), {x});
      ch = 64;
    }
    const int64_t expansion = cfg_.bottleneck ? 4 : 1;
    for (size_t stage = 0; stage < cfg_.blocks.size(); ++stage) {
      for (int b = 0; b < cfg_.blocks[stage]; ++b) {
        int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
        std::string p = "layer" + std::to_string(stage + 1) + "." + std::to_string(b);
        x = block(p, x, ch, widths[stage], stride);
        ch = widths[stage] * expansion;
      }
    }
    x = g_.add("avgpool", global_avg_pool(), {x});
    g_.add("fc", linear(num_classes), {x});
  }

 private:
  Graph& g_;
  const ResNetConfig& cfg_;
  bool zero_gamma_;
};

}  // namespace

std::unique_ptr<Graph> make_resnet(const ResNetConfig& cfg, int64_t, int64_t num_classes, bool zero_gamma) {
  CONVOY_CHECK(cfg.blocks.size() == (cfg.cifar ? 3u : 4u), "ResNet '" << cfg.name << "' needs "
                                                                      << (cfg.cifar ? 3 : 4) << " stages");
  auto g = std::make_unique<Graph>(cfg.name);
  ResNetBuilder(*g, cfg, zero_gamma).build(num_classes);
  return g;
}

}  // namespace convoy::ops
