// Helpers shared by the ops tests. Every test runs on the backend named by --backend (cpu, cpu-strict;
// cuda where a device exists), once per backend, in the manner of Caffe's device-typed tests: CTest
// registers the binary once per backend (ops.cpu.*, ops.cpu-strict.*). Tests read and write tensors
// only through copies, so they hold for a device the host cannot read.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ops/graph.h"
#include "ops/layer.h"

namespace convoy::test {

ops::Backend& backend();            // the backend of this run (2 threads)
const std::string& backend_name();  // "cpu", "cpu-strict", ...

// The values of a tensor on any device, through a copy.
std::vector<float> host_values(const ops::Tensor& t);
template <typename T>
std::vector<T> host_values_as(const ops::Tensor& t) {
  ops::Tensor h = ops::to_host(backend(), t);
  const T* p = h.host<T>();
  return std::vector<T>(p, p + h.numel());
}
// A host tensor with these values (for Graph::write, which copies).
ops::Tensor host_tensor(const ops::Shape& shape, const std::vector<float>& v);
// A tensor on the backend's device with these values.
ops::Tensor device_tensor(const ops::Shape& shape, const std::vector<float>& v);
ops::Tensor device_labels(const std::vector<int32_t>& labels);
// Writes values into a tensor of the backend's device (an output gradient, say).
void write_device(ops::Tensor& t, const std::vector<float>& v);

// input -> layer [-> relu, fused when fuse_relu]; set up on the backend with the input gradient on.
std::unique_ptr<ops::Graph> one_layer(std::unique_ptr<ops::Layer> layer, const ops::Shape& input,
                                      bool then_relu = false, bool fuse = true, uint64_t seed = 3);

}  // namespace convoy::test
