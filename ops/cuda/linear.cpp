// Linear layers on cuBLAS (cublasGemmEx, fp32 accumulation; TF32 only when train.tf32 allows it; f16 and
// bf16 inputs on tensor cores, with the weight gradient written in f32 by the same call). Weights
// are kept (K, H, W, C) on the device, so that an NHWC activation multiplies them directly; PyTorch's
// (K, C*H*W) order is what pack/unpack convert from and to.
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/elementwise.h"

namespace convoy::ops::cuda {
namespace {

constexpr float kOne = 1.f, kZero = 0.f;

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    default: break;
  }
  CONVOY_FAIL("a linear layer on cuda takes f32, f16 or bf16, not " << dtype_name(t));
}

int as_int(int64_t v) {
  CONVOY_CHECK(v > 0 && v <= INT32_MAX, "linear layer dimension " << v << " is out of cuBLAS's int range");
  return static_cast<int>(v);
}

class CudaLinear final : public LinearKernel {
 public:
  CudaLinear(CudaBackend& be, const LinearSpec& s)
      : s_(s), F_(s.in_features()), t_(cuda_type(s.dtype)),
        compute_(s.dtype == DType::f32 && be.options().fp32 == Fp32Math::tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                              : CUBLAS_COMPUTE_32F) {
    require_float(s.dtype, "linear layer");
    const Shape& in = s.in;
    CONVOY_CHECK(in.rank() == 1 || in.rank() == 3, "linear layer input per sample must be (C) or (H, W, C), got "
                                                       << in.str());
    const Shape plain = in.rank() == 1 ? Shape{s.K, in[0], 1, 1} : Shape{s.K, in[2], in[0], in[1]};
    layout_ = std::make_shared<ReorderedLayout>(plain, oihw_to_ohwi);
    ones_ = Tensor::empty(Shape{s.N}, DType::f32, be.allocator());
    be.fill(be.context(), ones_, 1.0);
    masked_bytes_ = s.fuse_relu ? static_cast<size_t>(s.N * s.K) * dtype_size(s.dtype) : 0;
    be.reserve_workspace(std::max<size_t>(masked_bytes_, 256));
  }

  std::shared_ptr<const PackedLayout> weight_layout() const override { return layout_; }

  void forward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) override {
    CudaContext& c = cuda_ctx(ctx);
    // Column-major: y^T (K x N) = W (K x F, stored as F x K: transposed) * x^T (F x N).
    CUBLAS_CHECK(cublasGemmEx(c.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, as_int(s_.K), as_int(s_.N), as_int(F_), &kOne,
                              w.data(), t_, as_int(F_), x.data(), t_, as_int(F_), &kZero, y.data(), t_,
                              as_int(s_.K), compute_, CUBLAS_GEMM_DEFAULT));
    if (s_.bias || s_.fuse_relu)
      bias_activation_rows(c.stream(), elem(s_.dtype), y.data(), s_.bias ? b.data() : nullptr, s_.N, s_.K, s_.fuse_relu);
  }

  void backward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& dy, Tensor* dx,
                bool accumulate_dx, Tensor& dw, Tensor* db) override {
    CudaContext& c = cuda_ctx(ctx);
    const void* g = dy.data();
    if (s_.fuse_relu) {
      void* m = c.workspace(masked_bytes_);
      relu_backward(c.stream(), elem(s_.dtype), y.data(), g, m, s_.N * s_.K, false);
      g = m;
    }
    // dW (K x F row-major = F x K column-major) = x^T (F x N) * dy (N x K).
    CUBLAS_CHECK(cublasGemmEx(c.cublas(), CUBLAS_OP_N, CUBLAS_OP_T, as_int(F_), as_int(s_.K), as_int(s_.N), &kOne,
                              x.data(), t_, as_int(F_), g, t_, as_int(s_.K), &kZero, dw.data(), CUDA_R_32F,
                              as_int(F_), compute_, CUBLAS_GEMM_DEFAULT));  // dW in f32 whatever the inputs
    // db (K) = dy^T (K x N) * ones (N); in f32 from a half dy.
    if (s_.bias && db && s_.dtype == DType::f32)
      CUBLAS_CHECK(cublasSgemv(c.cublas(), CUBLAS_OP_N, as_int(s_.K), as_int(s_.N), &kOne, static_cast<const float*>(g),
                               as_int(s_.K), ones_.data_as<float>(), 1, &kZero, db->data_as<float>(), 1));
    else if (s_.bias && db)
      bias_grad_rows(c.stream(), elem(s_.dtype), g, db->data_as<float>(), s_.N, s_.K);
    // dx (N x F row-major = F x N column-major) = W^T (F x K) * dy^T (K x N).
    if (dx)
      CUBLAS_CHECK(cublasGemmEx(c.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, as_int(F_), as_int(s_.N), as_int(s_.K), &kOne,
                                w.data(), t_, as_int(F_), g, t_, as_int(s_.K), accumulate_dx ? &kOne : &kZero,
                                dx->data(), t_, as_int(F_), compute_, CUBLAS_GEMM_DEFAULT));
  }

  std::vector<std::string> implementations() const override {
    if (s_.dtype != DType::f32) return {std::string("cublas gemm ") + dtype_name(s_.dtype) + " tensor cores, fp32 accumulation"};
    return {compute_ == CUBLAS_COMPUTE_32F_FAST_TF32 ? "cublas gemm tf32" : "cublas gemm fp32"};
  }

 private:
  LinearSpec s_;
  int64_t F_;
  cudaDataType_t t_;
  cublasComputeType_t compute_;
  std::shared_ptr<ReorderedLayout> layout_;
  Tensor ones_;
  size_t masked_bytes_ = 0;
};

}  // namespace

std::unique_ptr<LinearKernel> make_linear(CudaBackend& be, const LinearSpec& s) {
  return std::make_unique<CudaLinear>(be, s);
}

}  // namespace convoy::ops::cuda
