// Helpers for running oneDNN primitives without allocating in the step loop: memory objects and the
// argument array are built once at set-up; a step only swaps data pointers and executes.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <string>
#include <vector>

#include "common/error.h"
#include "ops/tensor.h"

namespace convoy::ops::cpu {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

dt to_dnnl(DType t);

// NHWC activation descriptor for a (N, H, W, C) shape; oneDNN's dims are (N, C, H, W).
dnnl::memory::desc nhwc_desc(int64_t N, int64_t H, int64_t W, int64_t C, DType t);
dnnl::memory::desc plain_desc(const Shape& shape, DType t);  // row-major: x, nc, ...
// The same layout (dims, blocking, padding) holding another data type: element k of one is element k of
// the other. Mixed precision keeps fp32 master weights in the layout of the bf16 weights a kernel reads,
// so that the compute copy is one elementwise cast.
dnnl::memory::desc with_data_type(const dnnl::memory::desc& md, dt t);

// Builds a primitive descriptor, turning oneDNN's exceptions into a sentence that names the op.
template <typename F>
auto make_pd(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const dnnl::error& e) {
    CONVOY_FAIL("oneDNN could not create a " << what << " primitive: " << e.what()
                                             << " (status " << static_cast<int>(e.status) << ")");
  }
}

// The implementation oneDNN picked ("jit:avx2", "brgconv:avx512_core", "ref:any", ...).
template <typename PD>
std::string impl_of(const PD& pd) {
  return pd.impl_info_str();
}

// A primitive plus its arguments, ready to execute many times.
class Call {
 public:
  Call() = default;
  // Call(dnnl::convolution_forward(pd), engine)
  Call(dnnl::primitive prim, const dnnl::engine& eng) : prim_(std::move(prim)), eng_(eng) {}

  // Declares argument `arg` with its memory descriptor (set-up only).
  void arg(int arg, const dnnl::memory::desc& md);
  // Points argument `arg` at p for the next run (no allocation).
  void set(int arg, const void* p);
  void run(dnnl::stream& s);
  bool valid() const { return static_cast<bool>(prim_); }

 private:
  dnnl::primitive prim_;
  dnnl::engine eng_;
  std::vector<dnnl::memory> mems_;
  std::vector<dnnl_exec_arg_t> args_;
};

// The attribute every primitive gets: a user-provided scratchpad (from the context's workspace), so
// that executing never allocates.
dnnl::primitive_attr scratchpad_attr();
dnnl::primitive_attr relu_attr();  // scratchpad + a ReLU post-op

// Splits a workspace into aligned regions at set-up; at run time the same offsets apply.
class WorkspacePlan {
 public:
  size_t add(size_t bytes) {
    size_t off = total_;
    total_ += (bytes + 63) / 64 * 64;
    return off;
  }
  size_t total() const { return total_; }

 private:
  size_t total_ = 0;
};

}  // namespace convoy::ops::cpu
