// Naive reference loops for the forward checks: written for clarity, straight from the definitions
// PyTorch documents, with no shared code with the kernels under test.
#pragma once

#include <cstdint>
#include <vector>

namespace convoy::test {

struct ConvRef {
  int64_t N, H, W, C, K, R, S, stride, pad, dilation, groups;
};
// x: NHWC, w: OIHW (K, C/groups, R, S), b: K or empty. Returns NHWC.
std::vector<float> conv2d_ref(const ConvRef& p, const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>& b, int64_t& OH, int64_t& OW);

struct PoolRef {
  int64_t N, H, W, C, k, stride, pad;
  bool max, ceil_mode, count_include_pad;
};
std::vector<float> pool2d_ref(const PoolRef& p, const std::vector<float>& x, int64_t& OH, int64_t& OW);

// Training-mode batch norm over (N, H, W) per channel of an NHWC tensor with M = N*H*W rows.
std::vector<float> batch_norm_ref(const std::vector<float>& x, int64_t M, int64_t C, const std::vector<float>& gamma,
                                  const std::vector<float>& beta, float eps, std::vector<double>* mean = nullptr,
                                  std::vector<double>* var_biased = nullptr);

}  // namespace convoy::test
