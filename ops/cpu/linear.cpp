// Fully connected layer on oneDNN's inner product. A 4-d NHWC input keeps its shape: oneDNN's weights
// are (K, C, H, W), whose plain layout is exactly PyTorch's (K, C*H*W) after its NCHW flatten, so
// exported weights need no permutation.
#include "ops/cpu/weighted_op.h"

namespace convoy::ops::cpu {
namespace {

using namespace dnnl;
using LinearOp = WeightedOp<inner_product_forward, inner_product_backward_data, inner_product_backward_weights>;

LinearOp build(CpuBackend& be, const LinearSpec& s) {
  CONVOY_CHECK(s.in.rank() == 1 || s.in.rank() == 3,
               "a linear layer takes (N, C) or (N, H, W, C) input, got per-sample shape " << s.in.str());
  memory::desc src, w_any, w_plain;
  if (s.in.rank() == 1) {
    src = memory::desc({s.N, s.in[0]}, to_dnnl(s.dtype), tag::nc);
    w_any = memory::desc({s.K, s.in[0]}, to_dnnl(s.dtype), tag::any);
    w_plain = memory::desc({s.K, s.in[0]}, dt::f32, tag::oi);
  } else {
    src = nhwc_desc(s.N, s.in[0], s.in[1], s.in[2], s.dtype);
    w_any = memory::desc({s.K, s.in[2], s.in[0], s.in[1]}, to_dnnl(s.dtype), tag::any);
    w_plain = memory::desc({s.K, s.in[2], s.in[0], s.in[1]}, dt::f32, tag::oihw);
  }
  memory::desc dst({s.N, s.K}, to_dnnl(s.dtype), tag::nc);
  check_compute_dtype(s.dtype, "inner product");
  memory::desc bias = s.bias ? memory::desc({s.K}, to_dnnl(s.dtype), tag::x) : memory::desc();
  memory::desc dbias = s.bias ? memory::desc({s.K}, dt::f32, tag::x) : memory::desc();
  const engine& eng = be.engine();
  return LinearOp(
      be, "inner product", src, dst, w_any, w_plain, s.bias, s.fuse_relu,
      [&](const primitive_attr& attr) {
        auto d = inner_product_forward::desc(prop_kind::forward_training, src, w_any, bias, dst);
        return inner_product_forward::primitive_desc(d, attr, eng);
      },
      [&](const memory::desc& w, const inner_product_forward::primitive_desc& hint) {
        auto d = inner_product_backward_data::desc(src, w, dst);
        return inner_product_backward_data::primitive_desc(d, scratchpad_attr(), eng, hint);
      },
      [&](const memory::desc& w, const inner_product_forward::primitive_desc& hint) {
        auto d = inner_product_backward_weights::desc(src, w, dbias, dst);
        return inner_product_backward_weights::primitive_desc(d, scratchpad_attr(), eng, hint);
      });
}

class CpuLinear final : public LinearKernel {
 public:
  CpuLinear(CpuBackend& be, const LinearSpec& s) : op_(build(be, s)) {}
  std::shared_ptr<const PackedLayout> weight_layout() const override { return op_.weight_layout(); }
  void forward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) override {
    op_.forward(ctx, x, w, b, y);
  }
  void backward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& dy, Tensor* dx,
                bool accumulate_dx, Tensor& dw, Tensor* db) override {
    op_.backward(ctx, x, w, y, dy, dx, accumulate_dx, dw, db);
  }
  std::vector<std::string> implementations() const override { return op_.implementations(); }

 private:
  LinearOp op_;
};

}  // namespace

std::unique_ptr<LinearKernel> make_linear(CpuBackend& be, const LinearSpec& spec) {
  return std::make_unique<CpuLinear>(be, spec);
}

}  // namespace convoy::ops::cpu
