#include "ops/layer.h"

namespace convoy::ops {
namespace {

// Batch normalization over N, H, W per channel; x, y: (N, H, W, C) or (N, C). Training uses the batch's
// statistics and updates the running ones; evaluation uses the running ones.
class BatchNorm final : public Layer {
 public:
  explicit BatchNorm(const BatchNormOptions& o) : o_(o) {}
  std::string_view type() const override { return s_.fuse_relu ? "BatchNorm+ReLU" : "BatchNorm"; }
  bool absorb_relu() override { return s_.fuse_relu = true; }
  void use_cross_rank_sum(CrossRankSum* ranks) override { ranks_ = ranks; }

  Shape infer(std::span<const Shape> in) override {
    CONVOY_CHECK(in.size() == 1 && (in[0].rank() == 4 || in[0].rank() == 2),
                 "BatchNorm takes one (N, H, W, C) or (N, C) input");
    const Shape& x = in[0];
    s_.N = x[0];
    s_.H = x.rank() == 4 ? x[1] : 1;
    s_.W = x.rank() == 4 ? x[2] : 1;
    s_.C = x[x.rank() - 1];
    s_.eps = o_.eps;
    s_.momentum = o_.momentum;
    return x;
  }

  void build(Backend& be) override {
    s_.dtype = dtype();
    kernel_ = be.batch_norm(s_);
    mean_ = Tensor::empty(Shape{s_.C}, DType::f32, be.allocator());
    var_ = Tensor::empty(Shape{s_.C}, DType::f32, be.allocator());
    saved_ = Tensor::empty(Shape{static_cast<int64_t>(std::max<size_t>(kernel_->saved_bytes(), 1))}, DType::u8,
                           be.allocator());
    if (ranks_ && ranks_->ranks() > 1) {  // SyncBN; evaluation keeps the plain kernel (running statistics)
      sync_ = be.sync_batch_norm(s_);
      sums_ = Tensor::empty(Shape{2 * s_.C}, DType::f64, be.allocator());
      count_ = s_.N * s_.H * s_.W * ranks_->ranks();
    }
  }

  void declare(ParamSink& sink) override {
    sink.param("weight", Shape{s_.C}, ParamRole::bn_gamma, o_.zero_gamma ? InitKind::zeros : InitKind::ones, 0, 0);
    sink.param("bias", Shape{s_.C}, ParamRole::bn_beta, InitKind::zeros, 0, 0);
    sink.buffer("running_mean", Shape{s_.C}, DType::f32, InitKind::zeros);
    sink.buffer("running_var", Shape{s_.C}, DType::f32, InitKind::ones);
    sink.buffer("num_batches_tracked", Shape{}, DType::i64, InitKind::zeros);
  }

  std::vector<std::string> implementations() const override { return kernel_->implementations(); }

  void forward(const RunContext& rc, std::span<const Tensor* const> x, Tensor& y) override {
    if (rc.training && sync_) {
      sync_->moments(rc.ctx, *x[0], sums_);
      ranks_->sum(rc.ctx, sums_, "sync batch norm statistics");
      sync_->normalize(rc.ctx, *x[0], sums_, count_, param(0), param(1), y, mean_, var_, buffer(0), buffer(1),
                       buffer(2));
    } else if (rc.training)
      kernel_->forward_train(rc.ctx, *x[0], param(0), param(1), y, mean_, var_, saved_, buffer(0), buffer(1),
                             buffer(2));
    else
      kernel_->forward_eval(rc.ctx, *x[0], param(0), param(1), buffer(0), buffer(1), y);
  }

  void backward(const RunContext& rc, std::span<const Tensor* const> x, const Tensor& y, const Tensor& dy,
                std::span<Tensor* const> dx, std::span<const bool> accumulate) override {
    if (sync_) {
      sync_->grad_moments(rc.ctx, *x[0], y, dy, mean_, var_, sums_, grad(0), grad(1));
      ranks_->sum(rc.ctx, sums_, "sync batch norm gradient sums");
      sync_->grad_input(rc.ctx, *x[0], y, dy, param(0), mean_, var_, sums_, count_, dx[0], accumulate[0]);
      return;
    }
    kernel_->backward(rc.ctx, *x[0], param(0), param(1), y, mean_, var_, saved_, dy, dx[0], accumulate[0], grad(0),
                      grad(1));
  }

 private:
  BatchNormOptions o_;
  BatchNormSpec s_;
  std::unique_ptr<BatchNormKernel> kernel_;
  Tensor mean_, var_, saved_;  // the batch statistics and ReLU mask, kept for backward
  CrossRankSum* ranks_ = nullptr;            // SyncBN: the sum over ranks
  std::unique_ptr<SyncBatchNormKernel> sync_;
  Tensor sums_;                              // its moments (2C f64), summed over ranks in place
  int64_t count_ = 0;                        // values per channel over all ranks
};

}  // namespace

std::unique_ptr<Layer> batch_norm(const BatchNormOptions& o) {
  CONVOY_CHECK(o.eps > 0.f && o.momentum >= 0.f && o.momentum <= 1.f,
               "BatchNorm needs eps > 0 and momentum in [0, 1], got eps=" << o.eps << " momentum=" << o.momentum);
  return std::make_unique<BatchNorm>(o);
}

}  // namespace convoy::ops
