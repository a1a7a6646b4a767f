#include "ops/models/zoo.h"

namespace convoy::ops {
namespace {

ResNetConfig resnet_config(const std::string& name) {
  ResNetConfig c;
  c.name = name;
  if (name == "resnet18") c.bottleneck = false, c.blocks = {2, 2, 2, 2};
  if (name == "resnet34") c.bottleneck = false, c.blocks = {3, 4, 6, 3};
  if (name == "resnet50" || name == "resnet50a" || name == "resnet50c" || name == "resnet50d") c.blocks = {3, 4, 6, 3};
  if (name == "resnet101") c.blocks = {3, 4, 23, 3};
  if (name == "resnet152") c.blocks = {3, 8, 36, 3};
  if (name == "resnet8") c.bottleneck = false, c.cifar = true, c.blocks = {1, 1, 1};
  if (name == "resnet14") c.bottleneck = false, c.cifar = true, c.blocks = {2, 2, 2};
  if (name == "resnet20") c.bottleneck = false, c.cifar = true, c.blocks = {3, 3, 3};
  c.stride_on_1x1 = name == "resnet50a";
  if (name == "resnet50c" || name == "resnet50d") c.stem = ResNetStem::deep;
  c.avg_down = name == "resnet50d";
  return c;
}

}  // namespace

const std::vector<ModelInfo>& model_infos() {
  static const std::vector<ModelInfo> infos{
      {"lenet5", "LeNet-5 (ReLU, max pooling) for 28x28 images", 28, 1, 10},
      {"resnet18", "ResNet-18 as torchvision builds it", 224, 3, 1000},
      {"resnet34", "ResNet-34 as torchvision builds it", 224, 3, 1000},
      {"resnet50", "ResNet-50 as torchvision builds it (ResNet-B: stride on the 3x3 conv)", 224, 3, 1000},
      {"resnet50a", "ResNet-50 of the original paper (stride on the first 1x1 conv)", 224, 3, 1000},
      {"resnet50c", "ResNet-50-C: three 3x3 convs (32, 32, 64) for the 7x7 stem", 224, 3, 1000},
      {"resnet50d", "ResNet-50-D: ResNet-50-C plus a 2x2 average pool in each downsampling shortcut", 224, 3, 1000},
      {"resnet101", "ResNet-101 as torchvision builds it", 224, 3, 1000},
      {"resnet152", "ResNet-152 as torchvision builds it", 224, 3, 1000},
      {"resnet8", "CIFAR-style ResNet-8 (16/32/64 channels, one 3x3 basic block per stage)", 32, 3, 10},
      {"resnet14", "CIFAR-style ResNet-14 (16/32/64 channels, two 3x3 basic blocks per stage)", 32, 3, 10},
      {"resnet20", "CIFAR-style ResNet-20 (16/32/64 channels, 3x3 basic blocks, 1x1 projection shortcuts)", 32, 3,
       10},
      {"alexnet", "AlexNet as torchvision builds it (one GPU's version: 64-192-384-256-256 channels)", 224, 3, 1000},
      {"vgg11", "VGG-11 (configuration A) as torchvision builds it", 224, 3, 1000},
      {"vgg11_bn", "VGG-11 with batch norm as torchvision builds it", 224, 3, 1000},
      {"vgg13", "VGG-13 (configuration B) as torchvision builds it", 224, 3, 1000},
      {"vgg13_bn", "VGG-13 with batch norm as torchvision builds it", 224, 3, 1000},
      {"vgg16", "VGG-16 (configuration D) as torchvision builds it", 224, 3, 1000},
      {"vgg16_bn", "VGG-16 with batch norm as torchvision builds it", 224, 3, 1000},
      {"vgg19", "VGG-19 (configuration E) as torchvision builds it", 224, 3, 1000},
      {"vgg19_bn", "VGG-19 with batch norm as torchvision builds it", 224, 3, 1000},
      {"nin", "Network in Network as d2l builds it for Fashion-MNIST (4 NiN blocks, global average pooling)", 224, 1,
       10},
      {"googlenet", "GoogLeNet (Inception v1) as torchvision builds it (auxiliary classifiers: model.aux_logits)", 224, 3,
       1000},
      {"densenet121", "DenseNet-121 as torchvision builds it (growth 32, blocks 6-12-24-16)", 224, 3, 1000},
      {"densenet161", "DenseNet-161 as torchvision builds it (growth 48, blocks 6-12-36-24)", 224, 3, 1000},
      {"densenet169", "DenseNet-169 as torchvision builds it (growth 32, blocks 6-12-32-32)", 224, 3, 1000},
      {"densenet201", "DenseNet-201 as torchvision builds it (growth 32, blocks 6-12-48-32)", 224, 3, 1000},
  };
  return infos;
}

const ModelInfo& model_info(const std::string& name) {
  std::string known;
  for (const auto& m : model_infos()) {
    if (m.name == name) return m;
    known += (known.empty() ? "" : ", ") + m.name;
  }
  CONVOY_FAIL("unknown model '" << name << "': known models are " << known);
}

std::unique_ptr<Graph> make_model(const std::string& name, const ModelOptions& o) {
  const ModelInfo& info = model_info(name);
  int64_t classes = o.num_classes > 0 ? o.num_classes : info.num_classes;
  int64_t channels = o.in_channels > 0 ? o.in_channels : info.channels;
  CONVOY_CHECK(classes >= 2, "a classifier needs at least 2 classes, got " << classes);
  ResNetConfig resnet = resnet_config(name);
  CONVOY_CHECK(o.width == 1 || name.starts_with("vgg") || resnet.cifar,
               "model.width scales VGG and the CIFAR-style ResNets only; " << name << " takes width 1");
  CONVOY_CHECK(o.width > 0 && o.width <= (resnet.cifar ? 8 : 1),
               "model.width of " << name << " must be in (0, " << (resnet.cifar ? 8 : 1) << "], got " << o.width);
  CONVOY_CHECK(o.stem_stride == 1 || resnet.cifar,
               "model.stem_stride applies to the CIFAR-style ResNets only; " << name << " takes 1");
  CONVOY_CHECK(o.stem_stride >= 1 && o.stem_stride <= 4, "model.stem_stride must be 1 to 4, got " << o.stem_stride);
  CONVOY_CHECK(!o.aux_logits || name == "googlenet",
               "model.aux_logits adds GoogLeNet's auxiliary classifiers; " << name << " has none");
  if (name == "lenet5") return make_lenet5(channels, classes);
  if (name == "alexnet") return make_alexnet(channels, classes);
  if (name.starts_with("vgg")) return make_vgg(name, channels, classes, o.width);
  if (name == "nin") return make_nin(channels, classes);
  if (name == "googlenet") return make_googlenet(channels, classes, o.aux_logits);
  if (name.starts_with("densenet")) return make_densenet(name, channels, classes);
  resnet.width = o.width, resnet.stem_stride = o.stem_stride;
  return make_resnet(resnet, channels, classes, o.zero_gamma);
}

}  // namespace convoy::ops
