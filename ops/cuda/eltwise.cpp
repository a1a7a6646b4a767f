// ReLU, residual add, channel concat and dropout on the GPU: convoy's own kernels (elementwise.cu) and
// strided copies.
#include <vector>

#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/elementwise.h"

namespace convoy::ops::cuda {
namespace {

class CudaRelu final : public ReluKernel {
 public:
  explicit CudaRelu(DType t) : t_(t) { require_float(t, "ReLU"); }
  void forward(ExecContext& ctx, const Tensor& x, Tensor& y) override {
    relu_forward(cuda_ctx(ctx).stream(), elem(t_), x.data(), y.data(), x.numel());
  }
  void backward(ExecContext& ctx, const Tensor& y, const Tensor& dy, Tensor& dx, bool accumulate_dx) override {
    relu_backward(cuda_ctx(ctx).stream(), elem(t_), y.data(), dy.data(), dx.data(), y.numel(), accumulate_dx);
  }
  std::vector<std::string> implementations() const override { return {"convoy cuda relu"}; }

 private:
  DType t_;
};

class CudaAdd final : public AddKernel {
 public:
  CudaAdd(bool relu, DType t) : relu_(relu), t_(t) { require_float(t, "add"); }
  void forward(ExecContext& ctx, const Tensor& a, const Tensor& b, Tensor& y) override {
    add_forward(cuda_ctx(ctx).stream(), elem(t_), a.data(), b.data(), y.data(), y.numel(), relu_);
  }
  void backward(ExecContext& ctx, const Tensor& y, const Tensor& dy, Tensor* da, bool accumulate_da, Tensor* db,
                bool accumulate_db) override {
    add_backward(cuda_ctx(ctx).stream(), elem(t_), y.data(), dy.data(), da ? da->data() : nullptr, accumulate_da,
                 db ? db->data() : nullptr, accumulate_db, y.numel(), relu_);
  }
  std::vector<std::string> implementations() const override {
    return {relu_ ? "convoy cuda add+relu" : "convoy cuda add"};
  }

 private:
  bool relu_;
  DType t_;
};

// NHWC channel concat: each input is a block of columns of the output's rows (one row per pixel).
class CudaConcat final : public ConcatKernel {
 public:
  CudaConcat(std::span<const Shape> inputs, DType t) : t_(t), es_(dtype_size(t)) {
    require_float(t, "concat");
    CONVOY_CHECK(!inputs.empty(), "concat of no inputs");
    const Shape& first = inputs[0];
    rows_ = first.numel() / first[first.rank() - 1];
    for (const Shape& s : inputs) {
      CONVOY_CHECK(s.rank() == first.rank() && s.numel() / s[s.rank() - 1] == rows_,
                   "concat inputs must agree in all but the channel dimension: " << first.str() << " and " << s.str());
      widths_.push_back(s[s.rank() - 1]);
      total_ += s[s.rank() - 1];
    }
  }
  void forward(ExecContext& ctx, std::span<const Tensor* const> xs, Tensor& y) override {
    cudaStream_t st = cuda_ctx(ctx).stream();
    int64_t off = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const size_t w = static_cast<size_t>(widths_[i]) * es_;
      CUDA_CHECK(cudaMemcpy2DAsync(static_cast<char*>(y.data()) + off * es_, static_cast<size_t>(total_) * es_,
                                   xs[i]->data(), w, w, static_cast<size_t>(rows_), cudaMemcpyDeviceToDevice, st));
      off += widths_[i];
    }
  }
  void backward(ExecContext& ctx, const Tensor& dy, std::span<Tensor* const> dxs,
                std::span<const bool> accumulate) override {
    cudaStream_t st = cuda_ctx(ctx).stream();
    int64_t off = 0;
    for (size_t i = 0; i < dxs.size(); ++i) {
      const char* src = static_cast<const char*>(dy.data()) + off * es_;
      if (dxs[i]) {
        const size_t w = static_cast<size_t>(widths_[i]) * es_;
        if (accumulate[i])
          strided_accumulate(st, elem(t_), dxs[i]->data(), widths_[i], src, total_, widths_[i], rows_);
        else
          CUDA_CHECK(cudaMemcpy2DAsync(dxs[i]->data(), w, src, static_cast<size_t>(total_) * es_, w,
                                       static_cast<size_t>(rows_), cudaMemcpyDeviceToDevice, st));
      }
      off += widths_[i];
    }
  }
  std::vector<std::string> implementations() const override { return {"cuda strided copy concat"}; }

 private:
  DType t_;
  size_t es_;
  int64_t rows_ = 0, total_ = 0;
  std::vector<int64_t> widths_;
};

class CudaDropout final : public DropoutKernel {
 public:
  CudaDropout(float p, DType t) : p_(p), t_(t) {
    require_float(t, "dropout");
    CONVOY_CHECK(p >= 0.f && p < 1.f, "dropout probability must be in [0, 1), got " << p);
  }
  void forward(ExecContext& ctx, const Tensor& x, Tensor& y, uint64_t seed, uint64_t step) override {
    dropout_forward(cuda_ctx(ctx).stream(), elem(t_), x.data(), y.data(), x.numel(), p_, seed, step);
  }
  void backward(ExecContext& ctx, const Tensor& dy, Tensor& dx, bool accumulate_dx, uint64_t seed,
                uint64_t step) override {
    dropout_backward(cuda_ctx(ctx).stream(), elem(t_), dy.data(), dx.data(), dy.numel(), p_, seed, step, accumulate_dx);
  }

 private:
  float p_;
  DType t_;
};

}  // namespace

std::unique_ptr<ReluKernel> make_relu(CudaBackend&, const Shape&, DType t) { return std::make_unique<CudaRelu>(t); }
std::unique_ptr<AddKernel> make_add(CudaBackend&, const Shape&, bool fuse_relu, DType t) {
  return std::make_unique<CudaAdd>(fuse_relu, t);
}
std::unique_ptr<ConcatKernel> make_concat(CudaBackend&, std::span<const Shape> inputs, DType t) {
  return std::make_unique<CudaConcat>(inputs, t);
}
std::unique_ptr<DropoutKernel> make_dropout(CudaBackend&, const Shape&, float p, DType t) {
  return std::make_unique<CudaDropout>(p, t);
}

}  // namespace convoy::ops::cuda
