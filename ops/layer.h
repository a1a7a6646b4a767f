// A layer: set-up (shape inference, kernel plans, parameter declarations), then forward and backward
// over tensors the graph owns. A layer has one output; it may take several inputs (add, concat).
// Backward overwrites every parameter gradient and, per input, overwrites or accumulates dx as the
// graph says (an activation that feeds several layers receives the sum of their gradients).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ops/arena.h"
#include "ops/backend.h"

namespace convoy::ops {

// Where a layer declares its parameters and buffers; names are suffixes ("weight") that the graph
// prefixes with the layer's name ("layer1.0.conv1.weight").
class ParamSink {
 public:
  virtual ~ParamSink() = default;
  virtual void param(const std::string& suffix, const Shape& shape, ParamRole role, InitKind init, int64_t fan_in,
                     int64_t fan_out, std::shared_ptr<const PackedLayout> packing = nullptr) = 0;
  virtual void buffer(const std::string& suffix, const Shape& shape, DType dtype, InitKind init) = 0;
};

struct RunContext {
  ExecContext& ctx;
  bool training = true;
  uint64_t seed = 0;  // dropout's stream
  uint64_t step = 0;  // forward passes in training so far
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::string_view type() const = 0;

  // Fuses a ReLU that follows this layer into it, if the backend can; called before infer().
  virtual bool absorb_relu() { return false; }
  // Whether backward writes one and the same gradient to every input (a sum's): the graph may then give
  // two of those inputs one gradient buffer (Graph::plan_gradients), and the layer must cope with
  // dx[i] and dx[j] being one tensor (write it once, or write it twice with the same values).
  virtual bool same_gradient_to_every_input() const { return false; }
  // SyncBN: batch statistics summed over ranks through `ranks` (batch norm layers take it; others ignore
  // it); called before build().
  virtual void use_cross_rank_sum(CrossRankSum*) {}
  // Output shape for these input shapes (activations NHWC with the batch first).
  virtual Shape infer(std::span<const Shape> inputs) = 0;
  // Multiply-accumulates of one forward pass at the inferred shapes.
  virtual int64_t macs() const { return 0; }
  // Builds the kernel plans and the forward-to-backward state; after infer().
  virtual void build(Backend&) {}
  // Declares parameters and buffers in a fixed order; after build() when there is a backend (packed
  // layouts are known then), right after infer() when only shapes are wanted.
  virtual void declare(ParamSink&) {}
  // The implementations its kernels run (oneDNN's names), for checks and reports.
  virtual std::vector<std::string> implementations() const { return {}; }

  virtual void forward(const RunContext& rc, std::span<const Tensor* const> x, Tensor& y) = 0;
  // x, y: the forward's inputs and output; dx[i] is null when input i needs no gradient.
  virtual void backward(const RunContext& rc, std::span<const Tensor* const> x, const Tensor& y, const Tensor& dy,
                        std::span<Tensor* const> dx, std::span<const bool> accumulate) = 0;

  // The element type of the activations and activation gradients this layer reads and writes, and of the
  // weight copies it computes with (f32, or bf16/f16 under mixed precision); the graph sets it before
  // build(). Parameter gradients, BN parameters and statistics stay f32.
  void set_dtype(DType t) { dtype_ = t; }
  DType dtype() const { return dtype_; }

  // The graph binds views of the arenas in declaration order.
  void bind(std::vector<Tensor> params, std::vector<Tensor> grads, std::vector<Tensor> buffers) {
    params_ = std::move(params);
    grads_ = std::move(grads);
    buffers_ = std::move(buffers);
  }

 protected:
  const Tensor& param(size_t i) const { return params_[i]; }
  Tensor& grad(size_t i) { return grads_[i]; }
  Tensor& buffer(size_t i) { return buffers_[i]; }

 private:
  std::vector<Tensor> params_, grads_, buffers_;
  DType dtype_ = DType::f32;
};

// --- the layers (ops/layers/*.cpp) ---

struct Conv2dOptions {
  int64_t out_channels = 1;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = false;
  InitKind init = InitKind::kaiming_uniform_a_sqrt5;  // PyTorch's default
  InitKind bias_init = InitKind::uniform_fan_in;      // PyTorch's default
};
// Square-kernel shorthand: conv_options(64, 3, 1, 1) is Conv2d(C, 64, 3, stride=1, padding=1).
Conv2dOptions conv_options(int64_t out_channels, int64_t kernel, int64_t stride = 1, int64_t padding = 0);

struct BatchNormOptions {
  float eps = 1e-5f;
  float momentum = 0.1f;
  bool zero_gamma = false;  // γ = 0 at init (Bag of Tricks: last BN of a residual block)
};

struct PoolOptions {
  int64_t kernel = 2, stride = 2, padding = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;
};

std::unique_ptr<Layer> conv2d(const Conv2dOptions& o);
std::unique_ptr<Layer> batch_norm(const BatchNormOptions& o = {});
std::unique_ptr<Layer> relu();
std::unique_ptr<Layer> max_pool2d(const PoolOptions& o);
std::unique_ptr<Layer> avg_pool2d(const PoolOptions& o);
std::unique_ptr<Layer> global_avg_pool();  // (N, H, W, C) -> (N, 1, 1, C)
// PyTorch's AdaptiveAvgPool2d((out_h, out_w)): windows of varying size that may overlap.
std::unique_ptr<Layer> adaptive_avg_pool2d(int64_t out_h, int64_t out_w);
// Input (N, C) or (N, H, W, C); weights in PyTorch's (out, C*H*W) NCHW-flatten order.
std::unique_ptr<Layer> linear(int64_t out_features, bool bias = true);
struct LinearOptions {
  int64_t out_features = 1;
  bool bias = true;
  InitKind init = InitKind::kaiming_uniform_a_sqrt5;  // PyTorch's defaults
  InitKind bias_init = InitKind::uniform_fan_in;
};
std::unique_ptr<Layer> linear(const LinearOptions& o);
std::unique_ptr<Layer> dropout(float p);
std::unique_ptr<Layer> local_response_norm(int64_t size, float alpha = 1e-4f, float beta = 0.75f, float k = 1.f);
std::unique_ptr<Layer> concat();  // along channels
std::unique_ptr<Layer> add();     // two inputs of one shape

}  // namespace convoy::ops
