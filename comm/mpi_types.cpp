#include "comm/mpi_types.h"

#include <mutex>

#include "comm/mpi_check.h"
#include "ops/math/elementwise.h"

namespace convoy::comm {
namespace {

void sum_bf16(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = math::f32_to_bf16(math::bf16_to_f32(a[i]) + math::bf16_to_f32(b[i]));
}

void sum_f16(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = math::f32_to_f16(math::f16_to_f32(a[i]) + math::f16_to_f32(b[i]));
}

}  // namespace

MPI_Datatype mpi_datatype(ops::DType t) {
  switch (t) {
    case ops::DType::f32: return MPI_FLOAT;
    case ops::DType::f64: return MPI_DOUBLE;
    case ops::DType::i64: return MPI_INT64_T;
    case ops::DType::i32: return MPI_INT32_T;
    case ops::DType::u8: return MPI_UINT8_T;
    case ops::DType::bf16:
    case ops::DType::f16: return MPI_UINT16_T;
  }
  CONVOY_FAIL("collectives do not support " << ops::dtype_name(t) << " data");
}

MPI_Op mpi_op(ops::DType t, ReduceOp op) {
  static MPI_Op bf16 = MPI_OP_NULL, f16 = MPI_OP_NULL;
  static std::once_flag once;
  const bool half = t == ops::DType::bf16 || t == ops::DType::f16;
  if (op == ReduceOp::max) {
    CONVOY_CHECK(!half && t != ops::DType::u8, "a max all-reduce of " << ops::dtype_name(t) << " is not supported");
    return MPI_MAX;
  }
  CONVOY_CHECK(t != ops::DType::u8, "a sum all-reduce of u8 is not supported");
  if (!half) return MPI_SUM;
  std::call_once(once, [] {
    MPI_CHECK(MPI_Op_create(sum_bf16, 1, &bf16));
    MPI_CHECK(MPI_Op_create(sum_f16, 1, &f16));
  });
  return t == ops::DType::bf16 ? bf16 : f16;
}

std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, static_cast<size_t>(len));
}

}  // namespace convoy::comm
