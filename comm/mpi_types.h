// MPI datatypes and sum operations for convoy's dtypes; bf16 and f16 travel as 16-bit words and are
// summed in f32 by a user-defined operation.
#pragma once

#include <mpi.h>

#include "ops/tensor.h"

namespace convoy::comm {

MPI_Datatype mpi_datatype(ops::DType t);
// MPI_SUM, or for bf16/f16 convoy's own sum (created on first use, after MPI_Init).
MPI_Op mpi_sum_op(ops::DType t);

}  // namespace convoy::comm
