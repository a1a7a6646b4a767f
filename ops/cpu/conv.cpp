// Convolution on oneDNN: NHWC activations, weights in the layout oneDNN picks (format_tag::any). With
// plain OIHW/OHWI weights oneDNN 2.6 falls back to its reference convolution, orders of magnitude slower.
#include <optional>

#include "ops/cpu/gemm_conv.h"
#include "ops/cpu/im2col_weight_grad.h"
#include "ops/cpu/weighted_op.h"

namespace convoy::ops::cpu {
namespace {

using namespace dnnl;
using ConvOp = WeightedOp<convolution_forward, convolution_backward_data, convolution_backward_weights>;

void check_spec(const ConvSpec& s) {
  CONVOY_CHECK(s.C % s.groups == 0 && s.K % s.groups == 0,
               "convolution channels (" << s.C << " in, " << s.K << " out) must divide by groups=" << s.groups);
  CONVOY_CHECK(s.out_h() > 0 && s.out_w() > 0, "convolution of a " << s.H << "x" << s.W << " input with a " << s.R
                                                                   << "x" << s.S << " kernel gives an empty output");
}

// Where the forward pass takes oneDNN's direct jit kernel over its first choice, brgconv: f32 with at most
// 16 output channels (CIFAR-style ResNets' stem and first stage). Timed alone, primitive by primitive on
// a Zen 5 (2 threads, best of 10, brgconv vs jit ms): 3x3 16->16 at 28x28 batch 128 1.47-1.55 vs 1.24-1.25,
// batch 256 2.71-2.94 vs 2.02-2.12, 1->16 0.27-0.28 vs 0.11-0.12, 3->16 at 32x32 0.44-0.48 vs 0.32-0.33.
// From 32 channels on brgconv is as fast or faster (64->64 at 16x16 batch 32: 1.19-1.22 vs 1.31-1.33).
// A fixed rule, not a timing: every rank and every run sums in the same order.
bool prefer_jit_forward(const ConvSpec& s) { return s.dtype == DType::f32 && s.groups == 1 && s.K <= 16; }

ConvOp build(CpuBackend& be, const ConvSpec& s) {
  auto src = nhwc_desc(s.N, s.H, s.W, s.C, s.dtype);
  auto dst = nhwc_desc(s.N, s.out_h(), s.out_w(), s.K, s.dtype);
  memory::dims wdims = s.groups == 1 ? memory::dims{s.K, s.C, s.R, s.S}
                                     : memory::dims{s.groups, s.K / s.groups, s.C / s.groups, s.R, s.S};
  memory::desc w_any(wdims, to_dnnl(s.dtype), tag::any);
  // goihw in memory is PyTorch's (K, C/groups, R, S).
  memory::desc w_plain(wdims, dt::f32, s.groups == 1 ? tag::oihw : tag::goihw);
  check_compute_dtype(s.dtype, "convolution");
  memory::desc bias = s.bias ? memory::desc({s.K}, to_dnnl(s.dtype), tag::x) : memory::desc();
  memory::desc dbias = s.bias ? memory::desc({s.K}, dt::f32, tag::x) : memory::desc();
  memory::dims strides{s.stride_h, s.stride_w}, dil{s.dilation_h - 1, s.dilation_w - 1}, pad{s.pad_h, s.pad_w};
  const engine& eng = be.engine();
  auto alg = algorithm::convolution_direct;
  return ConvOp(
      be, "convolution", src, dst, w_any, w_plain, s.bias, s.fuse_relu,
      [&](const primitive_attr& attr) {
        auto d = convolution_forward::desc(prop_kind::forward_training, alg, src, w_any, bias, dst, strides, dil, pad,
                                           pad);
        auto first = convolution_forward::primitive_desc(d, attr, eng);
        const std::string impl = impl_of(first);
        if (!prefer_jit_forward(s) || impl.rfind("brgconv:", 0) != 0) return first;
        const std::string want = "jit:" + impl.substr(8);  // the direct kernel of the same ISA
        auto pd = convolution_forward::primitive_desc(d, attr, eng);
        while (pd.next_impl())
          if (impl_of(pd) == want) return pd;
        return first;
      },
      [&](const memory::desc& w, const convolution_forward::primitive_desc& hint) {
        auto d = convolution_backward_data::desc(alg, src, w, dst, strides, dil, pad, pad);
        return convolution_backward_data::primitive_desc(d, scratchpad_attr(), eng, hint);
      },
      [&](const memory::desc& w, const convolution_forward::primitive_desc& hint) {
        auto d = convolution_backward_weights::desc(alg, src, w, dbias, dst, strides, dil, pad, pad);
        return convolution_backward_weights::primitive_desc(d, scratchpad_attr(), eng, hint);
      });
}

// Where the bf16 weight gradient goes through im2col + matmul instead of oneDNN's direct kernel: output
// maps of at most 16 pixels, where the direct kernel is slowest. Measured on ResNet-18 at 64x64, batch
// 32 (backward ms of one 3x3 conv, direct vs im2col): 2x2 maps 4.2 vs 2.4, 4x4 1.8 vs 1.45, but 8x8
// 1.6 vs 1.9 and 16x16 1.5 vs 3.1.
bool im2col_bf16(const ConvSpec& s) { return s.out_h() * s.out_w() <= 16; }

class CpuConv final : public ConvKernel {
 public:
  CpuConv(CpuBackend& be, const ConvSpec& s) : op_(build(be, s)) {
    if (s.groups == 1 && s.dtype == DType::f32 && op_.backward_weights_impl().find("gemm") != std::string::npos)
      im2col_.emplace(be, s, op_.weights_desc(), op_.workspace_bytes());
    else if (s.dtype == DType::bf16 && im2col_bf16(s) && Im2colWeightGrad::bf16_fits(s))
      im2col_.emplace(be, s, op_.master_desc(), op_.workspace_bytes());
  }
  std::shared_ptr<const PackedLayout> weight_layout() const override { return op_.weight_layout(); }
  void forward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) override {
    op_.forward(ctx, x, w, b, y);
  }
  void backward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& dy, Tensor* dx,
                bool accumulate_dx, Tensor& dw, Tensor* db) override {
    const void* g = op_.masked_grad(ctx, y, dy);
    if (im2col_)
      im2col_->run(ctx, x.data(), g, dw.data(), db ? static_cast<float*>(db->data()) : nullptr);
    else
      op_.backward_weights(ctx, x, g, dw, db);
    if (dx) op_.backward_data(ctx, w, g, *dx, accumulate_dx);
  }
  std::vector<std::string> implementations() const override {
    auto v = op_.implementations();
    if (im2col_) {
      std::erase_if(v, [](const std::string& s) { return s.find("weight") != std::string::npos &&
                                                          s.find("weights reorder") == std::string::npos; });
      v.push_back("convolution backward-weights convoy:im2col+sgemm");
    }
    return v;
  }

 private:
  ConvOp op_;
  std::optional<Im2colWeightGrad> im2col_;
};

}  // namespace

std::unique_ptr<ConvKernel> make_conv(CpuBackend& be, const ConvSpec& spec) {
  check_spec(spec);
  if (gemm_conv_fits(spec)) return make_gemm_conv(be, spec);
  return std::make_unique<CpuConv>(be, spec);
}

}  // namespace convoy::ops::cpu
