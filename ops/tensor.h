// Tensor: a shape, a dtype and a device over memory that it either owns (shared storage) or views.
// Activations are NHWC: a 4-d activation shape is always (N, H, W, C).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "common/error.h"

namespace convoy::ops {

enum class DType : uint8_t { f32, bf16, f16, i32, i64, u8, f64 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
DType parse_dtype(const std::string& name);  // "f32", "bf16", "f16", ...

template <typename T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }

// cpu: host memory. cuda: a GPU's memory. strict: the test device of ops/strict, the CPU kernels behind
// a device boundary whose memory host code cannot read (it proves that code above the kernels never
// assumes host pointers).
enum class DeviceKind : uint8_t { cpu, cuda, strict };

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;
  bool operator==(const Device&) const = default;
  bool is_cpu() const { return kind == DeviceKind::cpu; }
  std::string str() const;  // "cpu", "cuda:0", "cpu-strict"
};

// A fixed-capacity shape: copying one never allocates.
class Shape {
 public:
  static constexpr int kMaxRank = 6;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  template <typename It>
  Shape(It begin, It end) {
    for (It it = begin; it != end; ++it) push_back(static_cast<int64_t>(*it));
  }

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return dims_[static_cast<size_t>(i)]; }
  int64_t& operator[](int i) { return dims_[static_cast<size_t>(i)]; }
  int64_t numel() const;
  void push_back(int64_t d);
  const int64_t* begin() const { return dims_.data(); }
  const int64_t* end() const { return dims_.data() + rank_; }
  bool operator==(const Shape& o) const;
  std::string str() const;  // "(16, 56, 56, 64)"

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

// Device memory allocation; each backend provides one. Alignment is at least 64 bytes.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual Device device() const = 0;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
};

// The host allocator: 64-byte aligned, memory touched once when allocated so that the first training
// step does not pay the page faults.
Allocator& host_allocator();

class Storage {
 public:
  Storage(Allocator& alloc, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  Allocator& alloc_;
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

class Tensor {
 public:
  Tensor() = default;

  // Owning: fresh storage from the allocator (contents undefined).
  static Tensor empty(const Shape& shape, DType dtype, Allocator& alloc = host_allocator());
  static Tensor zeros_host(const Shape& shape, DType dtype = DType::f32);
  // Non-owning view of memory that outlives the tensor (a loader's batch buffer, an arena).
  static Tensor wrap(void* data, const Shape& shape, DType dtype, Device device = {});

  // A view into this tensor's memory starting byte_offset bytes in; shares ownership.
  Tensor view(size_t byte_offset, const Shape& shape, DType dtype) const;
  Tensor view(size_t byte_offset, const Shape& shape) const { return view(byte_offset, shape, dtype_); }
  Tensor reshaped(const Shape& shape) const;
  // The same memory labelled as another device's. Only for a backend that runs another backend's
  // kernels behind its own device boundary (ops/strict hands its memory to the CPU kernels this way,
  // inside a kernel call); everything else moves memory between devices with Backend::copy.
  Tensor relabeled(Device device) const;

  bool defined() const { return data_ != nullptr; }
  void* data() const { return data_; }
  template <typename T>
  T* data_as() const {
    CONVOY_CHECK(dtype_ == dtype_of<T>(), "tensor holds " << dtype_name(dtype_) << ", accessed as "
                                                          << dtype_name(dtype_of<T>()));
    return static_cast<T*>(data_);
  }
  // Host access: checks that the memory is on the CPU.
  template <typename T>
  T* host() const {
    CONVOY_CHECK(device_.is_cpu(), "tensor lives on " << device_.str() << ", not on the host");
    return data_as<T>();
  }

  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

 private:
  std::shared_ptr<Storage> storage_;
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::f32;
  Device device_;
};

}  // namespace convoy::ops
