#include <vector>

#include "ops/layer.h"

namespace convoy::ops {
namespace {

// Channel concatenation (Inception branches, DenseNet): inputs (N, H, W, C_i) -> (N, H, W, sum C_i).
class Concat final : public Layer {
 public:
  std::string_view type() const override { return "Concat"; }
  Shape infer(std::span<const Shape> in) override {
    CONVOY_CHECK(!in.empty(), "Concat takes at least one input");
    inputs_.assign(in.begin(), in.end());
    Shape y = in[0];
    CONVOY_CHECK(y.rank() == 4, "Concat takes (N, H, W, C) inputs, got " << y.str());
    for (size_t i = 1; i < in.size(); ++i) {
      CONVOY_CHECK(in[i].rank() == 4 && in[i][0] == y[0] && in[i][1] == y[1] && in[i][2] == y[2],
                   "Concat inputs must agree in N, H, W: " << in[0].str() << " vs " << in[i].str());
      y[3] += in[i][3];
    }
    return y;
  }
  void build(Backend& be) override { kernel_ = be.concat(inputs_, dtype()); }
  std::vector<std::string> implementations() const override { return kernel_->implementations(); }
  void forward(const RunContext& rc, std::span<const Tensor* const> x, Tensor& y) override {
    kernel_->forward(rc.ctx, x, y);
  }
  void backward(const RunContext& rc, std::span<const Tensor* const>, const Tensor&, const Tensor& dy,
                std::span<Tensor* const> dx, std::span<const bool> accumulate) override {
    kernel_->backward(rc.ctx, dy, dx, accumulate);
  }

 private:
  std::vector<Shape> inputs_;
  std::unique_ptr<ConcatKernel> kernel_;
};

// Local response normalization across channels (AlexNet, GoogLeNet).
class Lrn final : public Layer {
 public:
  Lrn(int64_t size, float alpha, float beta, float k) { s_.size = size, s_.alpha = alpha, s_.beta = beta, s_.k = k; }
  std::string_view type() const override { return "LocalResponseNorm"; }
  Shape infer(std::span<const Shape> in) override {
    CONVOY_CHECK(in.size() == 1 && in[0].rank() == 4, "LocalResponseNorm takes one (N, H, W, C) input");
    s_.N = in[0][0], s_.H = in[0][1], s_.W = in[0][2], s_.C = in[0][3];
    return in[0];
  }
  void build(Backend& be) override {
    s_.dtype = dtype();
    kernel_ = be.lrn(s_);
    saved_ = Tensor::empty(Shape{static_cast<int64_t>(std::max<size_t>(kernel_->saved_bytes(), 1))}, DType::u8,
                           be.allocator());
  }
  std::vector<std::string> implementations() const override { return kernel_->implementations(); }
  void forward(const RunContext& rc, std::span<const Tensor* const> x, Tensor& y) override {
    kernel_->forward(rc.ctx, *x[0], y, saved_, rc.training);
  }
  void backward(const RunContext& rc, std::span<const Tensor* const> x, const Tensor&, const Tensor& dy,
                std::span<Tensor* const> dx, std::span<const bool> accumulate) override {
    if (dx[0]) kernel_->backward(rc.ctx, *x[0], dy, saved_, *dx[0], accumulate[0]);
  }

 private:
  LrnSpec s_;
  std::unique_ptr<LrnKernel> kernel_;
  Tensor saved_;
};

}  // namespace

std::unique_ptr<Layer> concat() { return std::make_unique<Concat>(); }
std::unique_ptr<Layer> local_response_norm(int64_t size, float alpha, float beta, float k) {
  CONVOY_CHECK(size > 0 && size % 2 == 1, "LocalResponseNorm needs an odd size, got " << size);
  return std::make_unique<Lrn>(size, alpha, beta, k);
}

}  // namespace convoy::ops
