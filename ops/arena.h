// Arenas: parameters, gradients, optimizer state and buffers each live in one contiguous allocation
// with named views, so that a checkpoint writes views by name and an elementwise pass (the optimizer,
// an all-reduce) covers an arena in one go. An ArenaLayout says where each named entry lives; several Arenas
// (params, grads, momentum) share one layout, so a gradient bucket is a byte range of the grad arena
// and an optimizer update is one elementwise pass.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ops/tensor.h"

namespace convoy::ops {

class ExecContext;

// How a backend keeps a parameter in memory when that differs from the plain row-major layout
// (oneDNN picks blocked convolution weights). pack/unpack convert the plain layout (OIHW for
// convolution weights, PyTorch's layout) in a host tensor to and from the packed layout in device
// memory (a flat f32 view of bytes()), and return when the conversion is done.
class PackedLayout {
 public:
  virtual ~PackedLayout() = default;
  virtual size_t bytes() const = 0;
  virtual void pack(ExecContext& ctx, const Tensor& plain_host, Tensor& packed) const = 0;
  virtual void unpack(ExecContext& ctx, const Tensor& packed, Tensor& plain_host) const = 0;
};

// What a parameter is, for initialization and for the optimizer's decay rules.
enum class ParamRole : uint8_t { weight, bias, bn_gamma, bn_beta, buffer };

enum class InitKind : uint8_t {
  zeros,
  ones,
  kaiming_normal_fan_out,  // N(0, 2 / fan_out): torchvision's ResNet convolutions
  kaiming_uniform_a_sqrt5, // PyTorch's default for Conv2d and Linear weights: U(±1/sqrt(fan_in))
  uniform_fan_in,          // PyTorch's default for biases: U(±1/sqrt(fan_in))
  kaiming_normal_fan_in,   // N(0, 2 / fan_in): torchvision's DenseNet convolutions
  normal_0_01,             // N(0, 0.01^2): torchvision's VGG linear layers; GoogLeNet's trunc_normal(std=0.01)
                           // truncated at +-2, which at that std no draw reaches
  xavier_uniform,          // U(±sqrt(6 / (fan_in + fan_out))): d2l's init_cnn (NiN)
};

struct ArenaEntry {
  std::string name;    // torchvision name: "layer1.0.conv1.weight"
  Shape shape;         // logical (PyTorch) shape: OIHW for convolution weights
  DType dtype = DType::f32;
  ParamRole role = ParamRole::weight;
  InitKind init = InitKind::zeros;
  int64_t fan_in = 0, fan_out = 0;
  size_t offset = 0;   // bytes from the arena's start (64-byte aligned)
  size_t bytes = 0;    // bytes in this arena (the packed size when packed)
  std::shared_ptr<const PackedLayout> packing;  // null: plain row-major layout

  int64_t numel() const { return shape.numel(); }
};

class ArenaLayout {
 public:
  // Adds an entry and returns its index; offsets are assigned in order of addition.
  size_t add(ArenaEntry entry);
  const std::vector<ArenaEntry>& entries() const { return entries_; }
  const ArenaEntry& entry(size_t i) const { return entries_.at(i); }
  // Index of the named entry; throws with the name when it is missing.
  size_t index_of(const std::string& name) const;
  bool contains(const std::string& name) const;
  size_t total_bytes() const { return total_bytes_; }
  int64_t total_numel() const;  // sum of logical element counts (the parameter count)

 private:
  std::vector<ArenaEntry> entries_;
  size_t total_bytes_ = 0;
};

class Arena {
 public:
  Arena() = default;
  Arena(const ArenaLayout& layout, Allocator& alloc);

  const ArenaLayout& layout() const { return *layout_; }
  // The whole arena as one flat f32 tensor (for elementwise passes and all-reduce slices).
  const Tensor& flat() const { return all_; }
  // Entry i's memory: packed entries come as a flat 1-d f32 view of their packed size.
  Tensor view(size_t i) const;
  Tensor view(const std::string& name) const { return view(layout_->index_of(name)); }

 private:
  const ArenaLayout* layout_ = nullptr;
  Tensor all_;
};

}  // namespace convoy::ops
