// The baseline `convoy bench allreduce` holds convoy's communicator against: plain MPI, blocking, from the
// calling thread, on MPI_COMM_WORLD, the way a program that calls MPI itself would move the same bytes.
#pragma once

#include <cstddef>

#include "ops/tensor.h"

namespace convoy::comm {

// One in-place MPI_Allreduce (sum) of a host tensor.
void raw_mpi_all_reduce(ops::Tensor& data);
void raw_mpi_barrier();

}  // namespace convoy::comm
