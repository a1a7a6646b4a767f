// Max and average pooling on oneDNN with PyTorch's semantics: its output size (ceil mode included) and its
// average-pooling divisor. oneDNN's exclude-padding divisor is PyTorch's count_include_pad=False; for
// count_include_pad=True oneDNN's include-padding divisor matches unless ceil mode adds padding past
// PyTorch's own, and then a per-position factor converts the exclude-padding result.
#include <algorithm>
#include <cstring>

#include "ops/cpu/cpu_backend.h"

namespace convoy::ops::cpu {
namespace {

using namespace dnnl;

class CpuPool final : public PoolKernel {
 public:
  CpuPool(CpuBackend& be, const PoolSpec& s) : s_(s), eng_(be.engine()) {
    OH_ = s.out_h();
    OW_ = s.out_w();
    check_pool_spec(s);
    check_compute_dtype(s.dtype, "pooling");
    int64_t pr_h = std::max<int64_t>(0, (OH_ - 1) * s.stride_h + s.kh - s.H - s.pad_h);
    int64_t pr_w = std::max<int64_t>(0, (OW_ - 1) * s.stride_w + s.kw - s.W - s.pad_w);
    algorithm alg = algorithm::pooling_max;
    if (s.kind == PoolKind::avg) {
      bool extra = pr_h > s.pad_h || pr_w > s.pad_w;
      alg = (s.count_include_pad && !extra) ? algorithm::pooling_avg_include_padding
                                            : algorithm::pooling_avg_exclude_padding;
      if (s.count_include_pad && extra) make_factors();
    }
    auto src = nhwc_desc(s.N, s.H, s.W, s.C, s.dtype);
    auto dst = nhwc_desc(s.N, OH_, OW_, s.C, s.dtype);
    memory::dims strides{s.stride_h, s.stride_w}, kernel{s.kh, s.kw}, dil{0, 0};
    memory::dims pl{s.pad_h, s.pad_w}, pr{pr_h, pr_w};
    fwd_pd_ = make_pd("pooling forward", [&] {
      auto d = pooling_v2_forward::desc(prop_kind::forward_training, alg, src, dst, strides, kernel, dil, pl, pr);
      return pooling_v2_forward::primitive_desc(d, scratchpad_attr(), eng_);
    });
    bwd_pd_ = make_pd("pooling backward", [&] {
      auto d = pooling_v2_backward::desc(alg, src, dst, strides, kernel, dil, pl, pr);
      return pooling_v2_backward::primitive_desc(d, scratchpad_attr(), eng_, fwd_pd_);
    });
    has_ws_ = s.kind == PoolKind::max;
    saved_bytes_ = has_ws_ ? fwd_pd_.workspace_desc().get_size() : 0;

    WorkspacePlan ws;
    off_dx_ = ws.add(src.get_size());
    off_dy_ = factors_.empty() ? 0 : ws.add(dst.get_size());
    off_scratch_ = ws.add(std::max(fwd_pd_.scratchpad_desc().get_size(), bwd_pd_.scratchpad_desc().get_size()));
    ws_bytes_ = ws.total();
    be.reserve_workspace(ws_bytes_);

    fwd_ = Call(pooling_v2_forward(fwd_pd_), eng_);
    fwd_.arg(DNNL_ARG_SRC, src);
    fwd_.arg(DNNL_ARG_DST, dst);
    if (has_ws_) fwd_.arg(DNNL_ARG_WORKSPACE, fwd_pd_.workspace_desc());
    fwd_.arg(DNNL_ARG_SCRATCHPAD, fwd_pd_.scratchpad_desc());
    bwd_ = Call(pooling_v2_backward(bwd_pd_), eng_);
    bwd_.arg(DNNL_ARG_DIFF_DST, dst);
    bwd_.arg(DNNL_ARG_DIFF_SRC, src);
    if (has_ws_) bwd_.arg(DNNL_ARG_WORKSPACE, fwd_pd_.workspace_desc());
    bwd_.arg(DNNL_ARG_SCRATCHPAD, bwd_pd_.scratchpad_desc());
  }

  size_t saved_bytes() const override { return saved_bytes_; }

  void forward(ExecContext& ctx, const Tensor& x, Tensor& y, Tensor& saved, bool training) override {
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    fwd_.set(DNNL_ARG_SRC, x.data());
    fwd_.set(DNNL_ARG_DST, y.data());
    // Inference runs the training primitive too: the argmax write is cheap and keeps one plan.
    if (has_ws_) fwd_.set(DNNL_ARG_WORKSPACE, saved.data());
    fwd_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    fwd_.run(cpu_ctx(ctx).stream());
    (void)training;
    if (!factors_.empty()) scale_by_factors(y.data(), y.data());
  }

  void backward(ExecContext& ctx, const Tensor& dy, const Tensor& saved, Tensor& dx, bool accumulate_dx) override {
    char* ws = static_cast<char*>(ctx.workspace(ws_bytes_));
    const void* g = dy.data();
    if (!factors_.empty()) {
      scale_by_factors(dy.data(), ws + off_dy_);
      g = ws + off_dy_;
    }
    void* out = accumulate_dx ? ws + off_dx_ : dx.data();
    bwd_.set(DNNL_ARG_DIFF_DST, g);
    bwd_.set(DNNL_ARG_DIFF_SRC, out);
    if (has_ws_) bwd_.set(DNNL_ARG_WORKSPACE, saved.data());
    bwd_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    bwd_.run(cpu_ctx(ctx).stream());
    if (accumulate_dx) write_or_accumulate(dx.data(), out, static_cast<size_t>(dx.numel()), true, dx.dtype());
  }

  std::vector<std::string> implementations() const override {
    return {std::string("pooling forward ") + fwd_pd_.impl_info_str(), std::string("pooling backward ") + bwd_pd_.impl_info_str()};
  }

 private:
  // factor[oh][ow] = (valid elements of the window) / (PyTorch's count_include_pad divisor).
  void make_factors() {
    factors_.resize(static_cast<size_t>(OH_ * OW_));
    for (int64_t oh = 0; oh < OH_; ++oh) {
      int64_t h0 = oh * s_.stride_h - s_.pad_h, h1 = std::min(h0 + s_.kh, s_.H + s_.pad_h);
      int64_t vh = std::min(h1, s_.H) - std::max<int64_t>(h0, 0);
      for (int64_t ow = 0; ow < OW_; ++ow) {
        int64_t w0 = ow * s_.stride_w - s_.pad_w, w1 = std::min(w0 + s_.kw, s_.W + s_.pad_w);
        int64_t vw = std::min(w1, s_.W) - std::max<int64_t>(w0, 0);
        factors_[static_cast<size_t>(oh * OW_ + ow)] =
            static_cast<float>(vh * vw) / static_cast<float>((h1 - h0) * (w1 - w0));
      }
    }
  }

  void scale_by_factors(const void* in, void* out) const {
    if (s_.dtype == DType::bf16)
      scale_by_factors(static_cast<const uint16_t*>(in), static_cast<uint16_t*>(out));
    else
      scale_by_factors(static_cast<const float*>(in), static_cast<float*>(out));
  }
  template <typename T>
  void scale_by_factors(const T* in, T* out) const {
    const int64_t C = s_.C, plane = OH_ * OW_;
#pragma omp parallel for schedule(static)
    for (int64_t np = 0; np < s_.N * plane; ++np) {
      float f = factors_[static_cast<size_t>(np % plane)];
      for (int64_t c = 0; c < C; ++c) store_f32(out[np * C + c], load_f32(in[np * C + c]) * f);
    }
  }

  PoolSpec s_;
  engine eng_;
  int64_t OH_ = 0, OW_ = 0;
  bool has_ws_ = false;
  std::vector<float> factors_;
  pooling_v2_forward::primitive_desc fwd_pd_;
  pooling_v2_backward::primitive_desc bwd_pd_;
  Call fwd_, bwd_;
  size_t saved_bytes_ = 0, off_dx_ = 0, off_dy_ = 0, off_scratch_ = 0, ws_bytes_ = 0;
};

// Max pooling of f32 NHWC data in convoy's own loops. oneDNN 2.6's NHWC pooling moves 2-3 GB/s here, and
// far less where the channels are not a multiple of the vector (LeNet-5's 6: 6 ms of a 22 ms step at
// batch 256 on AVX2); these loops stream at memory speed. Same results as oneDNN's: the first maximum of
// a window in row-major order wins (strict >) and takes the gradient, saved as its index in the window.
class CpuMaxPool final : public PoolKernel {
 public:
  explicit CpuMaxPool(const PoolSpec& s) : s_(s), OH_(s.out_h()), OW_(s.out_w()) { check_pool_spec(s); }
  static bool handles(const PoolSpec& s) { return s.kind == PoolKind::max && s.dtype == DType::f32 && s.kh * s.kw <= 256; }

  size_t saved_bytes() const override { return static_cast<size_t>(s_.N * OH_ * OW_ * s_.C); }

  void forward(ExecContext&, const Tensor& x, Tensor& y, Tensor& saved, bool) override {
    const float* in = static_cast<const float*>(x.data());
    float* out = static_cast<float*>(y.data());
    uint8_t* arg = static_cast<uint8_t*>(saved.data());
    const int64_t C = s_.C;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < s_.N; ++n)
      for (int64_t oh = 0; oh < OH_; ++oh) {
        const int64_t h0 = oh * s_.stride_h - s_.pad_h;
        const int64_t hs = std::max<int64_t>(h0, 0), he = std::min(h0 + s_.kh, s_.H);
        for (int64_t ow = 0; ow < OW_; ++ow) {
          const int64_t w0 = ow * s_.stride_w - s_.pad_w;
          const int64_t ws = std::max<int64_t>(w0, 0), we = std::min(w0 + s_.kw, s_.W);
          const int64_t o = ((n * OH_ + oh) * OW_ + ow) * C;
          int64_t c0 = 0;
          for (; c0 + 64 <= C; c0 += 64) window<4>(in, out + o + c0, arg + o + c0, n, h0, hs, he, w0, ws, we, c0, 64);
          for (; c0 + 16 <= C; c0 += 16) window<1>(in, out + o + c0, arg + o + c0, n, h0, hs, he, w0, ws, we, c0, 16);
          if (c0 < C) window<0>(in, out + o + c0, arg + o + c0, n, h0, hs, he, w0, ws, we, c0, C - c0);
        }
      }
  }

  // Each image's gradient is one task: windows overlap within an image, never across images.
  void backward(ExecContext&, const Tensor& dy, const Tensor& saved, Tensor& dx, bool accumulate_dx) override {
    const float* g = static_cast<const float*>(dy.data());
    const uint8_t* arg = static_cast<const uint8_t*>(saved.data());
    float* out = static_cast<float*>(dx.data());
    const int64_t C = s_.C, image = s_.H * s_.W * C;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < s_.N; ++n) {
      float* dxn = out + n * image;
      if (!accumulate_dx) std::fill(dxn, dxn + image, 0.f);
      for (int64_t oh = 0; oh < OH_; ++oh)
        for (int64_t ow = 0; ow < OW_; ++ow) {
          const int64_t h0 = oh * s_.stride_h - s_.pad_h, w0 = ow * s_.stride_w - s_.pad_w;
          const int64_t o = ((n * OH_ + oh) * OW_ + ow) * C;
          int64_t c = 0;
          // 16 channels at a time: each tap of the window takes the gradient in the lanes it won. The sum
          // into a dx element runs over output positions in the same order as the scalar scatter below.
          if (C >= 16) {
            const int64_t hs = std::max<int64_t>(h0, 0), he = std::min(h0 + s_.kh, s_.H);
            const int64_t ws = std::max<int64_t>(w0, 0), we = std::min(w0 + s_.kw, s_.W);
            for (; c + 16 <= C; c += 16) {
              F16 gv;
              U16 a8;
              std::memcpy(&gv, g + o + c, sizeof gv);
              std::memcpy(&a8, arg + o + c, sizeof a8);
              const I16 a = __builtin_convertvector(a8, I16);
              for (int64_t h = hs; h < he; ++h)
                for (int64_t w = ws; w < we; ++w) {
                  float* d = dxn + (h * s_.W + w) * C + c;
                  F16 dv;
                  std::memcpy(&dv, d, sizeof dv);
                  dv += a == static_cast<int32_t>((h - h0) * s_.kw + (w - w0)) ? gv : F16{};
                  std::memcpy(d, &dv, sizeof dv);
                }
            }
          }
          for (; c < C; ++c) {
            const int64_t k = arg[o + c], h = h0 + k / s_.kw, w = w0 + k % s_.kw;
            dxn[(h * s_.W + w) * C + c] += g[o + c];
          }
        }
    }
  }

  std::vector<std::string> implementations() const override {
    return {"pooling forward convoy:nhwc_max_f32", "pooling backward convoy:nhwc_max_f32"};
  }

 private:
  typedef float F16 __attribute__((vector_size(64)));
  typedef int32_t I16 __attribute__((vector_size(64)));
  typedef uint8_t U16 __attribute__((vector_size(16)));

  // One output position's window for channels c0..c0+cn, into `out` and `arg`. With NB > 0, cn is NB blocks
  // of 16 and the compare and select are GCC vector operations, as wide as the ISA has (the compiler left the
  // same loops over local arrays scalar: 0.9-1.0 ms for ResNet-18's stem maxpool at batch 32, 0.45 ms as
  // vectors); NB = 4 keeps four blocks' compare-select chains in flight. NB = 0 handles up to 16 channels
  // in scalar loops. Both keep the argmax in 32-bit lanes, the compare's width, until the store narrows it.
  template <int NB>
  void window(const float* in, float* out, uint8_t* arg, int64_t n, int64_t h0, int64_t hs, int64_t he,
              int64_t w0, int64_t ws, int64_t we, int64_t c0, int64_t cn) const {
    const auto at = [&](int64_t h, int64_t w) { return in + ((n * s_.H + h) * s_.W + w) * s_.C + c0; };
    const auto tap = [&](int64_t h, int64_t w) { return static_cast<int32_t>((h - h0) * s_.kw + (w - w0)); };
    if constexpr (NB > 0) {
      F16 m[NB];
      I16 a[NB];
      for (int b = 0; b < NB; ++b) std::memcpy(&m[b], at(hs, ws) + 16 * b, sizeof(F16)), a[b] = I16{} + tap(hs, ws);
      for (int64_t h = hs; h < he; ++h)
        for (int64_t w = (h == hs ? ws + 1 : ws); w < we; ++w) {
          const float* xi = at(h, w);
          const I16 k = I16{} + tap(h, w);
          for (int b = 0; b < NB; ++b) {
            F16 v;
            std::memcpy(&v, xi + 16 * b, sizeof v);
            const I16 more = v > m[b];  // strict: the first maximum in row-major order wins
            m[b] = more ? v : m[b];
            a[b] = more ? k : a[b];
          }
        }
      for (int b = 0; b < NB; ++b) {
        const U16 a8 = __builtin_convertvector(a[b], U16);
        std::memcpy(out + 16 * b, &m[b], sizeof(F16));
        std::memcpy(arg + 16 * b, &a8, sizeof a8);
      }
    } else {
      float m[16];
      uint8_t a[16];
      bool first = true;
      for (int64_t h = hs; h < he; ++h)
        for (int64_t w = ws; w < we; ++w) {
          const float* xi = at(h, w);
          const auto k = static_cast<uint8_t>(tap(h, w));
          if (first) {
            for (int64_t c = 0; c < cn; ++c) m[c] = xi[c], a[c] = k;
            first = false;
            continue;
          }
          for (int64_t c = 0; c < cn; ++c) {  // branch-free: random data mispredicts every other time
            const float v = xi[c], cur = m[c];
            const auto more = static_cast<uint8_t>(-static_cast<int>(v > cur));
            m[c] = v > cur ? v : cur;  // maxss
            a[c] = static_cast<uint8_t>(a[c] ^ ((a[c] ^ k) & more));
          }
        }
      for (int64_t c = 0; c < cn; ++c) out[c] = m[c], arg[c] = a[c];
    }
  }

  PoolSpec s_;
  int64_t OH_, OW_;
};

}  // namespace

std::unique_ptr<PoolKernel> make_pool(CpuBackend& be, const PoolSpec& spec) {
  if (CpuMaxPool::handles(spec)) return std::make_unique<CpuMaxPool>(spec);
  return std::make_unique<CpuPool>(be, spec);
}

}  // namespace convoy::ops::cpu
