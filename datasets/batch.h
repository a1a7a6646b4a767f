// A batch ready for the model, in plain host memory. The Loader owns the memory (a fixed pool of
// buffers allocated once); a Batch only points into it, so a trainer can wrap these pointers as tensor
// views without copying. Pointers stay valid, and the memory stays at the same address, for the
// Loader's lifetime; the *contents* belong to the consumer only until it hands the batch back (see
// Loader::next()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace convoy::datasets {

enum class PixelType { f32, bf16 };

// Where the Loader's batch buffers come from: the trainer passes its backend's staging memory (pinned
// host memory when the device is a GPU, so the copy to it can run asynchronously); unset, plain aligned
// host memory. allocate(bytes) returns memory aligned to 64 bytes or throws; release(p, bytes) frees it.
struct BatchMemory {
  std::function<void*(size_t bytes)> allocate;
  std::function<void(void* p, size_t bytes)> release;
};

struct Batch {
  // images: (n, height, width, channels) NHWC, 64-byte aligned. float32, or for PixelType::bf16 the upper
  // 16 bits of the float32 value rounded to nearest even, stored as uint16_t.
  void* images = nullptr;
  int32_t* labels = nullptr;  // (n)
  uint8_t* valid = nullptr;   // (n) 1 = a real sample; 0 = padding (a wrap-around duplicate): skip in evaluation
  int64_t* indices = nullptr; // (n) the record's global index in the split (index order of the shards)
  int64_t n = 0, height = 0, width = 0, channels = 0;
  int64_t num_valid = 0;      // samples with valid = 1
  PixelType dtype = PixelType::f32;
  int64_t epoch = 0;          // which epoch ...
  int64_t step = 0;           // ... and which batch of it (0-based)

  const float* images_f32() const { return dtype == PixelType::f32 ? static_cast<const float*>(images) : nullptr; }
  const uint16_t* images_bf16() const {
    return dtype == PixelType::bf16 ? static_cast<const uint16_t*>(images) : nullptr;
  }
  size_t bytes_per_element() const { return dtype == PixelType::f32 ? 4 : 2; }
  int64_t image_elements() const { return n * height * width * channels; }
};

}  // namespace convoy::datasets
