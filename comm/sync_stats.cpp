#include "comm/sync_stats.h"

namespace convoy::comm {

void CommunicatorSum::sum(ops::ExecContext& ctx, ops::Tensor& t, const char* what) {
  CONVOY_CHECK(t.dtype() == ops::DType::f64, what << ": the sum over ranks takes f64 tensors, got "
                                                  << ops::dtype_name(t.dtype()));
  const uint64_t fp = fingerprint("sync-batch-norm", 0, t.bytes());
  if (t.device() == comm_.device()) {
    ctx.synchronize();  // the kernels that wrote t have run
    comm_.all_reduce(t, ReduceOp::sum, fp, what)->wait();
    return;
  }
  if (host_.numel() < t.numel())
    host_ = ops::Tensor::empty(ops::Shape{t.numel()}, ops::DType::f64, backend_.staging_allocator());
  ops::Tensor h = host_.view(0, t.shape());
  backend_.copy(ctx, t, h);
  ctx.synchronize();
  comm_.all_reduce(h, ReduceOp::sum, fp, what)->wait();
  backend_.copy(ctx, h, t);
  ctx.synchronize();  // h is reused by the next layer's sum
}

}  // namespace convoy::comm
