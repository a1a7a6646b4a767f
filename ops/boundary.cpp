#include "ops/boundary.h"

#include <vector>

namespace convoy::ops {

void check_device(const Tensor& t, Device device, const char* kernel, const char* arg) {
  if (!t.defined() || t.device() == device) return;
  CONVOY_FAIL(kernel << ": " << arg << " lives on " << t.device().str() << ", but this kernel takes "
                     << device.str() << " tensors (move it with Backend::copy first)");
}

Tensor Boundary::pass(const Tensor& t, const char* kernel, const char* arg) const {
  check_device(t, device(), kernel, arg);
  if (!t.defined()) return t;
  expose(t);
  return t.relabeled(inner_device());
}

Tensor Boundary::pass_host_or_device(const Tensor& t, const char* kernel, const char* arg) const {
  if (t.defined() && t.device().is_cpu()) return t;
  return pass(t, kernel, arg);
}

namespace {

// Each wrapper keeps the inner kernel and the boundary; P(t, "name") checks and relabels one argument.
#define P(t, arg) b_.pass(t, kKernel, arg)

class GuardedLayout final : public PackedLayout {
 public:
  GuardedLayout(std::shared_ptr<const PackedLayout> in, Boundary& b) : in_(std::move(in)), b_(b) {}
  size_t bytes() const override { return in_->bytes(); }
  void pack(ExecContext& ctx, const Tensor& plain_host, Tensor& packed) const override {
    check_device(plain_host, Device{}, kKernel, "the plain weights");
    Boundary::Scope s(b_);
    Tensor p = P(packed, "the packed weights");
    in_->pack(b_.inner(ctx), plain_host, p);
  }
  void unpack(ExecContext& ctx, const Tensor& packed, Tensor& plain_host) const override {
    check_device(plain_host, Device{}, kKernel, "the plain weights");
    Boundary::Scope s(b_);
    in_->unpack(b_.inner(ctx), P(packed, "the packed weights"), plain_host);
  }

 private:
  static constexpr const char* kKernel = "weight packing";
  std::shared_ptr<const PackedLayout> in_;
  Boundary& b_;
};

// Convolution and linear kernels share one interface shape (packed weights, forward, backward).
template <typename Kernel>
class GuardedWeighted final : public Kernel {
 public:
  GuardedWeighted(std::unique_ptr<Kernel> in, Boundary& b, const char* name)
      : in_(std::move(in)), b_(b), layout_(guard(in_->weight_layout(), b)), kKernel(name) {}
  std::shared_ptr<const PackedLayout> weight_layout() const override { return layout_; }
  void forward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) override {
    Boundary::Scope s(b_);
    Tensor yi = P(y, "y");
    in_->forward(b_.inner(ctx), P(x, "x"), P(w, "w"), P(bias, "bias"), yi);
  }
  void backward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& dy, Tensor* dx,
                bool accumulate_dx, Tensor& dw, Tensor* db) override {
    Boundary::Scope s(b_);
    Tensor dxi = dx ? P(*dx, "dx") : Tensor(), dwi = P(dw, "dw"), dbi = db ? P(*db, "db") : Tensor();
    in_->backward(b_.inner(ctx), P(x, "x"), P(w, "w"), P(y, "y"), P(dy, "dy"), dx ? &dxi : nullptr, accumulate_dx,
                  dwi, db ? &dbi : nullptr);
  }
  std::vector<std::string> implementations() const override { return in_->implementations(); }

 private:
  std::unique_ptr<Kernel> in_;
  Boundary& b_;
  std::shared_ptr<const PackedLayout> layout_;
  const char* kKernel;
};

class GuardedBatchNorm final : public BatchNormKernel {
 public:
  GuardedBatchNorm(std::unique_ptr<BatchNormKernel> in, Boundary& b) : in_(std::move(in)), b_(b) {}
  size_t saved_bytes() const override { return in_->saved_bytes(); }
  void forward_train(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y,
                     Tensor& saved_mean, Tensor& saved_var, Tensor& saved, Tensor& running_mean, Tensor& running_var,
                     Tensor& num_batches_tracked) override {
    Boundary::Scope s(b_);
    Tensor yi = P(y, "y"), m = P(saved_mean, "saved_mean"), v = P(saved_var, "saved_var"), sv = P(saved, "saved");
    Tensor rm = P(running_mean, "running_mean"), rv = P(running_var, "running_var");
    Tensor nbt = P(num_batches_tracked, "num_batches_tracked");
    in_->forward_train(b_.inner(ctx), P(x, "x"), P(gamma, "gamma"), P(beta, "beta"), yi, m, v, sv, rm, rv, nbt);
  }
  void forward_eval(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                    const Tensor& running_mean, const Tensor& running_var, Tensor& y) override {
    Boundary::Scope s(b_);
    Tensor yi = P(y, "y");
    in_->forward_eval(b_.inner(ctx), P(x, "x"), P(gamma, "gamma"), P(beta, "beta"), P(running_mean, "running_mean"),
                      P(running_var, "running_var"), yi);
  }
  void backward(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                const Tensor& saved_mean, const Tensor& saved_var, const Tensor& saved, const Tensor& dy, Tensor* dx,
                bool accumulate_dx, Tensor& dgamma, Tensor& dbeta) override {
    Boundary::Scope s(b_);
    Tensor dxi = dx ? P(*dx, "dx") : Tensor(), dg = P(dgamma, "dgamma"), dbt = P(dbeta, "dbeta");
    in_->backward(b_.inner(ctx), P(x, "x"), P(gamma, "gamma"), P(beta, "beta"), P(y, "y"), P(saved_mean, "saved_mean"),
                  P(saved_var, "saved_var"), P(saved, "saved"), P(dy, "dy"), dx ? &dxi : nullptr, accumulate_dx, dg,
                  dbt);
  }
  std::vector<std::string> implementations() const override { return in_->implementations(); }

 private:
  static constexpr const char* kKernel = "batch norm";
  std::unique_ptr<BatchNormKernel> in_;
  Boundary& b_;
};

class GuardedPool final : public PoolKernel {
 public:
  GuardedPool(std::unique_ptr<PoolKernel> in, Boundary& b) : in_(std::move(in)), b_(b) {}
  size_t saved_bytes() const override { return in_->saved_bytes(); }
  void forward(ExecContext& ctx, const Tensor& x, Tensor& y, Tensor& saved, bool training) override {
    Boundary::Scope s(b_);
    Tensor yi = P(y, "y"), sv = P(saved, "saved");
    in_->forward(b_.inner(ctx), P(x, "x"), yi, sv, training);
  }
  void backward(ExecContext& ctx, const Tensor& dy, const Tensor& saved, Tensor& dx, bool accumulate_dx) override {
    Boundary::Scope s(b_);
    Tensor dxi = P(dx, "dx");
    in_->backward(b_.inner(ctx), P(dy, "dy"), P(saved, "saved"), dxi, accumulate_dx);
  }
  std::vector<std::string> implementations() const override { return in_->implementations(); }

 private:
  static constexpr const char* kKernel = "pooling";
  std::unique_ptr<PoolKernel> in_;
  Boundary& b_;
};

class GuardedSyncBatchNorm final : public SyncBatchNormKernel {
 public:
  GuardedSyncBatchNorm(std::unique_ptr<SyncBatchNormKernel> in, Boundary& b) : in_(std::move(in)), b_(b) {}
  void moments(ExecContext& ctx, const Tensor& x, Tensor& sums) override {
    Boundary::Scope s(b_);
    Tensor si = P(sums, "sums");
    in_->moments(b_.inner(ctx), P(x, "x"), si);
  }
  void normalize(ExecContext& ctx, const Tensor& x, const Tensor& sums, int64_t count, const Tensor& gamma,
                 const Tensor& beta, Tensor& y, Tensor& saved_mean, Tensor& saved_var, Tensor& running_mean,
                 Tensor& running_var, Tensor& num_batches_tracked) override {
    Boundary::Scope s(b_);
    Tensor yi = P(y, "y"), sm = P(saved_mean, "saved_mean"), sv = P(saved_var, "saved_var");
    Tensor rm = P(running_mean, "running_mean"), rv = P(running_var, "running_var");
    Tensor nb = P(num_batches_tracked, "num_batches_tracked");
    in_->normalize(b_.inner(ctx), P(x, "x"), P(sums, "sums"), count, P(gamma, "gamma"), P(beta, "beta"), yi, sm, sv,
                   rm, rv, nb);
  }
  void grad_moments(ExecContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy, const Tensor& saved_mean,
                    const Tensor& saved_var, Tensor& sums, Tensor& dgamma, Tensor& dbeta) override {
    Boundary::Scope s(b_);
    Tensor si = P(sums, "sums"), dg = P(dgamma, "dgamma"), db = P(dbeta, "dbeta");
    in_->grad_moments(b_.inner(ctx), P(x, "x"), P(y, "y"), P(dy, "dy"), P(saved_mean, "saved_mean"),
                      P(saved_var, "saved_var"), si, dg, db);
  }
  void grad_input(ExecContext& ctx, const Tensor& x, const Tensor& y, const Tensor& dy, const Tensor& gamma,
                  const Tensor& saved_mean, const Tensor& saved_var, const Tensor& sums, int64_t count, Tensor* dx,
                  bool accumulate_dx) override {
    Boundary::Scope s(b_);
    Tensor dxi = dx ? P(*dx, "dx") : Tensor();
    in_->grad_input(b_.inner(ctx), P(x, "x"), P(y, "y"), P(dy, "dy"), P(gamma, "gamma"), P(saved_mean, "saved_mean"),
                    P(saved_var, "saved_var"), P(sums, "sums"), count, dx ? &dxi : nullptr, accumulate_dx);
  }

 private:
  static constexpr const char* kKernel = "sync batch norm";
  std::unique_ptr<SyncBatchNormKernel> in_;
  Boundary& b_;
};

class GuardedAdaptivePool final : public AdaptivePoolKernel {
 public:
  GuardedAdaptivePool(std::unique_ptr<AdaptivePoolKernel> in, Boundary& b) : in_(std::move(in)), b_(b) {}
  void forward(ExecContext& ctx, const Tensor& x, Tensor& y) override {
    Boundary::Scope s(b_);
    Tensor yi = P(y, "y");
    in_->forward(b_.inner(ctx), P(x, "x"), yi);
  }
  void backward(ExecContext& ctx, const Tensor& dy, Tensor& dx, bool accumulate_dx) override {
    Boundary::Scope s(b_);
    Tensor dxi = P(dx, "dx");
    in_->backward(b_.inner(ctx), P(dy, "dy"), dxi, accumulate_dx);
  }
  std::vector<std::string> implementations() const override { return in_->implementations(); }

 private:
  static constexpr const char* kKernel = "adaptive pooling";
  std::unique_ptr<AdaptivePoolKernel> in_;
  Boundary& b_;
};

class GuardedRelu final : public ReluKernel {
 public:
  GuardedRelu(std::unique_ptr<ReluKernel> in, Boundary& b) : in_(std::move(in)), b_(b) {}
  void forward(ExecContext& ctx, const Tensor& x, Tensor& y) override {
    Boundary::Scope s(b_);
    Tensor yi = P(y, "y");
    in_->forward(b_.inner(ctx), P(x, "x"), yi);
  }
  void backward(ExecContext& ctx, const Tensor& y, const Tensor& dy, Tensor& dx, bool accumulate_dx) override {
    Boundary::Scope s(b_);
    Tensor dxi = P(dx, "dx");
    in_->backward(b_.inner(ctx), P(y, "y"), P(dy, "dy"), dxi, accumulate_dx);
  }
  std::vector<std::string> implementations() const override { return in_->implementations(); }

 private:
  static constexpr const char* kKernel = "ReLU";
  std::unique_ptr<ReluKernel> in_;
  Boundary& b_;
};

class GuardedAdd final : public AddKernel {
 public:
  GuardedAdd(std::unique_ptr<AddKernel> in, Boundary& b) : in_(std::move(in)), b_(b) {}
  void forward(ExecContext& ctx, const Tensor& a, const Tensor& bb, Tensor& y) override {
    Boundary::Scope s(b_);
    Tensor yi = P(y, "y");
    in_->forward(b_.inner(ctx), P(a, "a"), P(bb, "b"), yi);
  }
  void backward(ExecContext& ctx, const Tensor& y, const Tensor& dy, Tensor* da, bool accumulate_da, Tensor* db,
                bool accumulate_db) override {
    Boundary::Scope s(b_);
    Tensor dai = da ? P(*da, "da") : Tensor(), dbi = db ? P(*db, "db") : Tensor();
    in_->backward(b_.inner(ctx), P(y, "y"), P(dy, "dy"), da ? &dai : nullptr, accumulate_da, db ? &dbi : nullptr,
                  accumulate_db);
  }
  std::vector<std::string> implementations() const override { return in_->implementations(); }

 private:
  static constexpr const char* kKernel = "add";
  std::unique_ptr<AddKernel> in_;
  Boundary& b_;
};

// The relabelled inputs live in members sized on first use: the step loop never allocates.
class GuardedConcat final : public ConcatKernel {
 public:
  GuardedConcat(std::unique_ptr<ConcatKernel> in, Boundary& b) : in_(std::move(in)), b_(b) {}
  void forward(ExecContext& ctx, std::span<const Tensor* const> xs, Tensor& y) override {
    Boundary::Scope s(b_);
    resize(xs.size());
    for (size_t i = 0; i < xs.size(); ++i) {
      inner_[i] = P(*xs[i], "an input");
      cptr_[i] = &inner_[i];
    }
    Tensor yi = P(y, "y");
    in_->forward(b_.inner(ctx), cptr_, yi);
  }
  void backward(ExecContext& ctx, const Tensor& dy, std::span<Tensor* const> dxs,
                std::span<const bool> accumulate) override {
    Boundary::Scope s(b_);
    resize(dxs.size());
    for (size_t i = 0; i < dxs.size(); ++i) {
      inner_[i] = dxs[i] ? P(*dxs[i], "an input gradient") : Tensor();
      ptr_[i] = dxs[i] ? &inner_[i] : nullptr;
    }
    in_->backward(b_.inner(ctx), P(dy, "dy"), ptr_, accumulate);
  }
  std::vector<std::string> implementations() const override { return in_->implementations(); }

 private:
  void resize(size_t n) {
    if (inner_.size() == n) return;
    inner_.resize(n);
    cptr_.resize(n);
    ptr_.resize(n);
  }
  static constexpr const char* kKernel = "concat";
  std::unique_ptr<ConcatKernel> in_;
  Boundary& b_;
  std::vector<Tensor> inner_;
  std::vector<const Tensor*> cptr_;
  std::vector<Tensor*> ptr_;
};

class GuardedLrn final : public LrnKernel {
 public:
  GuardedLrn(std::unique_ptr<LrnKernel> in, Boundary& b) : in_(std::move(in)), b_(b) {}
  size_t saved_bytes() const override { return in_->saved_bytes(); }
  void forward(ExecContext& ctx, const Tensor& x, Tensor& y, Tensor& saved, bool training) override {
    Boundary::Scope s(b_);
    Tensor yi = P(y, "y"), sv = P(saved, "saved");
    in_->forward(b_.inner(ctx), P(x, "x"), yi, sv, training);
  }
  void backward(ExecContext& ctx, const Tensor& x, const Tensor& dy, const Tensor& saved, Tensor& dx,
                bool accumulate_dx) override {
    Boundary::Scope s(b_);
    Tensor dxi = P(dx, "dx");
    in_->backward(b_.inner(ctx), P(x, "x"), P(dy, "dy"), P(saved, "saved"), dxi, accumulate_dx);
  }
  std::vector<std::string> implementations() const override { return in_->implementations(); }

 private:
  static constexpr const char* kKernel = "local response norm";
  std::unique_ptr<LrnKernel> in_;
  Boundary& b_;
};

class GuardedDropout final : public DropoutKernel {
 public:
  GuardedDropout(std::unique_ptr<DropoutKernel> in, Boundary& b) : in_(std::move(in)), b_(b) {}
  void forward(ExecContext& ctx, const Tensor& x, Tensor& y, uint64_t seed, uint64_t step) override {
    Boundary::Scope s(b_);
    Tensor yi = P(y, "y");
    in_->forward(b_.inner(ctx), P(x, "x"), yi, seed, step);
  }
  void backward(ExecContext& ctx, const Tensor& dy, Tensor& dx, bool accumulate_dx, uint64_t seed,
                uint64_t step) override {
    Boundary::Scope s(b_);
    Tensor dxi = P(dx, "dx");
    in_->backward(b_.inner(ctx), P(dy, "dy"), dxi, accumulate_dx, seed, step);
  }

 private:
  static constexpr const char* kKernel = "dropout";
  std::unique_ptr<DropoutKernel> in_;
  Boundary& b_;
};

class GuardedLoss final : public SoftmaxCrossEntropyKernel {
 public:
  GuardedLoss(std::unique_ptr<SoftmaxCrossEntropyKernel> in, Boundary& b) : in_(std::move(in)), b_(b) {}
  using SoftmaxCrossEntropyKernel::forward_backward;
  void forward_backward(ExecContext& ctx, const Tensor& logits, const Tensor& labels, const LossTerms& terms,
                        Tensor& dlogits, Tensor& loss_sum, Tensor& nonfinite) override {
    Boundary::Scope s(b_);
    Tensor g = P(dlogits, "dlogits"), l = P(loss_sum, "loss_sum"), f = P(nonfinite, "nonfinite");
    Tensor teacher = terms.teacher ? P(*terms.teacher, "teacher") : Tensor();
    LossTerms inner = terms;
    inner.teacher = terms.teacher ? &teacher : nullptr;
    in_->forward_backward(b_.inner(ctx), P(logits, "logits"), P(labels, "labels"), inner, g, l, f);
  }
  void evaluate(ExecContext& ctx, const Tensor& logits, const Tensor& labels, const Tensor& valid,
                Tensor& sums) override {
    Boundary::Scope s(b_);
    Tensor si = P(sums, "sums");
    in_->evaluate(b_.inner(ctx), P(logits, "logits"), P(labels, "labels"), P(valid, "valid"), si);
  }

 private:
  static constexpr const char* kKernel = "softmax cross-entropy";
  std::unique_ptr<SoftmaxCrossEntropyKernel> in_;
  Boundary& b_;
};

#undef P

}  // namespace

std::unique_ptr<ConvKernel> guard(std::unique_ptr<ConvKernel> k, Boundary& b) {
  return std::make_unique<GuardedWeighted<ConvKernel>>(std::move(k), b, "convolution");
}
std::unique_ptr<BatchNormKernel> guard(std::unique_ptr<BatchNormKernel> k, Boundary& b) {
  return std::make_unique<GuardedBatchNorm>(std::move(k), b);
}
std::unique_ptr<PoolKernel> guard(std::unique_ptr<PoolKernel> k, Boundary& b) {
  return std::make_unique<GuardedPool>(std::move(k), b);
}
std::unique_ptr<SyncBatchNormKernel> guard(std::unique_ptr<SyncBatchNormKernel> k, Boundary& b) {
  return std::make_unique<GuardedSyncBatchNorm>(std::move(k), b);
}
std::unique_ptr<AdaptivePoolKernel> guard(std::unique_ptr<AdaptivePoolKernel> k, Boundary& b) {
  return std::make_unique<GuardedAdaptivePool>(std::move(k), b);
}
std::unique_ptr<LinearKernel> guard(std::unique_ptr<LinearKernel> k, Boundary& b) {
  return std::make_unique<GuardedWeighted<LinearKernel>>(std::move(k), b, "linear");
}
std::unique_ptr<ReluKernel> guard(std::unique_ptr<ReluKernel> k, Boundary& b) {
  return std::make_unique<GuardedRelu>(std::move(k), b);
}
std::unique_ptr<AddKernel> guard(std::unique_ptr<AddKernel> k, Boundary& b) {
  return std::make_unique<GuardedAdd>(std::move(k), b);
}
std::unique_ptr<ConcatKernel> guard(std::unique_ptr<ConcatKernel> k, Boundary& b) {
  return std::make_unique<GuardedConcat>(std::move(k), b);
}
std::unique_ptr<LrnKernel> guard(std::unique_ptr<LrnKernel> k, Boundary& b) {
  return std::make_unique<GuardedLrn>(std::move(k), b);
}
std::unique_ptr<DropoutKernel> guard(std::unique_ptr<DropoutKernel> k, Boundary& b) {
  return std::make_unique<GuardedDropout>(std::move(k), b);
}
std::unique_ptr<SoftmaxCrossEntropyKernel> guard(std::unique_ptr<SoftmaxCrossEntropyKernel> k, Boundary& b) {
  return std::make_unique<GuardedLoss>(std::move(k), b);
}
std::shared_ptr<const PackedLayout> guard(std::shared_ptr<const PackedLayout> layout, Boundary& b) {
  if (!layout) return layout;
  return std::make_shared<GuardedLayout>(std::move(layout), b);
}

}  // namespace convoy::ops
