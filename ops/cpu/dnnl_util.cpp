#include "ops/cpu/dnnl_util.h"

namespace convoy::ops::cpu {

dt to_dnnl(DType t) {
  switch (t) {
    case DType::f32: return dt::f32;
    case DType::bf16: return dt::bf16;
    case DType::f16: return dt::f16;
    case DType::i32: return dt::s32;
    case DType::u8: return dt::u8;
    case DType::i64:
    case DType::f64: break;
  }
  CONVOY_FAIL("oneDNN has no " << dtype_name(t) << " data type");
}

dnnl::memory::desc nhwc_desc(int64_t N, int64_t H, int64_t W, int64_t C, DType t) {
  return dnnl::memory::desc({N, C, H, W}, to_dnnl(t), tag::nhwc);
}

dnnl::memory::desc plain_desc(const Shape& shape, DType t) {
  dnnl::memory::dims dims(shape.begin(), shape.end());
  static const tag tags[] = {tag::undef, tag::a, tag::ab, tag::abc, tag::abcd, tag::abcde, tag::abcdef};
  return dnnl::memory::desc(dims, to_dnnl(t), tags[shape.rank()]);
}

dnnl::memory::desc with_data_type(const dnnl::memory::desc& md, dt t) {
  dnnl::memory::desc out = md;
  out.data.data_type = static_cast<dnnl_data_type_t>(t);
  return out;
}

void Call::arg(int arg, const dnnl::memory::desc& md) {
  mems_.emplace_back(md, eng_, static_cast<void*>(DNNL_MEMORY_NONE));
  args_.push_back({arg, mems_.back().get()});
  // emplace_back may have moved earlier memory objects; their C handles stay valid, so re-read them all.
  for (size_t i = 0; i < mems_.size(); ++i) args_[i].memory = mems_[i].get();
}

void Call::set(int arg, const void* p) {
  for (size_t i = 0; i < args_.size(); ++i) {
    if (args_[i].arg == arg) {
      mems_[i].set_data_handle(const_cast<void*>(p));
      return;
    }
  }
  CONVOY_FAIL("internal: primitive argument " << arg << " was not declared at set-up");
}

void Call::run(dnnl::stream& s) {
  dnnl_status_t st = dnnl_primitive_execute(prim_.get(), s.get(), static_cast<int>(args_.size()), args_.data());
  CONVOY_CHECK(st == dnnl_success, "a oneDNN primitive failed to execute (status " << static_cast<int>(st) << ")");
}

dnnl::primitive_attr scratchpad_attr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

dnnl::primitive_attr relu_attr() {
  dnnl::primitive_attr a = scratchpad_attr();
  dnnl::post_ops po;
  po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  a.set_post_ops(po);
  return a;
}

}  // namespace convoy::ops::cpu
