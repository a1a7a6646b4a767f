#include "ops/layer.h"

namespace convoy::ops {
namespace {

// Max / average pooling with PyTorch's output sizes; x: (N, H, W, C)  y: (N, OH, OW, C).
class Pool2d final : public Layer {
 public:
  Pool2d(PoolKind kind, const PoolOptions& o, bool global) : kind_(kind), o_(o), global_(global) {}
  std::string_view type() const override {
    return global_ ? "GlobalAvgPool" : kind_ == PoolKind::max ? "MaxPool2d" : "AvgPool2d";
  }

  Shape infer(std::span<const Shape> in) override {
    CONVOY_CHECK(in.size() == 1 && in[0].rank() == 4, type() << " takes one (N, H, W, C) input");
    s_.N = in[0][0], s_.H = in[0][1], s_.W = in[0][2], s_.C = in[0][3];
    s_.kind = kind_;
    if (global_) {
      s_.kh = s_.stride_h = s_.H;
      s_.kw = s_.stride_w = s_.W;
    } else {
      s_.kh = s_.kw = o_.kernel;
      s_.stride_h = s_.stride_w = o_.stride;
      s_.pad_h = s_.pad_w = o_.padding;
      s_.ceil_mode = o_.ceil_mode;
      s_.count_include_pad = o_.count_include_pad;
    }
    CONVOY_CHECK(s_.out_h() > 0 && s_.out_w() > 0, type() << " with a " << s_.kh << "x" << s_.kw << " window on a "
                                                          << s_.H << "x" << s_.W << " input gives an empty output");
    return Shape{s_.N, s_.out_h(), s_.out_w(), s_.C};
  }

  void build(Backend& be) override {
    s_.dtype = dtype();
    kernel_ = be.pool2d(s_);
    saved_ = Tensor::empty(Shape{static_cast<int64_t>(std::max<size_t>(kernel_->saved_bytes(), 1))}, DType::u8,
                           be.allocator());
  }

  std::vector<std::string> implementations() const override { return kernel_->implementations(); }

  void forward(const RunContext& rc, std::span<const Tensor* const> x, Tensor& y) override {
    kernel_->forward(rc.ctx, *x[0], y, saved_, rc.training);
  }

  void backward(const RunContext& rc, std::span<const Tensor* const>, const Tensor&, const Tensor& dy,
                std::span<Tensor* const> dx, std::span<const bool> accumulate) override {
    if (dx[0]) kernel_->backward(rc.ctx, dy, saved_, *dx[0], accumulate[0]);
  }

 private:
  PoolKind kind_;
  PoolOptions o_;
  bool global_;
  PoolSpec s_;
  std::unique_ptr<PoolKernel> kernel_;
  Tensor saved_;  // max pooling's argmax
};

void check(const PoolOptions& o) {
  CONVOY_CHECK(o.kernel > 0 && o.stride > 0 && o.padding >= 0 && o.padding * 2 <= o.kernel,
               "pooling needs kernel, stride > 0 and 0 <= padding <= kernel/2, got kernel="
                   << o.kernel << " stride=" << o.stride << " padding=" << o.padding);
}

}  // namespace

std::unique_ptr<Layer> max_pool2d(const PoolOptions& o) {
  check(o);
  return std::make_unique<Pool2d>(PoolKind::max, o, false);
}
std::unique_ptr<Layer> avg_pool2d(const PoolOptions& o) {
  check(o);
  return std::make_unique<Pool2d>(PoolKind::avg, o, false);
}
namespace {
// PyTorch's AdaptiveAvgPool2d((OH, OW)): torchvision's AlexNet (6x6) and VGG (7x7) heads.
class AdaptiveAvgPool2d final : public Layer {
 public:
  AdaptiveAvgPool2d(int64_t oh, int64_t ow) { s_.OH = oh, s_.OW = ow; }
  std::string_view type() const override { return "AdaptiveAvgPool2d"; }
  Shape infer(std::span<const Shape> in) override {
    CONVOY_CHECK(in.size() == 1 && in[0].rank() == 4, "AdaptiveAvgPool2d takes one (N, H, W, C) input");
    s_.N = in[0][0], s_.H = in[0][1], s_.W = in[0][2], s_.C = in[0][3];
    return Shape{s_.N, s_.OH, s_.OW, s_.C};
  }
  void build(Backend& be) override {
    s_.dtype = dtype();
    kernel_ = be.adaptive_avg_pool2d(s_);
  }
  std::vector<std::string> implementations() const override { return kernel_->implementations(); }
  void forward(const RunContext& rc, std::span<const Tensor* const> x, Tensor& y) override {
    kernel_->forward(rc.ctx, *x[0], y);
  }
  void backward(const RunContext& rc, std::span<const Tensor* const>, const Tensor&, const Tensor& dy,
                std::span<Tensor* const> dx, std::span<const bool> accumulate) override {
    if (dx[0]) kernel_->backward(rc.ctx, dy, *dx[0], accumulate[0]);
  }

 private:
  AdaptivePoolSpec s_;
  std::unique_ptr<AdaptivePoolKernel> kernel_;
};
}  // namespace

std::unique_ptr<Layer> adaptive_avg_pool2d(int64_t out_h, int64_t out_w) {
  CONVOY_CHECK(out_h > 0 && out_w > 0, "AdaptiveAvgPool2d output must be positive, got " << out_h << "x" << out_w);
  return std::make_unique<AdaptiveAvgPool2d>(out_h, out_w);
}

std::unique_ptr<Layer> global_avg_pool() { return std::make_unique<Pool2d>(PoolKind::avg, PoolOptions{}, true); }

}  // namespace convoy::ops
