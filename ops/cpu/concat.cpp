// Channel concatenation of NHWC tensors: every pixel's channels are laid side by side, so both passes
// are per-pixel copies of contiguous channel runs.
#include <cstring>

#include "ops/cpu/cpu_backend.h"
#include "ops/math/elementwise.h"

namespace convoy::ops::cpu {
namespace {

class CpuConcat final : public ConcatKernel {
 public:
  CpuConcat(std::span<const Shape> inputs, DType t) : dtype_(t), es_(dtype_size(t)) {
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
    char* out = static_cast<char*>(y.data());
    int64_t c0 = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const char* in = static_cast<const char*>(xs[i]->data());
      const int64_t C = channels_[i], T = total_;
      const size_t es = es_;
#pragma omp parallel for schedule(static)
      for (int64_t p = 0; p < pixels_; ++p)
        std::memcpy(out + (p * T + c0) * es, in + p * C * es, static_cast<size_t>(C) * es);
      c0 += C;
    }
  }

  void backward(ExecContext&, const Tensor& dy, std::span<Tensor* const> dxs, std::span<const bool> accumulate) override {
    int64_t c0 = 0;
    for (size_t i = 0; i < dxs.size(); ++i) {
      const int64_t C = channels_[i], T = total_;
      if (dxs[i]) {
        if (accumulate[i] && dtype_ == DType::bf16)
          add_slice(static_cast<const uint16_t*>(dy.data()), static_cast<uint16_t*>(dxs[i]->data()), C, T, c0);
        else if (accumulate[i])
          add_slice(static_cast<const float*>(dy.data()), static_cast<float*>(dxs[i]->data()), C, T, c0);
        else {
          const char* g = static_cast<const char*>(dy.data());
          char* out = static_cast<char*>(dxs[i]->data());
          const size_t es = es_;
#pragma omp parallel for schedule(static)
          for (int64_t p = 0; p < pixels_; ++p)
            std::memcpy(out + p * C * es, g + (p * T + c0) * es, static_cast<size_t>(C) * es);
        }
      }
      c0 += C;
    }
  }

  std::vector<std::string> implementations() const override { return {"concat convoy:omp"}; }

 private:
  // out (pixels, C) += g's channels [c0, c0 + C) of (pixels, T).
  template <typename T_>
  void add_slice(const T_* g, T_* out, int64_t C, int64_t T, int64_t c0) const {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pixels_; ++p)
      for (int64_t c = 0; c < C; ++c) store_f32(out[p * C + c], load_f32(out[p * C + c]) + load_f32(g[p * T + c0 + c]));
  }
  DType dtype_;
  size_t es_;
  int64_t pixels_ = 0, total_ = 0;
  std::vector<int64_t> channels_;
};

}  // namespace

std::unique_ptr<ConcatKernel> make_concat(CpuBackend&, std::span<const Shape> inputs, DType t) {
  check_compute_dtype(t, "concatenation");
  return std::make_unique<CpuConcat>(inputs, t);
}

}  // namespace convoy::ops::cpu
