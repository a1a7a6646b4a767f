// Central-difference gradient checking in the manner of Caffe's GradientChecker: the loss is a fixed
// random projection of the graph's output, L = sum_i r_i y_i (computed in double; plus a projection of
// each extra output, GoogLeNet's auxiliary heads), every input element
// and every parameter element is nudged by ±step, and the analytic gradient must match
// (L+ - L-) / 2 step within threshold * max(|analytic|, |numeric|, 1). An element whose nudge flips
// some output between zero and non-zero (a ReLU kink) is skipped, as Caffe skips kinks.
#pragma once

#include <string>
#include <vector>

#include "ops/graph.h"

namespace convoy::test {

struct GradCheckOptions {
  double step = 1e-3;  // Caffe uses 1e-2; 1e-3 crosses fewer ReLU kinks and float32 noise stays ~1e-4
  double threshold = 1e-3;
  uint64_t seed = 1;
  // Multiplies the analytic gradient before comparing: the checker's own test uses it to show that a
  // wrong gradient is caught.
  double corrupt = 1.0;
};

struct GradCheckResult {
  int checked = 0, kinks = 0, failures = 0;
  std::string first_failure;
};

// g: set up with a backend and set_input_grad(true), in training mode. input: host values of the input.
GradCheckResult check_gradients(ops::Graph& g, const std::vector<float>& input, const GradCheckOptions& o = {});

// Uniform values in [lo, hi).
std::vector<float> random_values(size_t n, uint64_t seed, float lo = -1.f, float hi = 1.f);
// A shuffled ramp: distinct values at least `gap` apart (max pooling never sees near-ties).
std::vector<float> distinct_values(size_t n, uint64_t seed, float gap = 0.05f);

}  // namespace convoy::test
