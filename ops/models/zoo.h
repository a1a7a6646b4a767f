// The model zoo: builder functions that lay out each network with torchvision's parameter names, and
// make_model() that picks one by name (explicit factory, no static registration).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ops/graph.h"

namespace convoy::ops {

struct ModelOptions {
  int64_t num_classes = 0;  // 0: the model's default
  int64_t in_channels = 0;  // 0: the model's default
  bool zero_gamma = false;  // γ = 0 for the last BN of every residual block (Bag of Tricks)
  // VGG: every convolution's channels times width, at most 1 (d2l's small VGG is width 0.25); the
  // classifier keeps 4096 units as d2l's does. CIFAR-style ResNets: 16/32/64 channels times width, up to 8
  // (wide ResNets, Zagoruyko & Komodakis 2016). 1 is the original network.
  double width = 1.0;
  // CIFAR-style ResNets only: the stride of the 3x3 stem (2: the first stage runs at half the input's
  // size, e.g. 14x14 for Fashion-MNIST, which lets a wider network cost what a narrow one did). 1 is the
  // original network.
  int64_t stem_stride = 1;
  // GoogLeNet only: the two auxiliary classifiers, as extra graph outputs "aux1" and "aux2" (loss weight 0.3).
  bool aux_logits = false;
};

struct ModelInfo {
  std::string name;
  std::string description;
  int64_t image_size;   // default input: image_size x image_size x channels
  int64_t channels;
  int64_t num_classes;
};

const std::vector<ModelInfo>& model_infos();
const ModelInfo& model_info(const std::string& name);  // throws with the list of known models
std::unique_ptr<Graph> make_model(const std::string& name, const ModelOptions& options = {});

// Builders (ops/models/*.cpp).
std::unique_ptr<Graph> make_lenet5(int64_t in_channels, int64_t num_classes);
// ops/models/classic.cpp
std::unique_ptr<Graph> make_alexnet(int64_t in_channels, int64_t num_classes);
std::unique_ptr<Graph> make_vgg(const std::string& name, int64_t in_channels, int64_t num_classes,
                                double width = 1.0);  // vgg11 .. vgg19_bn
std::unique_ptr<Graph> make_nin(int64_t in_channels, int64_t num_classes);
std::unique_ptr<Graph> make_googlenet(int64_t in_channels, int64_t num_classes, bool aux_logits = false);
std::unique_ptr<Graph> make_densenet(const std::string& name, int64_t in_channels, int64_t num_classes);
enum class ResNetStem { classic, deep };  // 7x7 conv vs three 3x3 convs (ResNet-C)
struct ResNetConfig {
  std::string name;
  bool bottleneck = true;
  std::vector<int> blocks;      // per stage
  bool stride_on_1x1 = false;   // ResNet-A: the stride sits on the first 1x1 conv
  ResNetStem stem = ResNetStem::classic;
  bool avg_down = false;        // ResNet-D: 2x2 average pool before the stride-1 projection
  bool cifar = false;           // 3x3 stem, no max pool, 16/32/64 channels
  double width = 1.0;           // CIFAR-style: channels 16/32/64 times width, rounded
  int64_t stem_stride = 1;      // CIFAR-style: the 3x3 stem's stride
};
std::unique_ptr<Graph> make_resnet(const ResNetConfig& cfg, int64_t in_channels, int64_t num_classes,
                                   bool zero_gamma);

}  // namespace convoy::ops
