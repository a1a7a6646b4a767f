// MPI datatypes and reduction operations for convoy's dtypes, and MPI's error strings. bf16 and f16 travel
// as 16-bit words and are summed in f32 by user-defined operations (created on first use, after MPI_Init).
#pragma once

#include <mpi.h>

#include <string>

#include "comm/communicator.h"
#include "ops/tensor.h"

namespace convoy::comm {

MPI_Datatype mpi_datatype(ops::DType t);
// The MPI operation of `op` on dtype t: MPI_SUM (convoy's own for bf16/f16) or MPI_MAX; average sums (the
// communicator scales the result).
MPI_Op mpi_op(ops::DType t, ReduceOp op);
std::string mpi_error_string(int code);

}  // namespace convoy::comm
