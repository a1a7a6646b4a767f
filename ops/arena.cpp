#include "ops/arena.h"

namespace convoy::ops {

size_t ArenaLayout::add(ArenaEntry entry) {
  CONVOY_CHECK(!contains(entry.name), "two parameters are both named '" << entry.name << "'");
  size_t plain = static_cast<size_t>(entry.shape.numel()) * dtype_size(entry.dtype);
  entry.bytes = entry.packing ? entry.packing->bytes() : plain;
  CONVOY_CHECK(entry.bytes >= plain, "packed layout of '" << entry.name << "' is smaller than its shape");
  entry.offset = (total_bytes_ + 63) / 64 * 64;
  total_bytes_ = entry.offset + entry.bytes;
  entries_.push_back(std::move(entry));
  return entries_.size() - 1;
}

size_t ArenaLayout::index_of(const std::string& name) const {
  for (size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].name == name) return i;
  CONVOY_FAIL("no parameter or buffer named '" << name << "'");
}

bool ArenaLayout::contains(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return true;
  return false;
}

int64_t ArenaLayout::total_numel() const {
  int64_t n = 0;
  for (const auto& e : entries_) n += e.numel();
  return n;
}

Arena::Arena(const ArenaLayout& layout, Allocator& alloc) : layout_(&layout) {
  size_t bytes = (layout.total_bytes() + 63) / 64 * 64;
  all_ = Tensor::empty(Shape{static_cast<int64_t>(bytes / 4)}, DType::f32, alloc);
}

Tensor Arena::view(size_t i) const {
  const ArenaEntry& e = layout_->entry(i);
  if (e.packing) return all_.view(e.offset, Shape{static_cast<int64_t>(e.bytes / 4)}, DType::f32);
  return all_.view(e.offset, e.shape, e.dtype);
}

}  // namespace convoy::ops
