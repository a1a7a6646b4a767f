// Adaptive average pooling (PyTorch's AdaptiveAvgPool2d) as convoy's own loops over ops/math/window.h:
// its windows vary in size and may overlap, which no oneDNN pooling expresses. Forward averages each
// output's window; backward gathers, for each input, the outputs whose windows contain it (a fixed
// summation order). Where the output equals the input (AlexNet and VGG at 224x224) both are copies.
#include <cstring>

#include "ops/cpu/cpu_backend.h"
#include "ops/math/window.h"

namespace convoy::ops::cpu {
namespace {

class CpuAdaptivePool final : public AdaptivePoolKernel {
 public:
  explicit CpuAdaptivePool(const AdaptivePoolSpec& s) : s_(s) {
    check_compute_dtype(s.dtype, "adaptive pooling");
    CONVOY_CHECK(s.OH > 0 && s.OW > 0, "adaptive pooling to an empty " << s.OH << "x" << s.OW << " output");
    identity_ = s.OH == s.H && s.OW == s.W;
  }

  void forward(ExecContext&, const Tensor& x, Tensor& y) override {
    if (identity_) return write_or_accumulate(y.data(), x.data(), static_cast<size_t>(x.numel()), false, s_.dtype);
    if (s_.dtype == DType::bf16)
      fwd(static_cast<const uint16_t*>(x.data()), static_cast<uint16_t*>(y.data()));
    else
      fwd(static_cast<const float*>(x.data()), static_cast<float*>(y.data()));
  }

  void backward(ExecContext&, const Tensor& dy, Tensor& dx, bool accumulate_dx) override {
    if (identity_)
      return write_or_accumulate(dx.data(), dy.data(), static_cast<size_t>(dx.numel()), accumulate_dx, s_.dtype);
    if (s_.dtype == DType::bf16)
      bwd(static_cast<const uint16_t*>(dy.data()), static_cast<uint16_t*>(dx.data()), accumulate_dx);
    else
      bwd(static_cast<const float*>(dy.data()), static_cast<float*>(dx.data()), accumulate_dx);
  }

  std::vector<std::string> implementations() const override {
    return {identity_ ? "adaptive avg pool convoy:copy" : "adaptive avg pool convoy:omp"};
  }

 private:
  template <typename T>
  void fwd(const T* x, T* y) const {
    const AdaptivePoolSpec s = s_;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t oh = 0; oh < s.OH; ++oh)
        for (int64_t ow = 0; ow < s.OW; ++ow) {
          T* out = y + ((n * s.OH + oh) * s.OW + ow) * s.C;
          for (int64_t c = 0; c < s.C; ++c)
            store_f32(out[c], math::adaptive_avg_at(oh, ow, s.H, s.W, s.OH, s.OW, [&](int64_t h, int64_t w) {
                        return load_f32(x[((n * s.H + h) * s.W + w) * s.C + c]);
                      }));
        }
  }

  template <typename T>
  void bwd(const T* dy, T* dx, bool accumulate) const {
    const AdaptivePoolSpec s = s_;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t h = 0; h < s.H; ++h)
        for (int64_t w = 0; w < s.W; ++w) {
          T* out = dx + ((n * s.H + h) * s.W + w) * s.C;
          for (int64_t c = 0; c < s.C; ++c) {
            const float g = math::adaptive_avg_grad_at(h, w, s.H, s.W, s.OH, s.OW, [&](int64_t oh, int64_t ow) {
              return load_f32(dy[((n * s.OH + oh) * s.OW + ow) * s.C + c]);
            });
            store_f32(out[c], accumulate ? load_f32(out[c]) + g : g);
          }
        }
  }

  AdaptivePoolSpec s_;
  bool identity_ = false;
};

}  // namespace

std::unique_ptr<AdaptivePoolKernel> make_adaptive_pool(CpuBackend&, const AdaptivePoolSpec& spec) {
  return std::make_unique<CpuAdaptivePool>(spec);
}

}  // namespace convoy::ops::cpu
