#include "comm/staging.h"

namespace convoy::comm {

void broadcast_tensor(Communicator& comm, ops::Backend& backend, ops::Tensor& t, int root, uint64_t fp,
                      const std::string& what) {
  if (t.device() == comm.device()) {
    comm.broadcast(t, root, fp, what)->wait();
    return;
  }
  ops::Tensor host = ops::Tensor::empty(t.shape(), t.dtype(), backend.staging_allocator());
  if (comm.rank() == root) backend.copy(backend.context(), t, host);
  backend.context().synchronize();
  comm.broadcast(host, root, fp, what)->wait();
  backend.copy(backend.context(), host, t);
  backend.context().synchronize();
}

}  // namespace convoy::comm
