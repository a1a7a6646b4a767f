// Batch normalization on oneDNN, optionally fused with the ReLU after it (oneDNN keeps a bit mask of
// the ReLU in the forward workspace for the backward pass). Running statistics follow PyTorch: momentum
// 0.1 by default and the unbiased batch variance.
#include "ops/cpu/cpu_backend.h"
#include "ops/math/elementwise.h"

namespace convoy::ops::cpu {
namespace {

using namespace dnnl;

// oneDNN's three primitive descriptors for one spec: cheap to make (no kernel is generated, nothing is
// reserved), so make_batch_norm can read their implementations before it commits to oneDNN.
struct BatchNormPds {
  batch_normalization_forward::primitive_desc train, eval;
  batch_normalization_backward::primitive_desc bwd;

  BatchNormPds(const engine& eng, const BatchNormSpec& s) {
    check_compute_dtype(s.dtype, "batch normalization");
    auto data = nhwc_desc(s.N, s.H, s.W, s.C, s.dtype);  // statistics, γ and β stay f32
    auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
    if (s.fuse_relu) flags |= normalization_flags::fuse_norm_relu;
    train = make_pd("batch-norm forward", [&] {
      auto d = batch_normalization_forward::desc(prop_kind::forward_training, data, s.eps, flags);
      return batch_normalization_forward::primitive_desc(d, scratchpad_attr(), eng);
    });
    eval = make_pd("batch-norm inference", [&] {
      auto d = batch_normalization_forward::desc(prop_kind::forward_inference, data, s.eps,
                                                 flags | normalization_flags::use_global_stats);
      return batch_normalization_forward::primitive_desc(d, scratchpad_attr(), eng);
    });
    bwd = make_pd("batch-norm backward", [&] {
      auto d = batch_normalization_backward::desc(prop_kind::backward, data, data, s.eps, flags);
      return batch_normalization_backward::primitive_desc(d, scratchpad_attr(), eng, train);
    });
  }

  // The training implementation (forward or backward) that is oneDNN's reference code, or "".
  std::string training_reference() const {
    for (const char* impl : {train.impl_info_str(), bwd.impl_info_str()}) {
      std::string name(impl);
      if (name.size() >= 4 && name.compare(name.size() - 4, 4, ":any") == 0) return name;
    }
    return "";
  }
};

class CpuBatchNorm final : public BatchNormKernel {
 public:
  CpuBatchNorm(CpuBackend& be, const BatchNormSpec& s, BatchNormPds pds)
      : s_(s), eng_(be.engine()), train_pd_(std::move(pds.train)), eval_pd_(std::move(pds.eval)),
        bwd_pd_(std::move(pds.bwd)) {
    memory::desc data = train_pd_.src_desc();  // the NHWC descriptor BatchNormPds made
    auto stat = memory::desc({s.C}, dt::f32, tag::x);
    saved_bytes_ = s.fuse_relu ? train_pd_.workspace_desc().get_size() : 0;

    WorkspacePlan ws;
    off_dx_ = ws.add(data.get_size());
    off_scratch_ = ws.add(std::max({train_pd_.scratchpad_desc().get_size(), eval_pd_.scratchpad_desc().get_size(),
                                    bwd_pd_.scratchpad_desc().get_size()}));
    ws_bytes_ = ws.total();
    be.reserve_workspace(ws_bytes_);

    train_ = Call(batch_normalization_forward(train_pd_), eng_);
    for (int a : {DNNL_ARG_SRC, DNNL_ARG_DST}) train_.arg(a, data);
    for (int a : {DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_SCALE, DNNL_ARG_SHIFT}) train_.arg(a, stat);
    if (s.fuse_relu) train_.arg(DNNL_ARG_WORKSPACE, train_pd_.workspace_desc());
    train_.arg(DNNL_ARG_SCRATCHPAD, train_pd_.scratchpad_desc());

    eval_ = Call(batch_normalization_forward(eval_pd_), eng_);
    for (int a : {DNNL_ARG_SRC, DNNL_ARG_DST}) eval_.arg(a, data);
    for (int a : {DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_SCALE, DNNL_ARG_SHIFT}) eval_.arg(a, stat);
    eval_.arg(DNNL_ARG_SCRATCHPAD, eval_pd_.scratchpad_desc());

    bwd_ = Call(batch_normalization_backward(bwd_pd_), eng_);
    for (int a : {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC}) bwd_.arg(a, data);
    for (int a : {DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_DIFF_SCALE,
                  DNNL_ARG_DIFF_SHIFT})
      bwd_.arg(a, stat);
    if (s.fuse_relu) bwd_.arg(DNNL_ARG_WORKSPACE, train_pd_.workspace_desc());
    bwd_.arg(DNNL_ARG_SCRATCHPAD, bwd_pd_.scratchpad_desc());
  }

  size_t saved_bytes() const override { return saved_bytes_; }

  void forward_train(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y,
                     Tensor& saved_mean, Tensor& saved_var, Tensor& saved, Tensor& running_mean, Tensor& running_var,
                     Tensor& num_batches_tracked) override {
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    train_.set(DNNL_ARG_SRC, x.data());
    train_.set(DNNL_ARG_DST, y.data());
    train_.set(DNNL_ARG_MEAN, saved_mean.data());
    train_.set(DNNL_ARG_VARIANCE, saved_var.data());
    train_.set(DNNL_ARG_SCALE, gamma.data());
    train_.set(DNNL_ARG_SHIFT, beta.data());
    if (s_.fuse_relu) train_.set(DNNL_ARG_WORKSPACE, saved.data());
    train_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    train_.run(cpu_ctx(ctx).stream());

    const float* bm = saved_mean.host<float>();
    const float* bv = saved_var.host<float>();
    float* rm = running_mean.host<float>();
    float* rv = running_var.host<float>();
    const int64_t count = s_.N * s_.H * s_.W;
    for (int64_t c = 0; c < s_.C; ++c) math::bn_running_update(rm[c], rv[c], bm[c], bv[c], s_.momentum, count);
    num_batches_tracked.host<int64_t>()[0] += 1;
  }

  void forward_eval(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                    const Tensor& running_mean, const Tensor& running_var, Tensor& y) override {
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    eval_.set(DNNL_ARG_SRC, x.data());
    eval_.set(DNNL_ARG_DST, y.data());
    eval_.set(DNNL_ARG_MEAN, running_mean.data());
    eval_.set(DNNL_ARG_VARIANCE, running_var.data());
    eval_.set(DNNL_ARG_SCALE, gamma.data());
    eval_.set(DNNL_ARG_SHIFT, beta.data());
    eval_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    eval_.run(cpu_ctx(ctx).stream());
  }

  void backward(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor&,
                const Tensor& saved_mean, const Tensor& saved_var, const Tensor& saved, const Tensor& dy, Tensor* dx,
                bool accumulate_dx, Tensor& dgamma, Tensor& dbeta) override {
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    // oneDNN's backward always produces dx; when the caller needs none it lands in the workspace.
    void* out = (!dx || accumulate_dx) ? ws + off_dx_ : dx->data();
    bwd_.set(DNNL_ARG_SRC, x.data());
    bwd_.set(DNNL_ARG_DIFF_DST, dy.data());
    bwd_.set(DNNL_ARG_DIFF_SRC, out);
    bwd_.set(DNNL_ARG_MEAN, saved_mean.data());
    bwd_.set(DNNL_ARG_VARIANCE, saved_var.data());
    bwd_.set(DNNL_ARG_SCALE, gamma.data());
    bwd_.set(DNNL_ARG_SHIFT, beta.data());
    bwd_.set(DNNL_ARG_DIFF_SCALE, dgamma.data());
    bwd_.set(DNNL_ARG_DIFF_SHIFT, dbeta.data());
    if (s_.fuse_relu) bwd_.set(DNNL_ARG_WORKSPACE, saved.data());
    bwd_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    bwd_.run(cpu_ctx(ctx).stream());
    if (dx && accumulate_dx) write_or_accumulate(dx->data(), out, static_cast<size_t>(dx->numel()), true, dx->dtype());
  }

  std::vector<std::string> implementations() const override {
    return {std::string("batch-norm forward ") + train_pd_.impl_info_str(), std::string("batch-norm inference ") + eval_pd_.impl_info_str(),
            std::string("batch-norm backward ") + bwd_pd_.impl_info_str()};
  }

 private:
  BatchNormSpec s_;
  engine eng_;
  batch_normalization_forward::primitive_desc train_pd_, eval_pd_;
  batch_normalization_backward::primitive_desc bwd_pd_;
  Call train_, eval_, bwd_;
  size_t saved_bytes_ = 0, off_dx_ = 0, off_scratch_ = 0, ws_bytes_ = 0;
};

}  // namespace

// oneDNN's choice, unless for training it has only its reference code (an implementation named "...:any",
// as for bf16 with channels not a multiple of 16: 45 ms a call at 64x28x28x24, 10x the whole step of the
// network around it); then convoy's own loops.
std::unique_ptr<BatchNormKernel> make_batch_norm(CpuBackend& be, const BatchNormSpec& spec) {
  BatchNormPds pds(be.engine(), spec);
  std::string ref = pds.training_reference();
  if (!ref.empty())
    return make_loop_batch_norm(spec, "oneDNN has only " + ref + " for " + std::to_string(spec.C) + " " +
                                          dtype_name(spec.dtype) + " channels");
  return std::make_unique<CpuBatchNorm>(be, spec, std::move(pds));
}

}  // namespace convoy::ops::cpu
