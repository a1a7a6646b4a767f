#include "tests/ops/grad_check.h"

#include "tests/ops/test_util.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

namespace convoy::test {

std::vector<float> random_values(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

std::vector<float> distinct_values(size_t n, uint64_t seed, float gap) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = (static_cast<float>(i) - static_cast<float>(n) / 2) * gap;
  std::mt19937_64 gen(seed);
  std::shuffle(v.begin(), v.end(), gen);
  return v;
}

namespace {

// Tensors are read and written through copies: the graph may live on a device the host cannot read.
struct Probe {
  ops::Graph& g;
  std::vector<float> x;  // the input's host values
  ops::Tensor x_dev;     // and on the device
  std::vector<std::vector<float>> r;  // the main output's projection, then each extra output's

  // Forward at the current input and parameters: the projected loss and the outputs' zero pattern.
  double loss(std::vector<bool>* zeros) {
    write_device(x_dev, x);
    g.set_step(0);
    double l = 0;
    if (zeros) zeros->clear();
    for (size_t k = 0; k < r.size(); ++k) {
      const std::vector<float> p = host_values(k == 0 ? g.forward(x_dev) : g.extra_output(k - 1));
      for (size_t i = 0; i < r[k].size(); ++i) {
        l += static_cast<double>(r[k][i]) * p[i];
        if (zeros) zeros->push_back(p[i] == 0.f);
      }
    }
    return l;
  }
};

void compare(GradCheckResult& res, const GradCheckOptions& o, const std::string& what, size_t i, double analytic,
             double numeric) {
  analytic *= o.corrupt;
  double scale = std::max({std::fabs(analytic), std::fabs(numeric), 1.0});
  ++res.checked;
  if (std::fabs(analytic - numeric) > o.threshold * scale) {
    if (res.failures++ == 0) {
      std::ostringstream os;
      os << what << "[" << i << "]: analytic " << analytic << " vs numeric " << numeric;
      res.first_failure = os.str();
    }
  }
}

}  // namespace

GradCheckResult check_gradients(ops::Graph& g, const std::vector<float>& input, const GradCheckOptions& o) {
  GradCheckResult res;
  ops::Tensor x_dev = ops::Tensor::empty(g.input_shape(), ops::DType::f32, g.backend().allocator());
  Probe probe{g, input, x_dev, {random_values(static_cast<size_t>(g.output_shape().numel()), o.seed + 17)}};
  for (size_t k = 0; k < g.num_extra_outputs(); ++k)
    probe.r.push_back(random_values(static_cast<size_t>(g.extra_output(k).numel()), o.seed + 18 + k));

  // Analytic gradients.
  std::vector<bool> zeros0;
  probe.loss(&zeros0);
  write_device(g.output_grad(), probe.r[0]);
  for (size_t k = 0; k < g.num_extra_outputs(); ++k) write_device(g.extra_output_grad(k), probe.r[k + 1]);
  g.backward();
  const std::vector<float> dinput = host_values(g.input_grad());
  std::vector<std::pair<std::string, ops::Tensor>> dparams;
  for (const auto& e : g.param_layout().entries()) dparams.emplace_back(e.name, g.read_grad(e.name));

  auto numeric = [&](float& slot, const auto& apply, bool& kink) {
    const float saved = slot;
    std::vector<bool> zp, zm;
    slot = static_cast<float>(saved + o.step);
    apply();
    double lp = probe.loss(&zp);
    slot = static_cast<float>(saved - o.step);
    apply();
    double lm = probe.loss(&zm);
    slot = saved;
    apply();
    kink = zp != zeros0 || zm != zeros0;
    return (lp - lm) / (2 * o.step);
  };

  for (size_t i = 0; i < input.size(); ++i) {
    bool kink = false;
    double n = numeric(probe.x[i], [] {}, kink);
    if (kink) {
      ++res.kinks;
      continue;
    }
    compare(res, o, "input", i, dinput[i], n);
  }
  for (auto& [name, grad] : dparams) {
    ops::Tensor values = g.read(name);
    float* v = values.host<float>();
    for (int64_t i = 0; i < values.numel(); ++i) {
      bool kink = false;
      double n = numeric(v[i], [&] { g.write(name, values); }, kink);
      if (kink) {
        ++res.kinks;
        continue;
      }
      compare(res, o, name, static_cast<size_t>(i), grad.host<float>()[i], n);
    }
  }
  return res;
}

}  // namespace convoy::test
