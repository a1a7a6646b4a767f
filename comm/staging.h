// Data-plane collectives on tensors of a backend's device through a communicator that takes another
// device's memory (MPI takes host memory; the tensors may live on a GPU or on the strict test device):
// through a host copy then, made with the backend's copy. These allocate their host copy: they are for
// set-up and evaluation; the gradient reducer keeps its own staging buffers for the step loop.
#pragma once

#include <string>

#include "comm/communicator.h"

namespace convoy::comm {

// Rank root's t, on every rank (t on the backend's device, or on the host).
void broadcast_tensor(Communicator& comm, ops::Backend& backend, ops::Tensor& t, int root, uint64_t fingerprint,
                      const std::string& what);

}  // namespace convoy::comm
