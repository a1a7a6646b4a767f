// The strict device (train.device: cpu-strict): the CPU backend's kernels behind a device boundary of
// their own. Its tensors live on Device{strict}, so host<T>() refuses them; its kernels refuse host
// tensors; and its memory (ops/strict/strict_memory.h) is readable only while one of its kernels runs,
// so a stray host read through .data() faults. The whole trainer runs on it in CI: any code above the
// kernels that still assumes host pointers fails there, loudly, before a GPU ever runs it.
#include <cstring>

#include "ops/backend.h"
#include "ops/boundary.h"
#include "ops/strict/strict_memory.h"

namespace convoy::ops::strict {
namespace {

constexpr Device kStrict{DeviceKind::strict, 0};

// A strict context wraps one of the CPU backend's contexts, which the inner kernels run on.
class StrictContext final : public ExecContext {
 public:
  explicit StrictContext(ExecContext& inner) : inner_(inner) {}
  explicit StrictContext(std::unique_ptr<ExecContext> owned) : owned_(std::move(owned)), inner_(*owned_) {}
  Device device() const override { return kStrict; }
  void synchronize() override { inner_.synchronize(); }
  void* workspace(size_t bytes) override { return inner_.workspace(bytes); }
  ExecContext& inner() { return inner_; }

 private:
  std::unique_ptr<ExecContext> owned_;
  ExecContext& inner_;
};

class StrictBoundary final : public Boundary {
 public:
  explicit StrictBoundary(StrictMemory& memory) : memory_(memory) {}
  Device device() const override { return kStrict; }
  Device inner_device() const override { return Device{}; }
  ExecContext& inner(ExecContext& ctx) override {
    CONVOY_CHECK(ctx.device() == kStrict, "a cpu-strict kernel was given a context of " << ctx.device().str());
    return static_cast<StrictContext&>(ctx).inner();
  }
  void enter() override { memory_.enter(); }
  void leave() override { memory_.leave(); }
  void expose(const Tensor& t) const override { memory_.expose(t.data(), t.bytes()); }

 private:
  StrictMemory& memory_;
};

// Events of the strict device: the CPU's, behind the device's contexts.
class StrictEvent final : public Event {
 public:
  void record(ExecContext& ctx) override { check(ctx); }
  void wait_on(ExecContext& ctx) override { check(ctx); }
  void synchronize() override {}

 private:
  static void check(const ExecContext& ctx) {
    CONVOY_CHECK(ctx.device() == kStrict, "a cpu-strict event was used on a context of " << ctx.device().str());
  }
};

class StrictBackend final : public Backend {
 public:
  explicit StrictBackend(int threads)
      : inner_(make_cpu_backend(threads)), boundary_(memory_), ctx_(inner_->context()) {}

  Device device() const override { return kStrict; }
  std::string name() const override { return "cpu-strict (the " + inner_->name() + " behind a device boundary)"; }
  Allocator& allocator() override { return memory_; }
  Allocator& staging_allocator() override { return host_allocator(); }
  ExecContext& context() override { return ctx_; }
  std::unique_ptr<ExecContext> make_context() override {
    return std::make_unique<StrictContext>(inner_->make_context());
  }
  std::unique_ptr<Event> make_event() override { return std::make_unique<StrictEvent>(); }
  void reserve_workspace(size_t bytes) override { inner_->reserve_workspace(bytes); }

  std::unique_ptr<ConvKernel> conv2d(const ConvSpec& s) override { return guard(inner_->conv2d(s), boundary_); }
  std::unique_ptr<BatchNormKernel> batch_norm(const BatchNormSpec& s) override {
    return guard(inner_->batch_norm(s), boundary_);
  }
  std::unique_ptr<PoolKernel> pool2d(const PoolSpec& s) override { return guard(inner_->pool2d(s), boundary_); }
  std::unique_ptr<SyncBatchNormKernel> sync_batch_norm(const BatchNormSpec& s) override {
    return guard(inner_->sync_batch_norm(s), boundary_);
  }
  std::unique_ptr<AdaptivePoolKernel> adaptive_avg_pool2d(const AdaptivePoolSpec& s) override {
    return guard(inner_->adaptive_avg_pool2d(s), boundary_);
  }
  std::unique_ptr<LinearKernel> linear(const LinearSpec& s) override { return guard(inner_->linear(s), boundary_); }
  std::unique_ptr<ReluKernel> relu(const Shape& shape, DType t) override {
    return guard(inner_->relu(shape, t), boundary_);
  }
  std::unique_ptr<AddKernel> add(const Shape& shape, bool fuse_relu, DType t) override {
    return guard(inner_->add(shape, fuse_relu, t), boundary_);
  }
  std::unique_ptr<ConcatKernel> concat(std::span<const Shape> inputs, DType t) override {
    return guard(inner_->concat(inputs, t), boundary_);
  }
  std::unique_ptr<LrnKernel> lrn(const LrnSpec& s) override { return guard(inner_->lrn(s), boundary_); }
  std::unique_ptr<DropoutKernel> dropout(const Shape& shape, float p, DType t) override {
    return guard(inner_->dropout(shape, p, t), boundary_);
  }
  std::unique_ptr<SoftmaxCrossEntropyKernel> softmax_cross_entropy(int64_t N, int64_t K) override {
    return guard(inner_->softmax_cross_entropy(N, K), boundary_);
  }

  // Copies go between host memory and this device in any direction.
  void copy(ExecContext& ctx, const Tensor& src, Tensor& dst) override {
    Boundary::Scope s(boundary_);
    Tensor d = boundary_.pass_host_or_device(dst, "copy", "the destination");
    inner_->copy(boundary_.inner(ctx), boundary_.pass_host_or_device(src, "copy", "the source"), d);
  }
  void fill(ExecContext& ctx, Tensor& t, double value) override {
    Boundary::Scope s(boundary_);
    Tensor ti = boundary_.pass(t, "fill", "the tensor");
    inner_->fill(boundary_.inner(ctx), ti, value);
  }
  void cast(ExecContext& ctx, const Tensor& src, Tensor& dst) override {
    Boundary::Scope s(boundary_);
    Tensor d = boundary_.pass(dst, "cast", "the destination");
    inner_->cast(boundary_.inner(ctx), boundary_.pass(src, "cast", "the source"), d);
  }
  void sgd_update(ExecContext& ctx, const SgdParams& p, Tensor& w, Tensor& v, const Tensor& g) override {
    Boundary::Scope s(boundary_);
    Tensor wi = boundary_.pass(w, "SGD update", "w"), vi = boundary_.pass(v, "SGD update", "the momentum");
    inner_->sgd_update(boundary_.inner(ctx), p, wi, vi, boundary_.pass(g, "SGD update", "the gradient"));
  }
  void sum_squares(ExecContext& ctx, const Tensor& x, Tensor& out) override {
    Boundary::Scope s(boundary_);
    Tensor o = boundary_.pass(out, "sum of squares", "the result");
    inner_->sum_squares(boundary_.inner(ctx), boundary_.pass(x, "sum of squares", "x"), o);
  }
  void round_to(ExecContext& ctx, const Tensor& src, Tensor& dst, DType storage) override {
    Boundary::Scope s(boundary_);
    Tensor d = boundary_.pass(dst, "rounding", "the destination");
    inner_->round_to(boundary_.inner(ctx), boundary_.pass(src, "rounding", "the source"), d, storage);
  }
  void add_into(ExecContext& ctx, const Tensor& src, Tensor& dst, float alpha) override {
    Boundary::Scope s(boundary_);
    Tensor d = boundary_.pass(dst, "add", "the destination");
    inner_->add_into(boundary_.inner(ctx), boundary_.pass(src, "add", "the source"), d, alpha);
  }
  void mix_with_reverse(ExecContext& ctx, const Tensor& x, float lambda, Tensor& out) override {
    Boundary::Scope s(boundary_);
    Tensor o = boundary_.pass(out, "mixup", "the mixed batch");
    inner_->mix_with_reverse(boundary_.inner(ctx), boundary_.pass(x, "mixup", "the batch"), lambda, o);
  }
  void check_finite(ExecContext& ctx, const Tensor& x, Tensor& flag) override {
    Boundary::Scope s(boundary_);
    Tensor f = boundary_.pass(flag, "finiteness check", "the flag");
    inner_->check_finite(boundary_.inner(ctx), boundary_.pass(x, "finiteness check", "x"), f);
  }

 private:
  StrictMemory memory_;  // declared first: destroyed last, after everything that holds its memory
  std::unique_ptr<Backend> inner_;
  StrictBoundary boundary_;
  StrictContext ctx_;
};

}  // namespace
}  // namespace convoy::ops::strict

std::unique_ptr<convoy::ops::Backend> convoy::ops::make_strict_backend(int threads) {
  return std::make_unique<strict::StrictBackend>(threads);
}
