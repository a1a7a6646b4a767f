// SyncBN on the CPU: convoy's own loops over NHWC (per channel, rows in order: a fixed summation order),
// f32 or bf16 activations, f64 sums. The layer sums the partial moments over ranks between the calls.
// The same loops make a plain batch norm (one rank's sums) for the shapes where oneDNN 2.6 offers only
// its reference implementation: bf16 with a channel count not a multiple of 16 ran 45 ms a call.
#include <omp.h>

#include <cmath>
#include <type_traits>
#include <utility>
#include <vector>

#include "ops/cpu/cpu_backend.h"

namespace convoy::ops::cpu {
namespace {

class CpuSyncBatchNorm final : public SyncBatchNormKernel {
 public:
  explicit CpuSyncBatchNorm(const BatchNormSpec& s) : s_(s), rows_(s.N * s.H * s.W) {
    check_compute_dtype(s.dtype, "sync batch norm");
  }

  void moments(ExecContext&, const Tensor& x, Tensor& sums) override {
    check_sums(sums);
    dispatch(x, [&](auto* px) { moments_t(px, sums.data_as<double>()); });
  }

  void normalize(ExecContext&, const Tensor& x, const Tensor& sums, int64_t count, const Tensor& gamma,
                 const Tensor& beta, Tensor& y, Tensor& saved_mean, Tensor& saved_var, Tensor& running_mean,
                 Tensor& running_var, Tensor& num_batches_tracked) override {
    check_sums(sums);
    CONVOY_CHECK(count > 0, "sync batch norm over " << count << " values");
    const double* s = sums.data_as<double>();
    float* mean = saved_mean.data_as<float>();
    float* var = saved_var.data_as<float>();
    float* rm = running_mean.data_as<float>();
    float* rv = running_var.data_as<float>();
    for (int64_t c = 0; c < s_.C; ++c) {
      const double m = s[c] / static_cast<double>(count);
      const double v = std::max(0.0, s[s_.C + c] / static_cast<double>(count) - m * m);
      mean[c] = static_cast<float>(m), var[c] = static_cast<float>(v);
      math::bn_running_update(rm[c], rv[c], mean[c], var[c], s_.momentum, count);
    }
    num_batches_tracked.data_as<int64_t>()[0] += 1;
    const float* g = gamma.data_as<float>();
    const float* b = beta.data_as<float>();
    dispatch(x, [&](auto* px) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(px)>>;
      normalize_t(px, static_cast<T*>(y.data()), mean, var, g, b);
    });
  }

  void grad_moments(ExecContext&, const Tensor& x, const Tensor& y, const Tensor& dy, const Tensor& saved_mean,
                    const Tensor& saved_var, Tensor& sums, Tensor& dgamma, Tensor& dbeta) override {
    check_sums(sums);
    double* s = sums.data_as<double>();
    dispatch(x, [&](auto* px) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(px)>>;
      grad_moments_t(px, static_cast<const T*>(y.data()), static_cast<const T*>(dy.data()),
                     saved_mean.data_as<float>(), saved_var.data_as<float>(), s);
    });
    float* dg = dgamma.data_as<float>();
    float* db = dbeta.data_as<float>();
    for (int64_t c = 0; c < s_.C; ++c) db[c] = static_cast<float>(s[c]), dg[c] = static_cast<float>(s[s_.C + c]);
  }

  void grad_input(ExecContext&, const Tensor& x, const Tensor& y, const Tensor& dy, const Tensor& gamma,
                  const Tensor& saved_mean, const Tensor& saved_var, const Tensor& sums, int64_t count, Tensor* dx,
                  bool accumulate_dx) override {
    check_sums(sums);
    if (!dx) return;
    dispatch(x, [&](auto* px) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(px)>>;
      grad_input_t(px, static_cast<const T*>(y.data()), static_cast<const T*>(dy.data()), gamma.data_as<float>(),
                   saved_mean.data_as<float>(), saved_var.data_as<float>(), sums.data_as<double>(), count,
                   static_cast<T*>(dx->data()), accumulate_dx);
    });
  }

  // Evaluation: y = gamma (x - mean) / sqrt(var + eps) + beta with the given (running) statistics.
  void normalize_with(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& gamma, const Tensor& beta,
                      Tensor& y) const {
    dispatch(x, [&](auto* px) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(px)>>;
      normalize_t(px, static_cast<T*>(y.data()), mean.data_as<float>(), var.data_as<float>(), gamma.data_as<float>(),
                  beta.data_as<float>());
    });
  }

 private:
  void check_sums(const Tensor& sums) const {
    CONVOY_CHECK(sums.numel() == 2 * s_.C && sums.dtype() == DType::f64,
                 "sync batch norm's sums are (" << 2 * s_.C << ") f64, got " << sums.shape().str() << " "
                                                << dtype_name(sums.dtype()));
  }
  template <typename F>
  void dispatch(const Tensor& x, F f) const {
    if (s_.dtype == DType::bf16)
      f(static_cast<const uint16_t*>(x.data()));
    else
      f(static_cast<const float*>(x.data()));
  }
  float inv_std(float var) const { return 1.f / std::sqrt(var + s_.eps); }

  // Per-channel pairs of sums over rows, f(row index i, channel) -> (a, b): each thread sums a contiguous
  // block of rows (reading memory in order), then the blocks add up in thread order, so the result is the
  // same at every run with the same thread count.
  template <typename F>
  void channel_sums(F f, double* s) const {
    const int64_t C = s_.C, R = rows_;
    partial_.assign(static_cast<size_t>(2 * C * omp_get_max_threads()), 0.0);
    int used = 1;
#pragma omp parallel
    {
      const int t = omp_get_thread_num(), n = omp_get_num_threads();
#pragma omp single
      used = n;
      double* acc = partial_.data() + static_cast<size_t>(2 * C * t);
      const int64_t r0 = R * t / n, r1 = R * (t + 1) / n;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = 0; c < C; ++c) {
          const auto [a, b] = f(r * C + c, c);
          acc[c] += a, acc[C + c] += b;
        }
    }
    for (int64_t i = 0; i < 2 * C; ++i) {
      double v = 0;
      for (int t = 0; t < used; ++t) v += partial_[static_cast<size_t>(2 * C * t + i)];
      s[i] = v;
    }
  }

  template <typename T>
  void moments_t(const T* x, double* s) const {
    channel_sums(
        [&](int64_t i, int64_t) {
          const double v = load_f32(x[i]);
          return std::pair<double, double>(v, v * v);
        },
        s);
  }

  template <typename T>
  void normalize_t(const T* x, T* y, const float* mean, const float* var, const float* g, const float* b) const {
    const int64_t C = s_.C, R = rows_;
    const bool relu = s_.fuse_relu;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c) {
        float v = g[c] * (load_f32(x[r * C + c]) - mean[c]) * inv_std(var[c]) + b[c];
        if (relu && !(v > 0.f) && !std::isnan(v)) v = 0.f;
        store_f32(y[r * C + c], v);
      }
  }

  // g: dy where y > 0 when ReLU is fused.
  template <typename T>
  float grad_at(const T* y, const T* dy, int64_t i) const {
    return s_.fuse_relu && !(load_f32(y[i]) > 0.f) ? 0.f : load_f32(dy[i]);
  }

  template <typename T>
  void grad_moments_t(const T* x, const T* y, const T* dy, const float* mean, const float* var, double* s) const {
    inv_std_.resize(static_cast<size_t>(s_.C));
    for (int64_t c = 0; c < s_.C; ++c) inv_std_[static_cast<size_t>(c)] = inv_std(var[c]);
    channel_sums(
        [&](int64_t i, int64_t c) {
          const double g = grad_at(y, dy, i);
          return std::pair<double, double>(g, g * (load_f32(x[i]) - mean[c]) * inv_std_[static_cast<size_t>(c)]);
        },
        s);
  }

  template <typename T>
  void grad_input_t(const T* x, const T* y, const T* dy, const float* gamma, const float* mean, const float* var,
                    const double* s, int64_t count, T* dx, bool accumulate) const {
    const int64_t C = s_.C, R = rows_;
    const double M = static_cast<double>(count);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t i = r * C + c;
        const float is = inv_std(var[c]);
        const float xhat = (load_f32(x[i]) - mean[c]) * is;
        const float v = gamma[c] * is *
                        (grad_at(y, dy, i) - static_cast<float>(s[c] / M) - xhat * static_cast<float>(s[C + c] / M));
        store_f32(dx[i], accumulate ? load_f32(dx[i]) + v : v);
      }
  }

  BatchNormSpec s_;
  int64_t rows_;
  mutable std::vector<double> partial_;  // per-thread sums (sized at the first call)
  mutable std::vector<float> inv_std_;
};

// A batch norm over this rank's batch on the loops above; a fused ReLU's backward reads the mask from y.
class CpuLoopBatchNorm final : public BatchNormKernel {
 public:
  CpuLoopBatchNorm(const BatchNormSpec& s, std::string why)
      : k_(s), rows_(s.N * s.H * s.W), sums_(Tensor::zeros_host(Shape{2 * s.C}, DType::f64)), why_(std::move(why)) {}

  size_t saved_bytes() const override { return 0; }
  void forward_train(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y,
                     Tensor& saved_mean, Tensor& saved_var, Tensor&, Tensor& running_mean, Tensor& running_var,
                     Tensor& num_batches_tracked) override {
    k_.moments(ctx, x, sums_);
    k_.normalize(ctx, x, sums_, rows_, gamma, beta, y, saved_mean, saved_var, running_mean, running_var,
                 num_batches_tracked);
  }
  void forward_eval(ExecContext&, const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                    const Tensor& running_var, Tensor& y) override {
    k_.normalize_with(x, running_mean, running_var, gamma, beta, y);
  }
  void backward(ExecContext& ctx, const Tensor& x, const Tensor& gamma, const Tensor&, const Tensor& y,
                const Tensor& saved_mean, const Tensor& saved_var, const Tensor&, const Tensor& dy, Tensor* dx,
                bool accumulate_dx, Tensor& dgamma, Tensor& dbeta) override {
    k_.grad_moments(ctx, x, y, dy, saved_mean, saved_var, sums_, dgamma, dbeta);
    k_.grad_input(ctx, x, y, dy, gamma, saved_mean, saved_var, sums_, rows_, dx, accumulate_dx);
  }
  std::vector<std::string> implementations() const override { return {"batch-norm convoy NHWC loops (" + why_ + ")"}; }

 private:
  CpuSyncBatchNorm k_;
  int64_t rows_;
  Tensor sums_;
  std::string why_;
};

}  // namespace

std::unique_ptr<BatchNormKernel> make_loop_batch_norm(const BatchNormSpec& spec, const std::string& why) {
  return std::make_unique<CpuLoopBatchNorm>(spec, why);
}

std::unique_ptr<SyncBatchNormKernel> make_sync_batch_norm(CpuBackend&, const BatchNormSpec& spec) {
  return std::make_unique<CpuSyncBatchNorm>(spec);
}

}  // namespace convoy::ops::cpu
