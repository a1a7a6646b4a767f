// Elementwise math shared by the CPU and CUDA backends: written once as
// __host__ __device__ inline functions, unit-tested on the CPU, launched by thin CUDA wrappers.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define CONVOY_HD __host__ __device__ __forceinline__
#else
#define CONVOY_HD inline
#endif

namespace convoy::math {

// PyTorch's SGD step for one element (dampening 0): d = g*scale + wd*w; v = m*v + d;
// w -= lr * (nesterov ? d + m*v : v).
CONVOY_HD void sgd_momentum(float& w, float& v, float g, float lr, float momentum, float weight_decay, bool nesterov,
                            float grad_scale) {
  float d = g * grad_scale + weight_decay * w;
  v = momentum * v + d;
  w -= lr * (nesterov ? d + momentum * v : v);
}

// Running statistics as PyTorch's BatchNorm keeps them: the batch variance enters unbiased.
// count = N*H*W values per channel.
CONVOY_HD void bn_running_update(float& running_mean, float& running_var, float batch_mean, float batch_var_biased,
                                 float momentum, int64_t count) {
  float unbiased = count > 1 ? batch_var_biased * static_cast<float>(count) / static_cast<float>(count - 1)
                             : batch_var_biased;
  running_mean = (1.f - momentum) * running_mean + momentum * batch_mean;
  running_var = (1.f - momentum) * running_var + momentum * unbiased;
}

// A counter-based hash (SplitMix64 finalizer): a random 64-bit value that is a pure function of its input.
CONVOY_HD uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) from (seed, step, index).
CONVOY_HD float uniform01(uint64_t seed, uint64_t step, uint64_t index) {
  uint64_t h = mix64(seed ^ mix64(step ^ mix64(index)));
  return static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
}

// Inverted dropout's per-element multiplier: 0 with probability p, else 1/(1-p).
CONVOY_HD float dropout_scale(uint64_t seed, uint64_t step, uint64_t index, float p) {
  return uniform01(seed, step, index) < p ? 0.f : 1.f / (1.f - p);
}

// log of the sum of exp(x[k] / T) over K values, stable.
CONVOY_HD float log_sum_exp(const float* x, int64_t K, float T) {
  float mx = x[0] / T;
  for (int64_t k = 1; k < K; ++k) mx = x[k] / T > mx ? x[k] / T : mx;
  float sum = 0.f;
  for (int64_t k = 0; k < K; ++k) sum += expf(x[k] / T - mx);
  return mx + logf(sum);
}

// One row of the training loss with Bag of Tricks' refinements (§5). logits: K values.
// - Soft target t = lambda * s(label) + (1 - lambda) * s(label2), s(y) = (1 - eps) onehot(y) + eps / K: label
//   smoothing, and mixup's mixture of two samples' targets (lambda = 1, or label2 = label: none).
// - Distillation (teacher: K values, or null): + T^2 KL(softmax(teacher / T) || softmax(logits / T)).
// Writes grad[k] = d loss / d logits[k] * grad_scale (grad may be null): softmax[k] - t[k], plus
// T (softmax(logits / T)[k] - softmax(teacher / T)[k]) with a teacher. Returns the row's loss.
CONVOY_HD float soft_xent_row(const float* logits, int64_t K, int32_t label, int32_t label2, float lambda, float eps,
                              const float* teacher, float T, float* grad, float grad_scale) {
  const float log_z = log_sum_exp(logits, K, 1.f);
  const float off = eps / static_cast<float>(K), on = 1.f - eps + off;
  float loss = 0.f;
  for (int64_t k = 0; k < K; ++k) {
    const float t = lambda * (k == label ? on : off) + (1.f - lambda) * (k == label2 ? on : off);
    const float logp = logits[k] - log_z;
    loss -= t * logp;
    if (grad) grad[k] = (expf(logp) - t) * grad_scale;
  }
  if (teacher) {
    const float log_zs = log_sum_exp(logits, K, T), log_zt = log_sum_exp(teacher, K, T);
    float kl = 0.f;
    for (int64_t k = 0; k < K; ++k) {
      const float log_q = teacher[k] / T - log_zt, log_ps = logits[k] / T - log_zs, q = expf(log_q);
      kl += q * (log_q - log_ps);
      if (grad) grad[k] += T * (expf(log_ps) - q) * grad_scale;
    }
    loss += T * T * kl;
  }
  return loss;
}

// One row of label-smoothed softmax cross-entropy: soft_xent_row with one label and no teacher.
CONVOY_HD float softmax_xent_row(const float* logits, int64_t K, int32_t label, float eps, float* grad,
                                 float grad_scale) {
  return soft_xent_row(logits, K, label, label, 1.f, eps, nullptr, 1.f, grad, grad_scale);
}

// Rank of the label's logit among K: how many logits are strictly greater (0 = top-1).
CONVOY_HD int64_t label_rank(const float* logits, int64_t K, int32_t label) {
  float v = logits[label];
  int64_t greater = 0;
  for (int64_t k = 0; k < K; ++k) greater += logits[k] > v ? 1 : 0;
  return greater;
}

// bf16 <-> f32 with round-to-nearest-even (NaN stays NaN).
CONVOY_HD uint16_t f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

CONVOY_HD float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// IEEE binary16 <-> f32 with round-to-nearest-even; overflow goes to infinity, NaN stays NaN.
CONVOY_HD uint16_t f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mant = x & 0x7fffffu;
  const int32_t exp = static_cast<int32_t>((x >> 23) & 0xffu);
  if (exp == 255) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  const int32_t e = exp - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {  // a subnormal half, or zero
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // a carry rounds up into the exponent
  return static_cast<uint16_t>(sign | half);
}

CONVOY_HD float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {  // subnormal: normalize
      exp = 127 - 15 + 1;
      while (!(mant & 0x400u)) mant <<= 1, --exp;
      x = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 112u) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &x, 4);
  return f;
}

}  // namespace convoy::math
