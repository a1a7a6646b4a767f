// Channel concatenation of NHWC tensors: every pixel's channels are laid side by side, so both passes
// are per-pixel copies of contiguous channel runs.
#include <cstring>

#include "ops/cpu/cpu_backend.h"

namespace convoy::ops::cpu {
namespace {

class CpuConcat final : public ConcatKernel {
 public:
  explicit CpuConcat(std::span<const Shape> inputs) {
    CONVOY_CHECK(!inputs.empty(), "a concatenation needs at least one input");
    const Shape& first = inputs[0];
    CONVOY_CHECK(first.rank() == 4, "concatenation takes (N, H, W, C) inputs, got " << first.str());
    pixels_ = first[0] * first[1] * first[2];
    for (const Shape& s : inputs) {
      CONVOY_CHECK(s.rank() == 4 && s[0] == first[0] && s[1] == first[1] && s[2] == first[2],
                   "concatenated inputs must agree in N, H, W: " << first.str() << " vs " << s.str());
      channels_.push_back(s[3]);
      total_ += s[3];
    }
  }

  void forward(ExecContext&, std::span<const Tensor* const> xs, Tensor& y) override {
    float* out = static_cast<float*>(y.data());
    int64_t c0 = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const float* in = static_cast<const float*>(xs[i]->data());
      const int64_t C = channels_[i], T = total_;
#pragma omp parallel for schedule(static)
      for (int64_t p = 0; p < pixels_; ++p) std::memcpy(out + p * T + c0, in + p * C, static_cast<size_t>(C) * 4);
      c0 += C;
    }
  }

  void backward(ExecContext&, const Tensor& dy, std::span<Tensor* const> dxs, std::span<const bool> accumulate) override {
    const float* g = static_cast<const float*>(dy.data());
    int64_t c0 = 0;
    for (size_t i = 0; i < dxs.size(); ++i) {
      const int64_t C = channels_[i], T = total_;
      if (dxs[i]) {
        float* out = static_cast<float*>(dxs[i]->data());
        if (accumulate[i]) {
#pragma omp parallel for schedule(static)
          for (int64_t p = 0; p < pixels_; ++p)
            for (int64_t c = 0; c < C; ++c) out[p * C + c] += g[p * T + c0 + c];
        } else {
#pragma omp parallel for schedule(static)
          for (int64_t p = 0; p < pixels_; ++p) std::memcpy(out + p * C, g + p * T + c0, static_cast<size_t>(C) * 4);
        }
      }
      c0 += C;
    }
  }

  std::vector<std::string> implementations() const override { return {"concat convoy:omp"}; }

 private:
  int64_t pixels_ = 0, total_ = 0;
  std::vector<int64_t> channels_;
};

}  // namespace

std::unique_ptr<ConcatKernel> make_concat(CpuBackend&, std::span<const Shape> inputs, DType t) {
  CONVOY_CHECK(t == DType::f32, "concatenation on the CPU supports f32, got " << dtype_name(t));
  return std::make_unique<CpuConcat>(inputs);
}

}  // namespace convoy::ops::cpu
