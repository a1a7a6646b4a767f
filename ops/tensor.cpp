#include "ops/tensor.h"

#include <cstdlib>
#include <cstring>

namespace convoy::ops {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::f16: return 2;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::u8: return 1;
    case DType::f64: return 8;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
    case DType::f64: return "f64";
  }
  return "?";
}

DType parse_dtype(const std::string& name) {
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8, DType::f64})
    if (name == dtype_name(t)) return t;
  if (name == "fp32" || name == "float32") return DType::f32;
  if (name == "fp16" || name == "float16") return DType::f16;
  if (name == "bfloat16") return DType::bf16;
  CONVOY_FAIL("unknown dtype '" << name << "': use one of f32, bf16, f16");
}

std::string Device::str() const {
  switch (kind) {
    case DeviceKind::cpu: return "cpu";
    case DeviceKind::cuda: return "cuda:" + std::to_string(index);
    case DeviceKind::strict: return "cpu-strict";
  }
  return "?";
}

Shape::Shape(std::initializer_list<int64_t> dims) {
  for (int64_t d : dims) push_back(d);
}

void Shape::push_back(int64_t d) {
  CONVOY_CHECK(rank_ < kMaxRank, "a shape has at most " << kMaxRank << " dimensions");
  CONVOY_CHECK(d >= 0, "a shape dimension must not be negative, got " << d);
  dims_[static_cast<size_t>(rank_++)] = d;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i)
    CONVOY_CHECK(!__builtin_mul_overflow(n, dims_[static_cast<size_t>(i)], &n),
                 "a shape of " << str() << " has more elements than 64 bits count");
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (rank_ != o.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[static_cast<size_t>(i)] != o.dims_[static_cast<size_t>(i)]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "(";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[static_cast<size_t>(i)]);
  }
  return s + ")";
}

namespace {
class HostAllocator final : public Allocator {
 public:
  Device device() const override { return {}; }
  void* allocate(size_t bytes) override {
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    void* p = std::aligned_alloc(64, rounded);
    CONVOY_CHECK(p != nullptr, "out of host memory allocating " << bytes << " bytes");
    std::memset(p, 0, rounded);  // first touch now, not inside the first step
    return p;
  }
  void deallocate(void* p, size_t) override { std::free(p); }
};
}  // namespace

Allocator& host_allocator() {
  static HostAllocator alloc;
  return alloc;
}

Storage::Storage(Allocator& alloc, size_t bytes) : alloc_(alloc), bytes_(bytes), device_(alloc.device()) {
  data_ = alloc_.allocate(bytes);
}

Storage::~Storage() { alloc_.deallocate(data_, bytes_); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Allocator& alloc) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(alloc, t.bytes());
  t.data_ = t.storage_->data();
  t.device_ = alloc.device();
  return t;
}

Tensor Tensor::zeros_host(const Shape& shape, DType dtype) { return empty(shape, dtype, host_allocator()); }

Tensor Tensor::wrap(void* data, const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.data_ = data;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  return t;
}

Tensor Tensor::view(size_t byte_offset, const Shape& shape, DType dtype) const {
  size_t want = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  if (storage_) {
    size_t start = static_cast<size_t>(static_cast<char*>(data_) - static_cast<char*>(storage_->data()));
    CONVOY_CHECK(start + byte_offset + want <= storage_->bytes(),
                 "view of " << want << " bytes at offset " << byte_offset << " runs past the end of its "
                            << storage_->bytes() << "-byte storage");
  } else {
    CONVOY_CHECK(byte_offset + want <= bytes(), "view of " << want << " bytes at offset " << byte_offset
                                                           << " runs past a " << bytes() << "-byte tensor");
  }
  Tensor t = *this;
  t.data_ = static_cast<char*>(data_) + byte_offset;
  t.shape_ = shape;
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::reshaped(const Shape& shape) const {
  CONVOY_CHECK(shape.numel() == numel(), "cannot reshape " << shape_.str() << " to " << shape.str());
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::relabeled(Device device) const {
  Tensor t = *this;
  t.device_ = device;
  return t;
}

}  // namespace convoy::ops
