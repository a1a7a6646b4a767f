#include "ops/cpu/gemm_conv.h"

#include <cstring>

#include "ops/cpu/im2col_weight_grad.h"

namespace convoy::ops::cpu {
namespace {

void sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
           int64_t ldb, float beta, float* C, int64_t ldc) {
  dnnl_status_t st = dnnl_sgemm(ta, tb, M, N, K, 1.f, A, lda, B, ldb, beta, C, ldc);
  CONVOY_CHECK(st == dnnl_success, "oneDNN's sgemm failed (status " << static_cast<int>(st) << ")");
}

class GemmConv final : public ConvKernel {
 public:
  GemmConv(CpuBackend& be, const ConvSpec& s)
      : s_(s),
        rows_(s.N * s.out_h() * s.out_w()),
        rsc_(s.R * s.S * s.C),
        pointwise_(s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0) {
    CONVOY_CHECK(gemm_conv_fits(s), "internal: the GEMM convolution takes f32, groups=1, output maps of at most "
                                        << kGemmConvMaxPixels << " pixels and columns of at most 64 MB");
    const dnnl::memory::dims dims{s.K, s.C, s.R, s.S};
    layout_ = std::make_shared<DnnlPackedLayout>(be.engine(), dnnl::memory::desc(dims, dt::f32, tag::ohwi),
                                                 dnnl::memory::desc(dims, dt::f32, tag::oihw));
    // Forward: y (rows, K) = col (rows, RSC) x W^T, W read in place as a (RSC, K) matrix of strides (1, RSC).
    using dnnl::memory;
    memory::desc col({rows_, rsc_}, dt::f32, memory::dims{rsc_, 1}), wt({rsc_, s.K}, dt::f32, memory::dims{1, rsc_}),
        y({rows_, s.K}, dt::f32, memory::dims{s.K, 1});
    memory::desc bias = s.bias ? memory::desc({1, s.K}, dt::f32, memory::dims{s.K, 1}) : memory::desc();
    auto pd = make_pd("convolution matmul", [&] {
      return dnnl::matmul::primitive_desc(dnnl::matmul::desc(col, wt, bias, y),
                                          s.fuse_relu ? relu_attr() : scratchpad_attr(), be.engine());
    });
    fwd_impl_ = pd.impl_info_str();
    fwd_ = Call(dnnl::matmul(pd), be.engine());
    fwd_.arg(DNNL_ARG_SRC, col);
    fwd_.arg(DNNL_ARG_WEIGHTS, wt);
    if (s.bias) fwd_.arg(DNNL_ARG_BIAS, bias);
    fwd_.arg(DNNL_ARG_DST, y);
    fwd_.arg(DNNL_ARG_SCRATCHPAD, pd.scratchpad_desc());
    WorkspacePlan ws;
    off_col_ = ws.add(pointwise_ ? 0 : static_cast<size_t>(rows_ * rsc_) * sizeof(float));
    off_mask_ = ws.add(s.fuse_relu ? static_cast<size_t>(rows_ * s.K) * sizeof(float) : 0);
    off_scratch_ = ws.add(pd.scratchpad_desc().get_size());
    ws_bytes_ = ws.total();
    be.reserve_workspace(ws_bytes_);
  }

  std::shared_ptr<const PackedLayout> weight_layout() const override { return layout_; }

  void forward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) override {
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    fwd_.set(DNNL_ARG_SRC, columns(ws, x));
    fwd_.set(DNNL_ARG_WEIGHTS, w.data());
    if (s_.bias) fwd_.set(DNNL_ARG_BIAS, b.data());
    fwd_.set(DNNL_ARG_DST, y.data());
    fwd_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    fwd_.run(cpu_ctx(ctx).stream());
  }

  // dW (K, RSC) = G^T x col; db = column sums of G; dcol (rows, RSC) = G x W, folded back into dx.
  void backward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& dy, Tensor* dx,
                bool accumulate_dx, Tensor& dw, Tensor* db) override {
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    const int64_t K = s_.K, rows = rows_;
    const float* g = static_cast<const float*>(dy.data());
    if (s_.fuse_relu) {
      float* m = reinterpret_cast<float*>(ws + off_mask_);
      const float* yv = static_cast<const float*>(y.data());
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < rows * K; ++i) m[i] = yv[i] > 0.f ? g[i] : 0.f;
      g = m;
    }
    sgemm('T', 'N', K, rsc_, rows, g, K, columns(ws, x), rsc_, 0.f, static_cast<float*>(dw.data()), rsc_);
    if (db) {
      float* d = static_cast<float*>(db->data());
#pragma omp parallel for schedule(static)
      for (int64_t k = 0; k < K; ++k) {
        double sum = 0;
        for (int64_t r = 0; r < rows; ++r) sum += g[r * K + k];
        d[k] = static_cast<float>(sum);
      }
    }
    if (!dx) return;
    const float* wv = static_cast<const float*>(w.data());
    float* dxv = static_cast<float*>(dx->data());
    if (pointwise_) {  // the column gradient is dx itself
      sgemm('N', 'N', rows, rsc_, K, g, K, wv, rsc_, accumulate_dx ? 1.f : 0.f, dxv, rsc_);
      return;
    }
    float* dcol = reinterpret_cast<float*>(ws + off_col_);
    sgemm('N', 'N', rows, rsc_, K, g, K, wv, rsc_, 0.f, dcol, rsc_);
    col2im(dcol, dxv, accumulate_dx);
  }

  std::vector<std::string> implementations() const override {
    return {"convolution forward convoy:gemm (matmul " + fwd_impl_ + ")",
            "convolution backward-data convoy:gemm (sgemm NN + col2im)",
            "convolution backward-weights convoy:gemm (im2col + sgemm TN)"};
  }

 private:
  // The im2col matrix (rows, RSC) of x: x itself for a 1x1 convolution of stride 1 without padding.
  const float* columns(char* ws, const Tensor& x) const {
    if (pointwise_) return static_cast<const float*>(x.data());
    char* col = ws + off_col_;
    im2col_nhwc(s_, sizeof(float), static_cast<const char*>(x.data()), 0, s_.N, col);
    return reinterpret_cast<const float*>(col);
  }

  // dx (+)= the sum over every patch that read each input pixel. Images run in parallel (one image's
  // patches touch only that image), each in a fixed order, so the sums do not depend on the threads.
  void col2im(const float* dcol, float* dx, bool accumulate) const {
    const int64_t C = s_.C, H = s_.H, W = s_.W, P = s_.out_h(), Q = s_.out_w();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < s_.N; ++n) {
      float* img = dx + n * H * W * C;
      if (!accumulate) std::memset(img, 0, static_cast<size_t>(H * W * C) * sizeof(float));
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          const float* src = dcol + ((n * P + p) * Q + q) * rsc_;
          for (int64_t r = 0; r < s_.R; ++r) {
            const int64_t ih = p * s_.stride_h - s_.pad_h + r * s_.dilation_h;
            for (int64_t t = 0; t < s_.S; ++t, src += C) {
              const int64_t iw = q * s_.stride_w - s_.pad_w + t * s_.dilation_w;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              float* d = img + (ih * W + iw) * C;
              for (int64_t c = 0; c < C; ++c) d[c] += src[c];
            }
          }
        }
    }
  }

  ConvSpec s_;
  int64_t rows_, rsc_;
  bool pointwise_;
  std::shared_ptr<DnnlPackedLayout> layout_;
  std::string fwd_impl_;
  Call fwd_;
  size_t off_col_ = 0, off_mask_ = 0, off_scratch_ = 0, ws_bytes_ = 0;
};

}  // namespace

bool gemm_conv_fits(const ConvSpec& s) {
  // The column buffer (none for a 1x1 of stride 1) stays under 64 MB; larger batches take oneDNN's kernels.
  const int64_t pixels = s.out_h() * s.out_w(), col_bytes = s.N * pixels * s.R * s.S * s.C * 4;
  return s.dtype == DType::f32 && s.groups == 1 && pixels <= kGemmConvMaxPixels && col_bytes <= (64 << 20);
}

std::unique_ptr<ConvKernel> make_gemm_conv(CpuBackend& be, const ConvSpec& spec) {
  return std::make_unique<GemmConv>(be, spec);
}

}  // namespace convoy::ops::cpu
