#include "comm/mpi_raw.h"

#include <mpi.h>

#include "comm/mpi_check.h"

namespace convoy::comm {

void raw_mpi_all_reduce(ops::Tensor& data) {
  CONVOY_CHECK(data.device().is_cpu(), "raw MPI moves host memory, not " << data.device().str());
  CONVOY_CHECK(data.numel() <= INT32_MAX, "an all-reduce of " << data.numel() << " elements is too large for MPI");
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data.data(), static_cast<int>(data.numel()), mpi_datatype(data.dtype()),
                          mpi_op(data.dtype(), ReduceOp::sum), MPI_COMM_WORLD));
}

void raw_mpi_barrier() { MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); }

}  // namespace convoy::comm
