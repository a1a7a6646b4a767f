// Local response normalization across channels on oneDNN (AlexNet, GoogLeNet). oneDNN and PyTorch agree
// on the formula, y = x (k + alpha/size * sum x^2)^-beta, for odd window sizes.
#include "ops/cpu/cpu_backend.h"

namespace convoy::ops::cpu {
namespace {

using namespace dnnl;

class CpuLrn final : public LrnKernel {
 public:
  CpuLrn(CpuBackend& be, const LrnSpec& s) : n_(static_cast<size_t>(s.N * s.H * s.W * s.C)) {
    check_lrn_spec(s);
    check_compute_dtype(s.dtype, "LRN");
    auto md = nhwc_desc(s.N, s.H, s.W, s.C, s.dtype);
    const engine& eng = be.engine();
    auto alg = algorithm::lrn_across_channels;
    fwd_pd_ = make_pd("LRN forward", [&] {
      return lrn_forward::primitive_desc(
          lrn_forward::desc(prop_kind::forward_training, alg, md, s.size, s.alpha, s.beta, s.k), scratchpad_attr(),
          eng);
    });
    bwd_pd_ = make_pd("LRN backward", [&] {
      return lrn_backward::primitive_desc(lrn_backward::desc(alg, md, md, s.size, s.alpha, s.beta, s.k),
                                          scratchpad_attr(), eng, fwd_pd_);
    });
    saved_bytes_ = fwd_pd_.workspace_desc().get_size();
    WorkspacePlan ws;
    off_dx_ = ws.add(md.get_size());
    off_scratch_ = ws.add(std::max(fwd_pd_.scratchpad_desc().get_size(), bwd_pd_.scratchpad_desc().get_size()));
    ws_bytes_ = ws.total();
    be.reserve_workspace(ws_bytes_);
    fwd_ = Call(lrn_forward(fwd_pd_), eng);
    fwd_.arg(DNNL_ARG_SRC, md);
    fwd_.arg(DNNL_ARG_DST, md);
    if (saved_bytes_) fwd_.arg(DNNL_ARG_WORKSPACE, fwd_pd_.workspace_desc());
    fwd_.arg(DNNL_ARG_SCRATCHPAD, fwd_pd_.scratchpad_desc());
    bwd_ = Call(lrn_backward(bwd_pd_), eng);
    for (int a : {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC}) bwd_.arg(a, md);
    if (saved_bytes_) bwd_.arg(DNNL_ARG_WORKSPACE, fwd_pd_.workspace_desc());
    bwd_.arg(DNNL_ARG_SCRATCHPAD, bwd_pd_.scratchpad_desc());
  }

  size_t saved_bytes() const override { return saved_bytes_; }

  void forward(ExecContext& ctx, const Tensor& x, Tensor& y, Tensor& saved, bool) override {
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    fwd_.set(DNNL_ARG_SRC, x.data());
    fwd_.set(DNNL_ARG_DST, y.data());
    if (saved_bytes_) fwd_.set(DNNL_ARG_WORKSPACE, saved.data());
    fwd_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    fwd_.run(cpu_ctx(ctx).stream());
  }

  void backward(ExecContext& ctx, const Tensor& x, const Tensor& dy, const Tensor& saved, Tensor& dx,
                bool accumulate_dx) override {
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    void* out = accumulate_dx ? ws + off_dx_ : dx.data();
    bwd_.set(DNNL_ARG_SRC, x.data());
    bwd_.set(DNNL_ARG_DIFF_DST, dy.data());
    bwd_.set(DNNL_ARG_DIFF_SRC, out);
    if (saved_bytes_) bwd_.set(DNNL_ARG_WORKSPACE, saved.data());
    bwd_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    bwd_.run(cpu_ctx(ctx).stream());
    if (accumulate_dx) write_or_accumulate(dx.data(), out, n_, true, dx.dtype());
  }

  std::vector<std::string> implementations() const override {
    return {std::string("lrn forward ") + fwd_pd_.impl_info_str(), std::string("lrn backward ") + bwd_pd_.impl_info_str()};
  }

 private:
  size_t n_;
  lrn_forward::primitive_desc fwd_pd_;
  lrn_backward::primitive_desc bwd_pd_;
  Call fwd_, bwd_;
  size_t saved_bytes_ = 0, off_dx_ = 0, off_scratch_ = 0, ws_bytes_ = 0;
};

}  // namespace

std::unique_ptr<LrnKernel> make_lrn(CpuBackend& be, const LrnSpec& spec) { return std::make_unique<CpuLrn>(be, spec); }

}  // namespace convoy::ops::cpu
