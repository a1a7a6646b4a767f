#include "ops/layer.h"

namespace convoy::ops {
namespace {

// y = conv(x, w) + b, optionally relu'd. x: (N, H, W, C)  w: (K, C/groups, R, S)  y: (N, OH, OW, K).
class Conv2d final : public Layer {
 public:
  explicit Conv2d(const Conv2dOptions& o) : o_(o) {}
  std::string_view type() const override { return fuse_relu_ ? "Conv2d+ReLU" : "Conv2d"; }
  bool absorb_relu() override { return fuse_relu_ = true; }

  Shape infer(std::span<const Shape> in) override {
    CONVOY_CHECK(in.size() == 1 && in[0].rank() == 4, "Conv2d takes one (N, H, W, C) input");
    s_.N = in[0][0], s_.H = in[0][1], s_.W = in[0][2], s_.C = in[0][3];
    s_.K = o_.out_channels, s_.R = o_.kernel_h, s_.S = o_.kernel_w;
    s_.stride_h = s_.stride_w = o_.stride;
    s_.pad_h = s_.pad_w = o_.padding;
    s_.dilation_h = s_.dilation_w = o_.dilation;
    s_.groups = o_.groups;
    s_.bias = o_.bias;
    s_.fuse_relu = fuse_relu_;
    CONVOY_CHECK(s_.C % s_.groups == 0 && s_.K % s_.groups == 0,
                 "Conv2d channels (" << s_.C << " in, " << s_.K << " out) must divide by groups=" << s_.groups);
    CONVOY_CHECK(s_.out_h() > 0 && s_.out_w() > 0, "Conv2d with a " << s_.R << "x" << s_.S << " kernel on a "
                                                                    << s_.H << "x" << s_.W
                                                                    << " input gives an empty output");
    return Shape{s_.N, s_.out_h(), s_.out_w(), s_.K};
  }

  int64_t macs() const override {
    return s_.N * s_.out_h() * s_.out_w() * s_.K * (s_.C / s_.groups) * s_.R * s_.S;
  }

  void build(Backend& be) override {
    s_.dtype = dtype();
    kernel_ = be.conv2d(s_);
  }

  void declare(ParamSink& sink) override {
    int64_t fan_in = (s_.C / s_.groups) * s_.R * s_.S, fan_out = s_.K * s_.R * s_.S;
    sink.param("weight", s_.weight_shape(), ParamRole::weight, o_.init, fan_in, fan_out,
               kernel_ ? kernel_->weight_layout() : nullptr);
    if (s_.bias) sink.param("bias", Shape{s_.K}, ParamRole::bias, o_.bias_init, fan_in, fan_out);
  }

  std::vector<std::string> implementations() const override { return kernel_->implementations(); }

  void forward(const RunContext& rc, std::span<const Tensor* const> x, Tensor& y) override {
    kernel_->forward(rc.ctx, *x[0], param(0), s_.bias ? param(1) : Tensor(), y);
  }

  void backward(const RunContext& rc, std::span<const Tensor* const> x, const Tensor& y, const Tensor& dy,
                std::span<Tensor* const> dx, std::span<const bool> accumulate) override {
    kernel_->backward(rc.ctx, *x[0], param(0), y, dy, dx[0], accumulate[0], grad(0), s_.bias ? &grad(1) : nullptr);
  }

 private:
  Conv2dOptions o_;
  bool fuse_relu_ = false;
  ConvSpec s_;
  std::unique_ptr<ConvKernel> kernel_;
};

}  // namespace

Conv2dOptions conv_options(int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding) {
  Conv2dOptions o;
  o.out_channels = out_channels;
  o.kernel_h = o.kernel_w = kernel;
  o.stride = stride;
  o.padding = padding;
  return o;
}

std::unique_ptr<Layer> conv2d(const Conv2dOptions& o) {
  CONVOY_CHECK(o.out_channels > 0 && o.kernel_h > 0 && o.kernel_w > 0 && o.stride > 0 && o.padding >= 0 &&
                   o.dilation > 0 && o.groups > 0,
               "Conv2d options must be positive (padding non-negative)");
  return std::make_unique<Conv2d>(o);
}

}  // namespace convoy::ops
