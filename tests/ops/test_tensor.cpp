#include <gtest/gtest.h>

#include "ops/arena.h"
#include "ops/tensor.h"

namespace convoy::ops {
namespace {

TEST(Tensor, ShapeBasics) {
  Shape s{2, 3, 4};
  EXPECT_EQ(s.rank(), 3);
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(s.str(), "(2, 3, 4)");
  EXPECT_EQ(Shape{}.numel(), 1);  // a scalar
  EXPECT_TRUE((Shape{2, 3} == Shape{2, 3}));
  EXPECT_FALSE((Shape{2, 3} == Shape{3, 2}));
  EXPECT_THROW((Shape{1, 2, 3, 4, 5, 6, 7}), Error);
}

TEST(Tensor, OwningStorageIsAlignedAndZeroed) {
  Tensor t = Tensor::empty(Shape{3, 5}, DType::f32);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
  EXPECT_EQ(t.bytes(), 60u);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(t.host<float>()[i], 0.f);
}

TEST(Tensor, ViewsShareMemoryAndCheckBounds) {
  Tensor t = Tensor::zeros_host(Shape{16});
  Tensor v = t.view(16, Shape{2, 2});
  v.host<float>()[0] = 7.f;
  EXPECT_EQ(t.host<float>()[4], 7.f);
  EXPECT_THROW(t.view(60, Shape{2}), Error);  // runs past the end
  EXPECT_THROW(t.host<int32_t>(), Error);     // wrong dtype
  EXPECT_THROW(t.reshaped(Shape{5, 3}), Error);
}

TEST(Tensor, ParseDtype) {
  EXPECT_EQ(parse_dtype("bf16"), DType::bf16);
  EXPECT_EQ(parse_dtype("fp16"), DType::f16);
  EXPECT_THROW(parse_dtype("f8"), Error);
}

TEST(Arena, EntriesAreAlignedNamedAndContiguous) {
  ArenaLayout layout;
  ArenaEntry a;
  a.name = "conv.weight";
  a.shape = Shape{4, 3, 3, 3};
  ArenaEntry b;
  b.name = "conv.bias";
  b.shape = Shape{4};
  EXPECT_EQ(layout.add(a), 0u);
  EXPECT_EQ(layout.add(b), 1u);
  EXPECT_EQ(layout.entry(0).offset, 0u);
  EXPECT_EQ(layout.entry(1).offset, 448u);  // 108 floats = 432 bytes, rounded up to 64
  EXPECT_EQ(layout.total_numel(), 112);
  EXPECT_EQ(layout.index_of("conv.bias"), 1u);
  EXPECT_THROW(layout.add(a), Error);  // duplicate name
  try {
    layout.index_of("fc.weight");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'fc.weight'"), std::string::npos);
  }

  Arena arena(layout, host_allocator());
  Tensor w = arena.view("conv.weight");
  EXPECT_EQ(w.shape(), (Shape{4, 3, 3, 3}));
  EXPECT_EQ(static_cast<char*>(arena.view(1).data()) - static_cast<char*>(arena.flat().data()), 448);
  EXPECT_GE(arena.flat().bytes(), layout.total_bytes());
}

}  // namespace
}  // namespace convoy::ops
