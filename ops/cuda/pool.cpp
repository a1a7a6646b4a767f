// Max and average pooling with PyTorch's windows (ceil mode, count_include_pad) as convoy's own kernels
// over ops/math/window.h: cuDNN's pooling has symmetric padding only (PyTorch's ceil-mode windows hang past
// it) and its max-pooling backward needs x and y, where this interface keeps the argmax.
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/elementwise.h"

namespace convoy::ops::cuda {
namespace {

class CudaPool final : public PoolKernel {
 public:
  explicit CudaPool(const PoolSpec& s) : s_(s) {
    require_float(s.dtype, "pooling");
    check_pool_spec(s);
    p_ = PoolShape{s.N, s.H, s.W, s.C, s.out_h(), s.out_w(), s.kh, s.kw, s.stride_h, s.stride_w, s.pad_h, s.pad_w,
                   s.count_include_pad};
    CONVOY_CHECK(s.H * s.W <= INT32_MAX, "pooling input of " << s.H << "x" << s.W << " is too large");
  }
  size_t saved_bytes() const override {
    return s_.kind == PoolKind::max ? static_cast<size_t>(p_.N * p_.OH * p_.OW * p_.C) * sizeof(int32_t) : 0;
  }
  void forward(ExecContext& ctx, const Tensor& x, Tensor& y, Tensor& saved, bool) override {
    cudaStream_t st = cuda_ctx(ctx).stream();
    if (s_.kind == PoolKind::max)
      max_pool_forward(st, elem(s_.dtype), p_, x.data(), y.data(), static_cast<int32_t*>(saved.data()));
    else
      avg_pool_forward(st, elem(s_.dtype), p_, x.data(), y.data());
  }
  void backward(ExecContext& ctx, const Tensor& dy, const Tensor& saved, Tensor& dx, bool accumulate_dx) override {
    cudaStream_t st = cuda_ctx(ctx).stream();
    if (s_.kind == PoolKind::max)
      max_pool_backward(st, elem(s_.dtype), p_, dy.data(), static_cast<const int32_t*>(saved.data()), dx.data(),
                        accumulate_dx);
    else
      avg_pool_backward(st, elem(s_.dtype), p_, dy.data(), dx.data(), accumulate_dx);
  }
  std::vector<std::string> implementations() const override {
    return {s_.kind == PoolKind::max ? "convoy cuda max pool" : "convoy cuda avg pool"};
  }

 private:
  PoolSpec s_;
  PoolShape p_{};
};

class CudaLrn final : public LrnKernel {
 public:
  explicit CudaLrn(const LrnSpec& s) : s_(s) {
    require_float(s.dtype, "local response normalisation");
    check_lrn_spec(s);
  }
  size_t saved_bytes() const override { return static_cast<size_t>(s_.N * s_.H * s_.W * s_.C) * sizeof(float); }
  void forward(ExecContext& ctx, const Tensor& x, Tensor& y, Tensor& saved, bool) override {
    lrn_forward(cuda_ctx(ctx).stream(), elem(s_.dtype), x.data(), y.data(), static_cast<float*>(saved.data()),
                s_.N * s_.H * s_.W, s_.C, s_.size, s_.alpha, s_.beta, s_.k);
  }
  void backward(ExecContext& ctx, const Tensor& x, const Tensor& dy, const Tensor& saved, Tensor& dx,
                bool accumulate_dx) override {
    lrn_backward(cuda_ctx(ctx).stream(), elem(s_.dtype), x.data(), dy.data(), static_cast<const float*>(saved.data()),
                 dx.data(), s_.N * s_.H * s_.W, s_.C, s_.size, s_.alpha, s_.beta, accumulate_dx);
  }
  std::vector<std::string> implementations() const override { return {"convoy cuda lrn"}; }

 private:
  LrnSpec s_;
};

// PyTorch's AdaptiveAvgPool2d over ops/math/window.h (a gather in both directions).
class CudaAdaptivePool final : public AdaptivePoolKernel {
 public:
  explicit CudaAdaptivePool(const AdaptivePoolSpec& s) : s_(s), a_{s.N, s.H, s.W, s.C, s.OH, s.OW} {
    require_float(s.dtype, "adaptive pooling");
    CONVOY_CHECK(s.OH > 0 && s.OW > 0, "adaptive pooling to an empty " << s.OH << "x" << s.OW << " output");
  }
  void forward(ExecContext& ctx, const Tensor& x, Tensor& y) override {
    adaptive_avg_pool_forward(cuda_ctx(ctx).stream(), elem(s_.dtype), a_, x.data(), y.data());
  }
  void backward(ExecContext& ctx, const Tensor& dy, Tensor& dx, bool accumulate_dx) override {
    adaptive_avg_pool_backward(cuda_ctx(ctx).stream(), elem(s_.dtype), a_, dy.data(), dx.data(), accumulate_dx);
  }
  std::vector<std::string> implementations() const override { return {"convoy cuda adaptive avg pool"}; }

 private:
  AdaptivePoolSpec s_;
  AdaptiveShape a_;
};

}  // namespace

std::unique_ptr<PoolKernel> make_pool(CudaBackend&, const PoolSpec& s) { return std::make_unique<CudaPool>(s); }
std::unique_ptr<AdaptivePoolKernel> make_adaptive_pool(CudaBackend&, const AdaptivePoolSpec& s) {
  return std::make_unique<CudaAdaptivePool>(s);
}
std::unique_ptr<LrnKernel> make_lrn(CudaBackend&, const LrnSpec& s) { return std::make_unique<CudaLrn>(s); }

}  // namespace convoy::ops::cuda
