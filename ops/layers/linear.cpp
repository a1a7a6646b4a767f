#include "ops/layer.h"

namespace convoy::ops {
namespace {

// y = x w^T + b, optionally relu'd. x: (N, C) or (N, H, W, C)  w: (K, C*H*W) in NCHW-flatten order  y: (N, K).
class Linear final : public Layer {
 public:
  explicit Linear(const LinearOptions& o) : out_(o.out_features), bias_(o.bias), o_(o) {}
  std::string_view type() const override { return s_.fuse_relu ? "Linear+ReLU" : "Linear"; }
  bool absorb_relu() override { return s_.fuse_relu = true; }

  Shape infer(std::span<const Shape> in) override {
    CONVOY_CHECK(in.size() == 1 && (in[0].rank() == 2 || in[0].rank() == 4),
                 "Linear takes one (N, C) or (N, H, W, C) input");
    s_.N = in[0][0];
    s_.in = Shape(in[0].begin() + 1, in[0].end());
    s_.K = out_;
    s_.bias = bias_;
    return Shape{s_.N, s_.K};
  }

  int64_t macs() const override { return s_.N * s_.K * s_.in_features(); }

  void build(Backend& be) override {
    s_.dtype = dtype();
    kernel_ = be.linear(s_);
  }

  void declare(ParamSink& sink) override {
    int64_t fan_in = s_.in_features();
    sink.param("weight", Shape{s_.K, fan_in}, ParamRole::weight, o_.init, fan_in, s_.K,
               kernel_ ? kernel_->weight_layout() : nullptr);
    if (bias_) sink.param("bias", Shape{s_.K}, ParamRole::bias, o_.bias_init, fan_in, s_.K);
  }

  std::vector<std::string> implementations() const override { return kernel_->implementations(); }

  void forward(const RunContext& rc, std::span<const Tensor* const> x, Tensor& y) override {
    kernel_->forward(rc.ctx, *x[0], param(0), bias_ ? param(1) : Tensor(), y);
  }

  void backward(const RunContext& rc, std::span<const Tensor* const> x, const Tensor& y, const Tensor& dy,
                std::span<Tensor* const> dx, std::span<const bool> accumulate) override {
    kernel_->backward(rc.ctx, *x[0], param(0), y, dy, dx[0], accumulate[0], grad(0), bias_ ? &grad(1) : nullptr);
  }

 private:
  int64_t out_;
  bool bias_;
  LinearOptions o_;
  LinearSpec s_;
  std::unique_ptr<LinearKernel> kernel_;
};

}  // namespace

std::unique_ptr<Layer> linear(const LinearOptions& o) {
  CONVOY_CHECK(o.out_features > 0, "Linear needs out_features > 0, got " << o.out_features);
  return std::make_unique<Linear>(o);
}

std::unique_ptr<Layer> linear(int64_t out_features, bool bias) {
  LinearOptions o;
  o.out_features = out_features;
  o.bias = bias;
  return linear(o);
}

}  // namespace convoy::ops
