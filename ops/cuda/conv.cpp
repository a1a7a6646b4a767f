// Convolution on cuDNN: NHWC activations, KRSC filters, algorithms searched once per shape
// (cudnnFind*AlgorithmEx within the workspace limit) and cached by the spec; bias and ReLU fused by
// cudnnConvolutionBiasActivationForward. In f16/bf16 (mixed precision) activations, weights and bias are
// half, cuDNN computes in f32 on tensor cores, and the weight and bias gradients reach the f32 gradient
// arena: cuDNN's half weight gradient is cast up, the bias gradient summed by convoy's kernel in f32.
#include <vector>

#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/elementwise.h"

namespace convoy::ops::cuda {
namespace {

constexpr float kOne = 1.f, kZero = 0.f;

size_t align256(size_t b) { return (b + 255) / 256 * 256; }

// Picks the fastest result that succeeded, fits the limit and is deterministic when asked (cuDNN returns
// them fastest first). fp32 never takes one that converts to fp16 (ALLOW_CONVERSION), and IEEE fp32 none
// on tensor cores.
template <typename Perf>
const Perf* pick(const std::vector<Perf>& results, int count, size_t limit, bool deterministic, bool f32, bool ieee) {
  for (int i = 0; i < count; ++i) {
    const Perf& p = results[static_cast<size_t>(i)];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > limit) continue;
    if (deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
    if (f32 && p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    if (ieee && p.mathType == CUDNN_TENSOR_OP_MATH) continue;
    return &p;
  }
  return nullptr;
}

struct Scratch {  // device buffers for the search, returned to the cache afterwards
  Scratch(CachingAllocator& a, size_t bytes) : a_(a), bytes_(bytes), p_(a.allocate(bytes)) {}
  ~Scratch() { a_.deallocate(p_, bytes_); }
  CachingAllocator& a_;
  size_t bytes_;
  void* p_;
};

}  // namespace

ConvAlgos CudaBackend::conv_algorithms(const ConvSpec& s) {
  const std::string key = conv_algo_key(s, o_.fp32, o_.deterministic, o_.conv_workspace_limit);
  std::lock_guard<std::mutex> lock(algo_mu_);
  if (auto it = algos_.find(key); it != algos_.end()) return it->second;

  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  x.set_nhwc(s.N, s.H, s.W, s.C, s.dtype);
  y.set_nhwc(s.N, s.out_h(), s.out_w(), s.K, s.dtype);
  w.set(s);
  conv.set(s, o_.fp32);
  const size_t es = dtype_size(s.dtype);
  Scratch xs(*device_alloc_, static_cast<size_t>(s.N * s.H * s.W * s.C) * es);
  Scratch ys(*device_alloc_, static_cast<size_t>(s.N * s.out_h() * s.out_w() * s.K) * es);
  Scratch ws(*device_alloc_, static_cast<size_t>(s.weight_shape().numel()) * es);
  // The search's workspace: the limit, or half of what the GPU has free if that is less (cuDNN and cuBLAS
  // allocate their own memory outside the cache).
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const size_t limit = std::max<size_t>(std::min(o_.conv_workspace_limit, free_bytes / 2), 1 << 20);
  Scratch work(*device_alloc_, limit);
  cudnnHandle_t h = ctx_->cudnn();
  const bool f32 = s.dtype == DType::f32, ieee = f32 && o_.fp32 == Fp32Math::ieee;
  const char* why = o_.deterministic ? " deterministic" : "";

  ConvAlgos a{};
  int n = 0;
  std::vector<cudnnConvolutionFwdAlgoPerf_t> fwd(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
  CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, x.get(), xs.p_, w.get(), ws.p_, conv.get(), y.get(), ys.p_,
                                                     static_cast<int>(fwd.size()), &n, fwd.data(), work.p_,
                                                     limit));
  const auto* f = pick(fwd, n, limit, o_.deterministic, f32, ieee);
  CONVOY_CHECK(f, "cuDNN has no" << why << " forward algorithm for convolution " << key << " within "
                                 << limit << " bytes of workspace");
  a.fwd = f->algo, a.fwd_bytes = f->memory, a.fwd_math = f->mathType;

  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> bd(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
  CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, w.get(), ws.p_, y.get(), ys.p_, conv.get(), x.get(), xs.p_,
                                                          static_cast<int>(bd.size()), &n, bd.data(), work.p_,
                                                          limit));
  const auto* d = pick(bd, n, limit, o_.deterministic, f32, ieee);
  CONVOY_CHECK(d, "cuDNN has no" << why << " backward-data algorithm for convolution " << key);
  a.bwd_data = d->algo, a.bwd_data_bytes = d->memory, a.bwd_data_math = d->mathType;

  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> bf(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
  CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, x.get(), xs.p_, y.get(), ys.p_, conv.get(), w.get(),
                                                            ws.p_, static_cast<int>(bf.size()), &n, bf.data(), work.p_,
                                                            limit));
  const auto* g = pick(bf, n, limit, o_.deterministic, f32, ieee);
  CONVOY_CHECK(g, "cuDNN has no" << why << " backward-filter algorithm for convolution " << key);
  a.bwd_filter = g->algo, a.bwd_filter_bytes = g->memory, a.bwd_filter_math = g->mathType;
  ctx_->synchronize();  // the scratch buffers go back to the cache
  algos_.emplace(key, a);
  return a;
}

namespace {

class CudaConv final : public ConvKernel {
 public:
  CudaConv(CudaBackend& be, const ConvSpec& s) : be_(be), s_(s), act_(true) {
    require_float(s.dtype, "convolution");
    CONVOY_CHECK(s.C % s.groups == 0 && s.K % s.groups == 0,
                 "convolution: " << s.C << " input and " << s.K << " output channels do not split into " << s.groups
                                 << " groups");
    int64_t n, k, oh, ow;
    cudnn_output_shape(s, be.options().fp32, n, k, oh, ow);
    CONVOY_CHECK(oh == s.out_h() && ow == s.out_w(), "internal: cuDNN's convolution output " << oh << "x" << ow
                                                                                          << " differs from "
                                                                                          << s.out_h() << "x"
                                                                                          << s.out_w());
    x_.set_nhwc(s.N, s.H, s.W, s.C, s.dtype);
    y_.set_nhwc(s.N, s.out_h(), s.out_w(), s.K, s.dtype);
    bias_.set_nhwc(1, 1, 1, s.K, s.dtype);
    w_.set(s);
    algos_ = be.conv_algorithms(s);
    // One descriptor per direction, each with the math type its algorithm was found with.
    for (ConvDesc* d : {&fwd_, &bwd_data_, &bwd_filter_}) d->set(s, be.options().fp32);
    fwd_.set_math(algos_.fwd_math);
    bwd_data_.set_math(algos_.bwd_data_math);
    bwd_filter_.set_math(algos_.bwd_filter_math);
    const size_t es = dtype_size(s.dtype);
    y_bytes_ = static_cast<size_t>(s.N * s.out_h() * s.out_w() * s.K) * es;
    masked_ = s.fuse_relu ? align256(y_bytes_) : 0;
    // A half weight gradient lands in the workspace before it is cast into the f32 arena.
    half_dw_ = s.dtype == DType::f32 ? 0 : align256(static_cast<size_t>(s.weight_shape().numel()) * es);
    be.reserve_workspace(std::max({algos_.fwd_bytes, masked_ + algos_.bwd_data_bytes,
                                   masked_ + half_dw_ + algos_.bwd_filter_bytes, size_t{256}}));
    if (s.fuse_relu && !s.bias) {  // the fused call needs a bias: a zero one (all-zero bytes in every dtype)
      zero_bias_ = Tensor::empty(Shape{s.K}, s.dtype, be.allocator());
      CUDA_CHECK(cudaMemsetAsync(zero_bias_.data(), 0, zero_bias_.bytes(), be.cuda_context().stream()));
    }
    layout_ = std::make_shared<ReorderedLayout>(Shape{s.K, s.C / s.groups, s.R, s.S}, oihw_to_ohwi);
  }

  std::shared_ptr<const PackedLayout> weight_layout() const override { return layout_; }

  void forward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) override {
    CudaContext& c = cuda_ctx(ctx);
    void* ws = c.workspace(algos_.fwd_bytes);
    if (s_.fuse_relu && fused_forward_) {
      const void* bias = s_.bias ? b.data() : zero_bias_.data();
      const cudnnStatus_t st = cudnnConvolutionBiasActivationForward(
          c.cudnn(), &kOne, x_.get(), x.data(), w_.get(), w.data(), fwd_.get(), algos_.fwd, ws, algos_.fwd_bytes,
          &kZero, y_.get(), y.data(), bias_.get(), bias, act_.get(), y_.get(), y.data());
      // cuDNN answers NOT_SUPPORTED for a combination its fused call lacks; for half tensors the documented
      // bias type varies between versions, so BAD_PARAM there means the same (the unfused path below takes
      // a bias of the layer's dtype in cudnnAddTensor).
      const bool half = s_.dtype != DType::f32;
      if (st != CUDNN_STATUS_NOT_SUPPORTED && !(half && st == CUDNN_STATUS_BAD_PARAM)) {
        CUDNN_CHECK(st);
        return;
      }
      fused_forward_ = false;  // this dtype or algorithm has no fused call: convolution, bias, then our ReLU
    }
    CUDNN_CHECK(cudnnConvolutionForward(c.cudnn(), &kOne, x_.get(), x.data(), w_.get(), w.data(), fwd_.get(),
                                        algos_.fwd, ws, algos_.fwd_bytes, &kZero, y_.get(), y.data()));
    if (s_.bias) CUDNN_CHECK(cudnnAddTensor(c.cudnn(), &kOne, bias_.get(), b.data(), &kOne, y_.get(), y.data()));
    if (s_.fuse_relu) relu_forward(c.stream(), elem(s_.dtype), y.data(), y.data(), y.numel());
  }

  void backward(ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& dy, Tensor* dx,
                bool accumulate_dx, Tensor& dw, Tensor* db) override {
    CudaContext& c = cuda_ctx(ctx);
    char* ws = static_cast<char*>(
        c.workspace(std::max(masked_ + algos_.bwd_data_bytes, masked_ + half_dw_ + algos_.bwd_filter_bytes)));
    const void* g = dy.data();
    if (s_.fuse_relu) {  // the gradient through the fused ReLU, into the workspace's head
      relu_backward(c.stream(), elem(s_.dtype), y.data(), dy.data(), ws, y.numel(), false);
      g = ws;
    }
    const bool half = s_.dtype != DType::f32;
    if (s_.bias && db && !half)
      CUDNN_CHECK(cudnnConvolutionBackwardBias(c.cudnn(), &kOne, y_.get(), g, &kZero, bias_.get(), db->data()));
    else if (s_.bias && db)
      bias_grad_rows(c.stream(), elem(s_.dtype), g, db->data_as<float>(), s_.N * s_.out_h() * s_.out_w(), s_.K);
    void* filter = half ? ws + masked_ : dw.data();
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(c.cudnn(), &kOne, x_.get(), x.data(), y_.get(), g, bwd_filter_.get(),
                                               algos_.bwd_filter, ws + masked_ + half_dw_, algos_.bwd_filter_bytes,
                                               &kZero, w_.get(), filter));
    if (half)
      cast_from_half(c.stream(), static_cast<const uint16_t*>(filter), dw.data_as<float>(), s_.weight_shape().numel(),
                     s_.dtype == DType::bf16);
    if (dx)
      CUDNN_CHECK(cudnnConvolutionBackwardData(c.cudnn(), &kOne, w_.get(), w.data(), y_.get(), g, bwd_data_.get(),
                                               algos_.bwd_data, ws + masked_, algos_.bwd_data_bytes,
                                               accumulate_dx ? &kOne : &kZero, x_.get(), dx->data()));
  }

  std::vector<std::string> implementations() const override {
    return {"cudnn fwd algo " + std::to_string(static_cast<int>(algos_.fwd)) + " " + dtype_name(s_.dtype) +
                (s_.fuse_relu ? (fused_forward_ ? " bias+relu fused" : " bias, convoy relu") : ""),
            "cudnn bwd-data algo " + std::to_string(static_cast<int>(algos_.bwd_data)),
            "cudnn bwd-filter algo " + std::to_string(static_cast<int>(algos_.bwd_filter))};
  }

 private:
  CudaBackend& be_;
  ConvSpec s_;
  TensorDesc x_, y_, bias_;
  FilterDesc w_;
  ConvDesc fwd_, bwd_data_, bwd_filter_;
  ActivationDesc act_;
  ConvAlgos algos_{};
  size_t y_bytes_ = 0, masked_ = 0, half_dw_ = 0;
  bool fused_forward_ = true;  // cudnnConvolutionBiasActivationForward accepted so far
  Tensor zero_bias_;
  std::shared_ptr<ReorderedLayout> layout_;
};

}  // namespace

std::unique_ptr<ConvKernel> make_conv(CudaBackend& be, const ConvSpec& s) { return std::make_unique<CudaConv>(be, s); }

}  // namespace convoy::ops::cuda
