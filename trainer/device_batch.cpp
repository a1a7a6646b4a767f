#include "trainer/device_batch.h"

namespace convoy::trainer {

DeviceBatches::DeviceBatches(ops::Backend& backend, const ops::Shape& images)
    : backend_(backend), copy_ctx_(backend.make_context()) {
  const ops::Shape n{images[0]};
  for (DeviceBatch& b : slots_) {
    b.images = ops::Tensor::empty(images, ops::DType::f32, backend.allocator());
    b.labels = ops::Tensor::empty(n, ops::DType::i32, backend.allocator());
    b.valid = ops::Tensor::empty(n, ops::DType::u8, backend.allocator());
    b.copied = backend.make_event();
    b.released = backend.make_event();
  }
}

DeviceBatch& DeviceBatches::start(const datasets::Batch& host) {
  DeviceBatch& b = slots_[next_];
  next_ = (next_ + 1) % slots_.size();
  CONVOY_CHECK(host.dtype == datasets::PixelType::f32, "the trainer takes float32 batches");
  CONVOY_CHECK(host.n == b.images.dim(0) && host.height == b.images.dim(1) && host.width == b.images.dim(2) &&
                   host.channels == b.images.dim(3),
               "a batch of " << host.n << "x" << host.height << "x" << host.width << "x" << host.channels
                             << " does not fit the model's input " << b.images.shape().str());
  ops::Tensor images = ops::Tensor::wrap(host.images, b.images.shape(), ops::DType::f32);
  ops::Tensor labels = ops::Tensor::wrap(host.labels, b.labels.shape(), ops::DType::i32);
  ops::Tensor valid = ops::Tensor::wrap(host.valid, b.valid.shape(), ops::DType::u8);
  // Everything enqueued on compute so far may still read this buffer (evaluation runs ahead of the
  // device: no step-end synchronisation): the copy waits for it, without blocking the host.
  b.released->record(backend_.context());
  b.released->wait_on(*copy_ctx_);
  backend_.copy(*copy_ctx_, images, b.images);
  backend_.copy(*copy_ctx_, labels, b.labels);
  backend_.copy(*copy_ctx_, valid, b.valid);
  b.copied->record(*copy_ctx_);
  b.num_valid = host.num_valid;
  return b;
}

datasets::BatchMemory staging_memory(ops::Backend& backend) {
  ops::Allocator* a = &backend.staging_allocator();
  return {[a](size_t bytes) { return a->allocate(bytes); }, [a](void* p, size_t bytes) { a->deallocate(p, bytes); }};
}

}  // namespace convoy::trainer
