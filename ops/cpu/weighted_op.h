// The plan shared by convolution and inner product: forward (optionally with a fused ReLU), backward-data
// and backward-weights primitives, with weights kept in the forward primitive's preferred layout. Backward
// primitives get the same layout where their fast implementation accepts it; otherwise one reorder per
// step converts (a reorder exists only where a layout actually differs).
//
// Mixed precision (bf16 activations): the kernels read bf16 weights, bf16 activations and bf16 output
// gradients, and write f32 weight and bias gradients. The fp32 master weights, their gradients and the
// optimizer state keep the bf16 weights' layout with f32 elements (with_data_type), so that the graph's
// compute copy is one elementwise cast of the whole parameter arena.
#pragma once

#include "ops/cpu/cpu_backend.h"

namespace convoy::ops::cpu {

template <typename Fwd, typename BwdData, typename BwdWeights>
class WeightedOp {
 public:
  using FwdPD = typename Fwd::primitive_desc;
  using BwdDataPD = typename BwdData::primitive_desc;
  using BwdWeightsPD = typename BwdWeights::primitive_desc;

  // make_fwd(attr) -> FwdPD; make_bwd_data(weights_md, fwd_pd) -> BwdDataPD;
  // make_bwd_weights(diff_weights_md, fwd_pd) -> BwdWeightsPD (f32 diff weights and bias). weights_md may be
  // format any. src, dst and w_any are in the compute dtype; w_plain is f32.
  template <typename MakeFwd, typename MakeBwdData, typename MakeBwdWeights>
  WeightedOp(CpuBackend& be, const char* what, const dnnl::memory::desc& src, const dnnl::memory::desc& dst,
             const dnnl::memory::desc& w_any, const dnnl::memory::desc& w_plain, bool bias, bool fuse_relu,
             MakeFwd make_fwd, MakeBwdData make_bwd_data, MakeBwdWeights make_bwd_weights)
      : what_(what), eng_(be.engine()), bias_(bias), fuse_relu_(fuse_relu) {
    using namespace dnnl;
    fwd_pd_ = make_pd(what, [&] { return make_fwd(fuse_relu ? relu_attr() : scratchpad_attr()); });
    weights_md_ = fwd_pd_.weights_desc();
    master_md_ = with_data_type(weights_md_, dt::f32);
    layout_ = std::make_shared<DnnlPackedLayout>(eng_, master_md_, w_plain);
    bwd_data_pd_ = make_pd(what, [&] { return make_bwd_data(w_any, fwd_pd_); });
    bwd_w_pd_ = make_pd(what, [&] { return make_bwd_weights(with_data_type(w_any, dt::f32), fwd_pd_); });
    if (bwd_w_pd_.diff_weights_desc() != master_md_) {
      try {  // the master layout directly, if the same implementation takes it
        auto forced = make_bwd_weights(master_md_, fwd_pd_);
        if (forced.impl_info_str() == bwd_w_pd_.impl_info_str()) bwd_w_pd_ = forced;
      } catch (const dnnl::error&) {
      }
    }

    WorkspacePlan ws;
    size_t scratch = std::max({fwd_pd_.scratchpad_desc().get_size(), bwd_data_pd_.scratchpad_desc().get_size(),
                               bwd_w_pd_.scratchpad_desc().get_size()});
    if (fuse_relu) {
      relu_pd_ = make_pd("ReLU backward", [&] {
        auto hint = eltwise_forward::primitive_desc(
            eltwise_forward::desc(prop_kind::forward_training, algorithm::eltwise_relu_use_dst_for_bwd, dst, 0.f),
            eng_);
        auto d = eltwise_backward::desc(algorithm::eltwise_relu_use_dst_for_bwd, dst, dst, 0.f);
        return eltwise_backward::primitive_desc(d, scratchpad_attr(), eng_, hint);
      });
      scratch = std::max(scratch, relu_pd_.scratchpad_desc().get_size());
      off_dy_ = ws.add(dst.get_size());
      relu_ = Call(eltwise_backward(relu_pd_), eng_);
      for (int a : {DNNL_ARG_DST, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC}) relu_.arg(a, dst);
      relu_.arg(DNNL_ARG_SCRATCHPAD, relu_pd_.scratchpad_desc());
    }
    auto make_reorder = [&](const memory::desc& from, const memory::desc& to, const char* name, Call& call,
                            size_t& off) {
      auto pd = make_pd(name, [&] { return reorder::primitive_desc(eng_, from, eng_, to, scratchpad_attr()); });
      scratch = std::max(scratch, pd.scratchpad_desc().get_size());
      off = ws.add(std::max(from.get_size(), to.get_size()));
      call = Call(reorder(pd), eng_);
      call.arg(DNNL_ARG_FROM, from);
      call.arg(DNNL_ARG_TO, to);
      call.arg(DNNL_ARG_SCRATCHPAD, pd.scratchpad_desc());
      reorder_impls_.push_back(std::string(name) + " " + pd.impl_info_str());
    };
    if (bwd_data_pd_.weights_desc() != weights_md_)
      make_reorder(weights_md_, bwd_data_pd_.weights_desc(), "weights reorder", w_reorder_, off_w_bwd_);
    if (bwd_w_pd_.diff_weights_desc() != master_md_)
      make_reorder(bwd_w_pd_.diff_weights_desc(), master_md_, "weight-gradient reorder", dw_reorder_, off_dw_);
    off_dx_ = ws.add(src.get_size());
    off_scratch_ = ws.add(scratch);
    ws_bytes_ = ws.total();
    be.reserve_workspace(ws_bytes_);

    fwd_ = Call(Fwd(fwd_pd_), eng_);
    fwd_.arg(DNNL_ARG_SRC, src);
    fwd_.arg(DNNL_ARG_WEIGHTS, weights_md_);
    if (bias) fwd_.arg(DNNL_ARG_BIAS, fwd_pd_.bias_desc());
    fwd_.arg(DNNL_ARG_DST, dst);
    fwd_.arg(DNNL_ARG_SCRATCHPAD, fwd_pd_.scratchpad_desc());

    bwd_data_ = Call(BwdData(bwd_data_pd_), eng_);
    bwd_data_.arg(DNNL_ARG_DIFF_DST, dst);
    bwd_data_.arg(DNNL_ARG_WEIGHTS, bwd_data_pd_.weights_desc());
    bwd_data_.arg(DNNL_ARG_DIFF_SRC, src);
    bwd_data_.arg(DNNL_ARG_SCRATCHPAD, bwd_data_pd_.scratchpad_desc());

    bwd_w_ = Call(BwdWeights(bwd_w_pd_), eng_);
    bwd_w_.arg(DNNL_ARG_SRC, src);
    bwd_w_.arg(DNNL_ARG_DIFF_DST, dst);
    bwd_w_.arg(DNNL_ARG_DIFF_WEIGHTS, bwd_w_pd_.diff_weights_desc());
    if (bias) bwd_w_.arg(DNNL_ARG_DIFF_BIAS, bwd_w_pd_.diff_bias_desc());
    bwd_w_.arg(DNNL_ARG_SCRATCHPAD, bwd_w_pd_.scratchpad_desc());
  }

  std::shared_ptr<const PackedLayout> weight_layout() const { return layout_; }

  void forward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    fwd_.set(DNNL_ARG_SRC, x.data());
    fwd_.set(DNNL_ARG_WEIGHTS, w.data());
    if (bias_) fwd_.set(DNNL_ARG_BIAS, b.data());
    fwd_.set(DNNL_ARG_DST, y.data());
    fwd_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    fwd_.run(cpu_ctx(ctx).stream());
  }

  // The gradient at the pre-activation: dy itself, or dy * (y > 0) in the workspace when ReLU is fused.
  const void* masked_grad(ExecContext& ctx, const Tensor& y, const Tensor& dy) {
    if (!fuse_relu_) return dy.data();
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    relu_.set(DNNL_ARG_DST, y.data());
    relu_.set(DNNL_ARG_DIFF_DST, dy.data());
    relu_.set(DNNL_ARG_DIFF_SRC, ws + off_dy_);
    relu_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    relu_.run(cpu_ctx(ctx).stream());
    return ws + off_dy_;
  }

  // dw (and db) from x and the masked output gradient g; overwrites.
  void backward_weights(ExecContext& ctx, const Tensor& x, const void* g, Tensor& dw, Tensor* db) {
    auto& stream = cpu_ctx(ctx).stream();
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    bwd_w_.set(DNNL_ARG_SRC, x.data());
    bwd_w_.set(DNNL_ARG_DIFF_DST, g);
    bwd_w_.set(DNNL_ARG_DIFF_WEIGHTS, dw_reorder_.valid() ? ws + off_dw_ : dw.data());
    if (bias_) bwd_w_.set(DNNL_ARG_DIFF_BIAS, db->data());
    bwd_w_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    bwd_w_.run(stream);
    if (dw_reorder_.valid()) {
      dw_reorder_.set(DNNL_ARG_FROM, ws + off_dw_);
      dw_reorder_.set(DNNL_ARG_TO, dw.data());
      dw_reorder_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
      dw_reorder_.run(stream);
    }
  }

  // dx from the masked output gradient g; overwrites or accumulates.
  void backward_data(ExecContext& ctx, const Tensor& w, const void* g, Tensor& dx, bool accumulate_dx) {
    auto& stream = cpu_ctx(ctx).stream();
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    const void* weights = w.data();
    if (w_reorder_.valid()) {
      w_reorder_.set(DNNL_ARG_FROM, w.data());
      w_reorder_.set(DNNL_ARG_TO, ws + off_w_bwd_);
      w_reorder_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
      w_reorder_.run(stream);
      weights = ws + off_w_bwd_;
    }
    void* out = accumulate_dx ? ws + off_dx_ : dx.data();
    bwd_data_.set(DNNL_ARG_DIFF_DST, g);
    bwd_data_.set(DNNL_ARG_WEIGHTS, weights);
    bwd_data_.set(DNNL_ARG_DIFF_SRC, out);
    bwd_data_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    bwd_data_.run(stream);
    if (accumulate_dx) write_or_accumulate(dx.data(), out, static_cast<size_t>(dx.numel()), true, dx.dtype());
  }

  void backward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& dy, Tensor* dx,
                bool accumulate_dx, Tensor& dw, Tensor* db) {
    const void* g = masked_grad(ctx, y, dy);
    backward_weights(ctx, x, g, dw, db);
    if (dx) backward_data(ctx, w, g, *dx, accumulate_dx);
  }

  // Workspace bytes this op uses from the start of the context's workspace (others may follow it).
  size_t workspace_bytes() const { return ws_bytes_; }
  std::string backward_weights_impl() const { return bwd_w_pd_.impl_info_str(); }
  const dnnl::memory::desc& weights_desc() const { return weights_md_; }
  const dnnl::memory::desc& master_desc() const { return master_md_; }

  std::vector<std::string> implementations() const {
    std::string w = what_;
    std::vector<std::string> v{w + " forward " + fwd_pd_.impl_info_str(),
                               w + " backward-data " + bwd_data_pd_.impl_info_str(),
                               w + " backward-weights " + bwd_w_pd_.impl_info_str()};
    if (fuse_relu_) v.push_back(std::string("relu backward ") + relu_pd_.impl_info_str());
    v.insert(v.end(), reorder_impls_.begin(), reorder_impls_.end());
    return v;
  }

 private:
  const char* what_;
  dnnl::engine eng_;
  bool bias_, fuse_relu_;
  FwdPD fwd_pd_;
  BwdDataPD bwd_data_pd_;
  BwdWeightsPD bwd_w_pd_;
  dnnl::eltwise_backward::primitive_desc relu_pd_;
  dnnl::memory::desc weights_md_, master_md_;  // the weights kernels read; the fp32 master weights' layout
  std::shared_ptr<DnnlPackedLayout> layout_;
  Call fwd_, bwd_data_, bwd_w_, relu_, w_reorder_, dw_reorder_;
  std::vector<std::string> reorder_impls_;
  size_t off_dy_ = 0, off_w_bwd_ = 0, off_dw_ = 0, off_dx_ = 0, off_scratch_ = 0, ws_bytes_ = 0;
};

}  // namespace convoy::ops::cpu
