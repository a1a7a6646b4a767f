// Elementwise layers: ReLU (oneDNN), residual add with optional fused ReLU (oneDNN binary + post-op),
// inverted dropout (a counter-based hash, so the mask is recomputed in backward instead of stored).
#include "ops/cpu/cpu_backend.h"
#include "ops/math/elementwise.h"

namespace convoy::ops::cpu {
namespace {

using namespace dnnl;

memory::desc flat_desc(const Shape& shape, DType t) { return memory::desc({shape.numel()}, to_dnnl(t), tag::a); }

// ReLU backward through the forward output: dx = dy * (y > 0).
class ReluBackward {
 public:
  ReluBackward() = default;
  ReluBackward(const engine& eng, const memory::desc& md) {
    auto hint = eltwise_forward::primitive_desc(
        eltwise_forward::desc(prop_kind::forward_training, algorithm::eltwise_relu_use_dst_for_bwd, md, 0.f), eng);
    pd_ = make_pd("ReLU backward", [&] {
      return eltwise_backward::primitive_desc(
          eltwise_backward::desc(algorithm::eltwise_relu_use_dst_for_bwd, md, md, 0.f), scratchpad_attr(), eng, hint);
    });
    call_ = Call(eltwise_backward(pd_), eng);
    for (int a : {DNNL_ARG_DST, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC}) call_.arg(a, md);
    call_.arg(DNNL_ARG_SCRATCHPAD, pd_.scratchpad_desc());
  }
  size_t scratch_bytes() const { return pd_.scratchpad_desc().get_size(); }
  void run(dnnl::stream& s, const void* y, const void* dy, void* dx, void* scratch) {
    call_.set(DNNL_ARG_DST, y);
    call_.set(DNNL_ARG_DIFF_DST, dy);
    call_.set(DNNL_ARG_DIFF_SRC, dx);
    call_.set(DNNL_ARG_SCRATCHPAD, scratch);
    call_.run(s);
  }
  std::string impl() const { return pd_.impl_info_str(); }

 private:
  eltwise_backward::primitive_desc pd_;
  Call call_;
};

class CpuRelu final : public ReluKernel {
 public:
  CpuRelu(CpuBackend& be, const Shape& shape, DType t) : n_(static_cast<size_t>(shape.numel())) {
    check_compute_dtype(t, "ReLU");
    auto md = flat_desc(shape, t);
    fwd_pd_ = make_pd("ReLU forward", [&] {
      return eltwise_forward::primitive_desc(
          eltwise_forward::desc(prop_kind::forward_training, algorithm::eltwise_relu_use_dst_for_bwd, md, 0.f),
          scratchpad_attr(), be.engine());
    });
    fwd_ = Call(eltwise_forward(fwd_pd_), be.engine());
    fwd_.arg(DNNL_ARG_SRC, md);
    fwd_.arg(DNNL_ARG_DST, md);
    fwd_.arg(DNNL_ARG_SCRATCHPAD, fwd_pd_.scratchpad_desc());
    bwd_ = ReluBackward(be.engine(), md);
    WorkspacePlan ws;
    off_dx_ = ws.add(md.get_size());
    off_scratch_ = ws.add(std::max(fwd_pd_.scratchpad_desc().get_size(), bwd_.scratch_bytes()));
    ws_bytes_ = ws.total();
    be.reserve_workspace(ws_bytes_);
  }

  void forward(ExecContext& ctx, const Tensor& x, Tensor& y) override {
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    fwd_.set(DNNL_ARG_SRC, x.data());
    fwd_.set(DNNL_ARG_DST, y.data());
    fwd_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    fwd_.run(cpu_ctx(ctx).stream());
  }

  void backward(ExecContext& ctx, const Tensor& y, const Tensor& dy, Tensor& dx, bool accumulate_dx) override {
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    void* out = accumulate_dx ? ws + off_dx_ : dx.data();
    bwd_.run(cpu_ctx(ctx).stream(), y.data(), dy.data(), out, ws + off_scratch_);
    if (accumulate_dx) write_or_accumulate(dx.data(), out, n_, true, dx.dtype());
  }

  std::vector<std::string> implementations() const override {
    return {std::string("relu forward ") + fwd_pd_.impl_info_str(), "relu backward " + bwd_.impl()};
  }

 private:
  size_t n_;
  eltwise_forward::primitive_desc fwd_pd_;
  Call fwd_;
  ReluBackward bwd_;
  size_t off_dx_ = 0, off_scratch_ = 0, ws_bytes_ = 0;
};

class CpuAdd final : public AddKernel {
 public:
  CpuAdd(CpuBackend& be, const Shape& shape, bool fuse_relu, DType t)
      : n_(static_cast<size_t>(shape.numel())), fuse_relu_(fuse_relu), dtype_(t) {
    check_compute_dtype(t, "elementwise add");
    auto md = flat_desc(shape, t);
    fwd_pd_ = make_pd("elementwise add", [&] {
      return binary::primitive_desc(binary::desc(algorithm::binary_add, md, md, md),
                                    fuse_relu ? relu_attr() : scratchpad_attr(), be.engine());
    });
    fwd_ = Call(binary(fwd_pd_), be.engine());
    for (int a : {DNNL_ARG_SRC_0, DNNL_ARG_SRC_1, DNNL_ARG_DST}) fwd_.arg(a, md);
    fwd_.arg(DNNL_ARG_SCRATCHPAD, fwd_pd_.scratchpad_desc());
    WorkspacePlan ws;
    size_t scratch = fwd_pd_.scratchpad_desc().get_size();
    if (fuse_relu) {
      bwd_ = ReluBackward(be.engine(), md);
      scratch = std::max(scratch, bwd_.scratch_bytes());
      off_g_ = ws.add(md.get_size());
    }
    off_scratch_ = ws.add(scratch);
    ws_bytes_ = ws.total();
    be.reserve_workspace(ws_bytes_);
  }

  void forward(ExecContext& ctx, const Tensor& a, const Tensor& b, Tensor& y) override {
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    fwd_.set(DNNL_ARG_SRC_0, a.data());
    fwd_.set(DNNL_ARG_SRC_1, b.data());
    fwd_.set(DNNL_ARG_DST, y.data());
    fwd_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    fwd_.run(cpu_ctx(ctx).stream());
  }

  void backward(ExecContext& ctx, const Tensor& y, const Tensor& dy, Tensor* da, bool accumulate_da, Tensor* db,
                bool accumulate_db) override {
    const void* g = dy.data();
    if (fuse_relu_) {
      char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
      // The masked gradient goes straight into da when da is overwritten, else into the workspace.
      void* masked = (da && !accumulate_da) ? da->data() : ws + off_g_;
      bwd_.run(cpu_ctx(ctx).stream(), y.data(), dy.data(), masked, ws + off_scratch_);
      g = masked;
    }
    if (da) write_or_accumulate(da->data(), g, n_, accumulate_da, dtype_);
    // One buffer for both (the graph's shared gradient, neither accumulating): written once, above.
    const bool shared = da && db && da->data() == db->data();
    if (db && !shared) write_or_accumulate(db->data(), g, n_, accumulate_db, dtype_);
  }

  std::vector<std::string> implementations() const override {
    std::vector<std::string> v{std::string("add forward ") + fwd_pd_.impl_info_str()};
    if (fuse_relu_) v.push_back("relu backward " + bwd_.impl());
    return v;
  }

 private:
  size_t n_;
  bool fuse_relu_;
  DType dtype_;
  binary::primitive_desc fwd_pd_;
  Call fwd_;
  ReluBackward bwd_;
  size_t off_g_ = 0, off_scratch_ = 0, ws_bytes_ = 0;
};

class CpuDropout final : public DropoutKernel {
 public:
  CpuDropout(const Shape& shape, float p, DType t) : n_(shape.numel()), p_(p), bf16_(t == DType::bf16) {
    CONVOY_CHECK(p >= 0.f && p < 1.f, "dropout probability must be in [0, 1), got " << p);
    check_compute_dtype(t, "dropout");
  }
  void forward(ExecContext&, const Tensor& x, Tensor& y, uint64_t seed, uint64_t step) override {
    apply(x.data(), y.data(), false, seed, step);
  }
  void backward(ExecContext&, const Tensor& dy, Tensor& dx, bool accumulate_dx, uint64_t seed,
                uint64_t step) override {
    apply(dy.data(), dx.data(), accumulate_dx, seed, step);
  }

 private:
  void apply(const void* in, void* out, bool accumulate, uint64_t seed, uint64_t step) const {
    if (bf16_)
      run(static_cast<const uint16_t*>(in), static_cast<uint16_t*>(out), accumulate, seed, step);
    else
      run(static_cast<const float*>(in), static_cast<float*>(out), accumulate, seed, step);
  }
  template <typename T>
  void run(const T* in, T* out, bool accumulate, uint64_t seed, uint64_t step) const {
    const float p = p_;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n_; ++i) {
      float v = load_f32(in[i]) * math::dropout_scale(seed, step, static_cast<uint64_t>(i), p);
      store_f32(out[i], accumulate ? load_f32(out[i]) + v : v);
    }
  }
  int64_t n_;
  float p_;
  bool bf16_;
};

}  // namespace

std::unique_ptr<ReluKernel> make_relu(CpuBackend& be, const Shape& shape, DType t) {
  return std::make_unique<CpuRelu>(be, shape, t);
}
std::unique_ptr<AddKernel> make_add(CpuBackend& be, const Shape& shape, bool fuse_relu, DType t) {
  return std::make_unique<CpuAdd>(be, shape, fuse_relu, t);
}
std::unique_ptr<DropoutKernel> make_dropout(CpuBackend&, const Shape& shape, float p, DType t) {
  return std::make_unique<CpuDropout>(shape, p, t);
}

}  // namespace convoy::ops::cpu
