// Thin CUDA launches of the shared elementwise math (ops/math/elementwise.h). Compiled whenever the CUDA
// toolkit is present; this project's machines have no GPU, so none of it has run on one here.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace convoy::ops::cuda {

// Device pointers; n elements; runs on `stream`.
void sgd_update(cudaStream_t stream, float* w, float* v, const float* g, int64_t n, float lr, float momentum,
                float weight_decay, bool nesterov, float grad_scale);
// One thread block per row: loss[n] and grad (N, K) of label-smoothed softmax cross-entropy.
void softmax_cross_entropy(cudaStream_t stream, const float* logits, const int32_t* labels, int64_t N, int64_t K,
                           float smoothing, float grad_scale, float* loss, float* grad);
void dropout(cudaStream_t stream, const float* x, float* y, int64_t n, float p, uint64_t seed, uint64_t step);

// True when a CUDA device can run kernels (false on machines without a GPU or driver).
bool device_available();

}  // namespace convoy::ops::cuda
