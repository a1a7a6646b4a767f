// MPI_CHECK: every MPI status is checked and turned into a convoy::Error naming the call, the file and
// line, and MPI's own message. Communicators set MPI_ERRORS_RETURN so that errors come back here.
#pragma once

#include <mpi.h>

#include <string>

#include "comm/mpi_types.h"
#include "common/error.h"

#define MPI_CHECK(call)                                                                                  \
  do {                                                                                                   \
    int convoy_mpi_status_ = (call);                                                                     \
    if (convoy_mpi_status_ != MPI_SUCCESS)                                                               \
      ::convoy::detail::fail(__FILE__, __LINE__, #call,                                                  \
                             "MPI call failed: " + ::convoy::comm::mpi_error_string(convoy_mpi_status_)); \
  } while (0)
