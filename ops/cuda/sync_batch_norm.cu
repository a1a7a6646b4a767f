// SyncBN: the per-rank moments and gradient sums that the cross-rank all-reduce joins, and normalization
// with the global statistics.
#include "ops/cuda/kernels.cuh"
#include "ops/math/elementwise.h"

namespace convoy::ops::cuda {
namespace {

// SyncBN: one thread per channel walks the rows in order (consecutive threads read consecutive channels).
template <typename T>
void sync_bn_moments_t(cudaStream_t stream, const SyncBnShape s, const T* x, double* sums) {
  launch(stream, s.C, [=] __device__(int64_t c) {
    double sum = 0, sq = 0;
    for (int64_t r = 0; r < s.rows; ++r) {
      const double v = ld(x[r * s.C + c]);
      sum += v, sq += v * v;
    }
    sums[c] = sum, sums[s.C + c] = sq;
  });
}

template <typename T>
void sync_bn_normalize_t(cudaStream_t stream, const SyncBnShape s, const T* x, const float* mean, const float* var,
                         const float* gamma, const float* beta, T* y) {
  launch(stream, s.rows * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C;
    const float v = gamma[c] * (ld(x[i]) - mean[c]) * rsqrtf(var[c] + s.eps) + beta[c];
    y[i] = st<T>(s.relu ? relu(v) : v);
  });
}

template <typename T>
__device__ float sync_bn_grad_at(const SyncBnShape& s, const T* y, const T* dy, int64_t i) {
  return s.relu && !(ld(y[i]) > 0.f) ? 0.f : ld(dy[i]);
}

template <typename T>
void sync_bn_grad_moments_t(cudaStream_t stream, const SyncBnShape s, const T* x, const T* y, const T* dy,
                            const float* mean, const float* var, double* sums, float* dgamma, float* dbeta) {
  launch(stream, s.C, [=] __device__(int64_t c) {
    const float is = rsqrtf(var[c] + s.eps);
    double sg = 0, sgx = 0;
    for (int64_t r = 0; r < s.rows; ++r) {
      const int64_t i = r * s.C + c;
      const double g = sync_bn_grad_at(s, y, dy, i);
      sg += g, sgx += g * (ld(x[i]) - mean[c]) * is;
    }
    sums[c] = sg, sums[s.C + c] = sgx;
    dbeta[c] = static_cast<float>(sg), dgamma[c] = static_cast<float>(sgx);
  });
}

template <typename T>
void sync_bn_grad_input_t(cudaStream_t stream, const SyncBnShape s, const T* x, const T* y, const T* dy,
                          const float* gamma, const float* mean, const float* var, const double* sums, int64_t count,
                          T* dx, bool accumulate) {
  const double M = static_cast<double>(count);
  launch(stream, s.rows * s.C, [=] __device__(int64_t i) {
    const int64_t c = i % s.C;
    const float is = rsqrtf(var[c] + s.eps), xhat = (ld(x[i]) - mean[c]) * is;
    const float v = gamma[c] * is *
                    (sync_bn_grad_at(s, y, dy, i) - static_cast<float>(sums[c] / M) -
                     xhat * static_cast<float>(sums[s.C + c] / M));
    dx[i] = st<T>(accumulate ? ld(dx[i]) + v : v);
  });
}

}  // namespace

void sync_bn_moments(cudaStream_t stream, Elem t, const SyncBnShape& s, const void* x, double* sums) {
  CONVOY_BY_DTYPE(t, "sync batch norm", sync_bn_moments_t(stream, s, C(x), sums));
}
void sync_bn_statistics(cudaStream_t stream, const SyncBnShape& s, const double* sums, int64_t count, float* mean,
                        float* var, float* running_mean, float* running_var, int64_t* num_batches_tracked) {
  const SyncBnShape sh = s;
  launch(stream, s.C, [=] __device__(int64_t c) {
    const double m = sums[c] / static_cast<double>(count);
    const double v = fmax(0.0, sums[sh.C + c] / static_cast<double>(count) - m * m);
    mean[c] = static_cast<float>(m), var[c] = static_cast<float>(v);
    math::bn_running_update(running_mean[c], running_var[c], mean[c], var[c], sh.momentum, count);
    if (c == 0) ++*num_batches_tracked;
  });
}
void sync_bn_normalize(cudaStream_t stream, Elem t, const SyncBnShape& s, const void* x, const float* mean,
                       const float* var, const float* gamma, const float* beta, void* y) {
  CONVOY_BY_DTYPE(t, "sync batch norm", sync_bn_normalize_t(stream, s, C(x), mean, var, gamma, beta, P(y)));
}
void sync_bn_grad_moments(cudaStream_t stream, Elem t, const SyncBnShape& s, const void* x, const void* y,
                          const void* dy, const float* mean, const float* var, double* sums, float* dgamma,
                          float* dbeta) {
  CONVOY_BY_DTYPE(t, "sync batch norm",
                  sync_bn_grad_moments_t(stream, s, C(x), C(y), C(dy), mean, var, sums, dgamma, dbeta));
}
void sync_bn_grad_input(cudaStream_t stream, Elem t, const SyncBnShape& s, const void* x, const void* y, const void* dy,
                        const float* gamma, const float* mean, const float* var, const double* sums, int64_t count,
                        void* dx, bool accumulate) {
  CONVOY_BY_DTYPE(t, "sync batch norm", sync_bn_grad_input_t(stream, s, C(x), C(y), C(dy), gamma, mean, var, sums,
                                                             count, P(dx), accumulate));
}
}  // namespace convoy::ops::cuda
