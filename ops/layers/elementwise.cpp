// Layers that act elementwise: ReLU, residual add (optionally with the block's ReLU fused), dropout.
#include "ops/layer.h"

namespace convoy::ops {
namespace {

class Relu final : public Layer {
 public:
  std::string_view type() const override { return "ReLU"; }
  Shape infer(std::span<const Shape> in) override {
    CONVOY_CHECK(in.size() == 1, "ReLU takes one input");
    shape_ = in[0];
    return shape_;
  }
  void build(Backend& be) override { kernel_ = be.relu(shape_, dtype()); }
  std::vector<std::string> implementations() const override { return kernel_->implementations(); }
  void forward(const RunContext& rc, std::span<const Tensor* const> x, Tensor& y) override {
    kernel_->forward(rc.ctx, *x[0], y);
  }
  void backward(const RunContext& rc, std::span<const Tensor* const>, const Tensor& y, const Tensor& dy,
                std::span<Tensor* const> dx, std::span<const bool> accumulate) override {
    if (dx[0]) kernel_->backward(rc.ctx, y, dy, *dx[0], accumulate[0]);
  }

 private:
  Shape shape_;
  std::unique_ptr<ReluKernel> kernel_;
};

// y = a + b (relu(a + b) when the ReLU after a residual add is fused).
class Add final : public Layer {
 public:
  std::string_view type() const override { return fuse_relu_ ? "Add+ReLU" : "Add"; }
  bool absorb_relu() override { return fuse_relu_ = true; }
  bool same_gradient_to_every_input() const override { return true; }
  Shape infer(std::span<const Shape> in) override {
    CONVOY_CHECK(in.size() == 2, "Add takes two inputs, got " << in.size());
    CONVOY_CHECK(in[0] == in[1], "Add needs inputs of one shape, got " << in[0].str() << " and " << in[1].str());
    shape_ = in[0];
    return shape_;
  }
  void build(Backend& be) override { kernel_ = be.add(shape_, fuse_relu_, dtype()); }
  std::vector<std::string> implementations() const override { return kernel_->implementations(); }
  void forward(const RunContext& rc, std::span<const Tensor* const> x, Tensor& y) override {
    kernel_->forward(rc.ctx, *x[0], *x[1], y);
  }
  void backward(const RunContext& rc, std::span<const Tensor* const>, const Tensor& y, const Tensor& dy,
                std::span<Tensor* const> dx, std::span<const bool> accumulate) override {
    kernel_->backward(rc.ctx, y, dy, dx[0], accumulate[0], dx[1], accumulate[1]);
  }

 private:
  bool fuse_relu_ = false;
  Shape shape_;
  std::unique_ptr<AddKernel> kernel_;
};

class Dropout final : public Layer {
 public:
  explicit Dropout(float p) : p_(p) {}
  std::string_view type() const override { return "Dropout"; }
  Shape infer(std::span<const Shape> in) override {
    CONVOY_CHECK(in.size() == 1, "Dropout takes one input");
    shape_ = in[0];
    return shape_;
  }
  void build(Backend& be) override {
    backend_ = &be;
    kernel_ = be.dropout(shape_, p_, dtype());
  }
  void forward(const RunContext& rc, std::span<const Tensor* const> x, Tensor& y) override {
    if (rc.training)
      kernel_->forward(rc.ctx, *x[0], y, rc.seed, rc.step);
    else
      backend_->copy(rc.ctx, *x[0], y);
  }
  void backward(const RunContext& rc, std::span<const Tensor* const>, const Tensor&, const Tensor& dy,
                std::span<Tensor* const> dx, std::span<const bool> accumulate) override {
    if (dx[0]) kernel_->backward(rc.ctx, dy, *dx[0], accumulate[0], rc.seed, rc.step);
  }

 private:
  float p_;
  Shape shape_;
  Backend* backend_ = nullptr;
  std::unique_ptr<DropoutKernel> kernel_;
};

}  // namespace

std::unique_ptr<Layer> relu() { return std::make_unique<Relu>(); }
std::unique_ptr<Layer> add() { return std::make_unique<Add>(); }
std::unique_ptr<Layer> dropout(float p) {
  CONVOY_CHECK(p >= 0.f && p < 1.f, "dropout probability must be in [0, 1), got " << p);
  return std::make_unique<Dropout>(p);
}

}  // namespace convoy::ops
