// A device boundary around kernels: every tensor a kernel is handed must live on the boundary's device,
// or the call fails with a sentence that names the kernel, the argument and both devices (the graph adds
// the layer). The CPU backend puts its own kernels behind one (device cpu); the strict test device
// (ops/strict) runs the same CPU kernels behind a boundary of its own device, whose memory it opens to
// them only for the length of a call.
#pragma once

#include <memory>

#include "ops/backend.h"

namespace convoy::ops {

class Boundary {
 public:
  virtual ~Boundary() = default;
  // The device the guarded kernels take tensors of.
  virtual Device device() const = 0;
  // The device the inner kernels expect tensors to be labelled with (cpu for the strict device).
  virtual Device inner_device() const { return device(); }
  // The inner kernels' context for a context of this device.
  virtual ExecContext& inner(ExecContext& ctx) { return ctx; }
  // Around every inner call (nested calls are fine): the strict device protects its memory again at
  // the end of the outermost call.
  virtual void enter() {}
  virtual void leave() {}
  // A tensor of this device handed to an inner call (inside a Scope): the strict device opens its pages.
  virtual void expose(const Tensor&) const {}

  // t as the inner kernels take it; throws naming `kernel` and `arg` when t lives on another device.
  // An undefined tensor (an absent bias) passes as it is.
  Tensor pass(const Tensor& t, const char* kernel, const char* arg) const;
  // As pass(), for tensors that may also be host memory (copies, packing).
  Tensor pass_host_or_device(const Tensor& t, const char* kernel, const char* arg) const;

  // RAII: enter() now, leave() at the end of the scope.
  class Scope {
   public:
    explicit Scope(Boundary& b) : b_(b) { b_.enter(); }
    ~Scope() { b_.leave(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Boundary& b_;
  };
};

// Throws unless t lives on `device`: "<kernel>: <arg> lives on cpu, but this kernel takes cuda:0 tensors".
void check_device(const Tensor& t, Device device, const char* kernel, const char* arg);

// The kernel behind the boundary: same interface, every tensor argument checked (and relabelled to the
// inner device) and every call inside Boundary::Scope. The boundary must outlive the kernels.
std::unique_ptr<ConvKernel> guard(std::unique_ptr<ConvKernel> k, Boundary& b);
std::unique_ptr<BatchNormKernel> guard(std::unique_ptr<BatchNormKernel> k, Boundary& b);
std::unique_ptr<PoolKernel> guard(std::unique_ptr<PoolKernel> k, Boundary& b);
std::unique_ptr<SyncBatchNormKernel> guard(std::unique_ptr<SyncBatchNormKernel> k, Boundary& b);
std::unique_ptr<AdaptivePoolKernel> guard(std::unique_ptr<AdaptivePoolKernel> k, Boundary& b);
std::unique_ptr<LinearKernel> guard(std::unique_ptr<LinearKernel> k, Boundary& b);
std::unique_ptr<ReluKernel> guard(std::unique_ptr<ReluKernel> k, Boundary& b);
std::unique_ptr<AddKernel> guard(std::unique_ptr<AddKernel> k, Boundary& b);
std::unique_ptr<ConcatKernel> guard(std::unique_ptr<ConcatKernel> k, Boundary& b);
std::unique_ptr<LrnKernel> guard(std::unique_ptr<LrnKernel> k, Boundary& b);
std::unique_ptr<DropoutKernel> guard(std::unique_ptr<DropoutKernel> k, Boundary& b);
std::unique_ptr<SoftmaxCrossEntropyKernel> guard(std::unique_ptr<SoftmaxCrossEntropyKernel> k, Boundary& b);
std::shared_ptr<const PackedLayout> guard(std::shared_ptr<const PackedLayout> layout, Boundary& b);

}  // namespace convoy::ops
