// The pieces of the CUDA backend that run without a GPU: the caching allocator's policy (over host
// memory standing in for cudaMalloc), the choice of GPU per rank, PyTorch's pooling windows that the CUDA
// pooling kernels use, and (in a build with the CUDA backend) cuDNN descriptors and the algorithm-cache key.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <vector>

#include "common/error.h"
#include "ops/cuda/caching_allocator.h"
#include "ops/cuda/gpu_choice.h"
#include "ops/math/window.h"

#if defined(CONVOY_CUDA_BACKEND)
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cudnn_desc.h"
#endif

namespace convoy::ops::cuda {
namespace {

TEST(SizeClass, SmallRequestsRoundTo512BytesLargeTo2MiB) {
  EXPECT_EQ(size_class(0), 512u);
  EXPECT_EQ(size_class(1), 512u);
  EXPECT_EQ(size_class(512), 512u);
  EXPECT_EQ(size_class(513), 1024u);
  EXPECT_EQ(size_class(size_t{1} << 20), size_t{1} << 20);
  EXPECT_EQ(size_class((size_t{1} << 20) + 1), size_t{2} << 20);
  EXPECT_EQ(size_class((size_t{2} << 20) + 1), size_t{4} << 20);
  for (size_t b : {size_t{3}, size_t{4097}, size_t{777777}, size_t{5} << 20, size_t{100000001}}) {
    EXPECT_GE(size_class(b), b);
    EXPECT_EQ(size_class(size_class(b)), size_class(b));  // a class is its own class
  }
}

struct RawHost {  // host memory standing in for cudaMalloc, counting calls
  int allocs = 0, frees = 0;
  size_t limit = SIZE_MAX, live = 0;
  std::vector<std::pair<void*, size_t>> blocks;
  void* alloc(size_t b) {
    if (live + b > limit) return nullptr;
    ++allocs, live += b;
    void* p = std::malloc(b);
    blocks.emplace_back(p, b);
    return p;
  }
  void free(void* p) {
    ++frees;
    for (auto it = blocks.begin(); it != blocks.end(); ++it)
      if (it->first == p) {
        live -= it->second;
        blocks.erase(it);
        break;
      }
    std::free(p);
  }
};

CachingAllocator make(RawHost& raw) {
  return CachingAllocator(Device{DeviceKind::cuda, 0}, [&raw](size_t b) { return raw.alloc(b); },
                          [&raw](void* p) { raw.free(p); }, "test memory");
}

TEST(CachingAllocator, ASteadyStepReusesBlocksWithoutRawCalls) {
  RawHost raw;
  {
    CachingAllocator a = make(raw);
    // Set-up: a few tensors; a "step" then frees and re-allocates the same sizes many times.
    std::vector<size_t> sizes{1000, 4096, 3 << 20, 700};
    std::vector<void*> ps;
    for (size_t s : sizes) ps.push_back(a.allocate(s));
    EXPECT_EQ(raw.allocs, 4);
    for (int step = 0; step < 50; ++step) {
      for (size_t i = 0; i < sizes.size(); ++i) a.deallocate(ps[i], sizes[i]);
      for (size_t i = 0; i < sizes.size(); ++i) ps[i] = a.allocate(sizes[i]);
    }
    EXPECT_EQ(raw.allocs, 4) << "a steady step must not call the raw allocator";
    EXPECT_EQ(raw.frees, 0);
    const MemoryCounters c = a.counters();
    EXPECT_EQ(c.raw_allocations, 4u);
    EXPECT_EQ(c.requests, 4u + 50u * 4u);
    EXPECT_EQ(c.in_use_bytes, size_class(1000) + size_class(4096) + size_class(3 << 20) + size_class(700));
    for (size_t i = 0; i < sizes.size(); ++i) a.deallocate(ps[i], sizes[i]);
    EXPECT_EQ(a.counters().in_use_bytes, 0u);
    EXPECT_EQ(a.counters().cached_bytes, c.in_use_bytes);
  }
  EXPECT_EQ(raw.frees, 4) << "the destructor returns the cache";
  EXPECT_EQ(raw.live, 0u);
}

TEST(CachingAllocator, SizesOfOneClassShareABlock) {
  RawHost raw;
  CachingAllocator a = make(raw);
  void* p = a.allocate(600);
  a.deallocate(p, 600);
  EXPECT_EQ(a.allocate(1000), p);  // 600 and 1000 bytes are both 1024-byte blocks
  EXPECT_EQ(raw.allocs, 1);
  void* q = a.allocate(2000);  // another class: a new block
  EXPECT_NE(q, p);
  EXPECT_EQ(raw.allocs, 2);
}

TEST(CachingAllocator, ExhaustionReleasesTheCacheAndRetriesThenSaysWhatWasAsked) {
  RawHost raw;
  raw.limit = 8 << 20;
  CachingAllocator a = make(raw);
  void* p = a.allocate(6 << 20);
  a.deallocate(p, 6 << 20);  // cached: 6 MiB held
  void* q = a.allocate(4 << 20);  // does not fit beside the cache: released, then it fits
  EXPECT_NE(q, nullptr);
  EXPECT_EQ(raw.frees, 1);
  try {
    a.allocate(16 << 20);
    FAIL() << "expected an out-of-memory error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("out of test memory: 16777216 bytes requested"), std::string::npos) << m;
    EXPECT_NE(m.find("4194304 bytes in use"), std::string::npos) << m;
  }
}

TEST(CachingAllocator, AFreeOfAnUnknownBlockIsAnError) {
  RawHost raw;
  CachingAllocator a = make(raw);
  int x = 0;
  EXPECT_THROW(a.deallocate(&x, 4), Error);
  void* p = a.allocate(64);
  a.deallocate(p, 64);
  EXPECT_THROW(a.deallocate(p, 64), Error);  // twice
}

TEST(GpuChoice, OneVisibleGpuIsTheRanksOwnOtherwiseTheLocalRank) {
  EXPECT_EQ(choose_gpu(1, 3, 8, "5"), 0);  // Slurm --gpus-per-task=1: each rank sees its own
  EXPECT_EQ(choose_gpu(8, 3, 8, nullptr), 3);
  EXPECT_EQ(choose_gpu(4, 0, 2, "0,1,2,3"), 0);
}

TEST(GpuChoice, MoreRanksThanGpusNamesBothCountsAndTheVariable) {
  try {
    choose_gpu(2, 0, 4, "0,1");
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("4 ranks on this node but only 2 GPUs visible"), std::string::npos) << m;
    EXPECT_NE(m.find("CUDA_VISIBLE_DEVICES=0,1"), std::string::npos) << m;
  }
  try {
    choose_gpu(0, 0, 1, nullptr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no GPU is visible"), std::string::npos) << e.what();
  }
}

// The windows of every output, and the outputs containing every input, agree (the backward gathers what
// the forward read), and the sizes follow PyTorch's rules.
TEST(PoolWindows, ForwardWindowsAndBackwardGathersAgree) {
  for (int64_t in : {1, 4, 7, 12})
    for (int64_t k : {1, 2, 3, 5})
      for (int64_t s : {1, 2, 3})
        for (int64_t p = 0; p <= k / 2; ++p)
          for (bool ceil : {false, true}) {
            PoolSpec spec;
            spec.H = in, spec.kh = k, spec.stride_h = s, spec.pad_h = p, spec.ceil_mode = ceil;
            if (in + 2 * p < k) continue;
            const int64_t out = spec.out_h();
            std::set<std::pair<int64_t, int64_t>> fwd, bwd;
            for (int64_t o = 0; o < out; ++o) {
              const math::Window w = math::pool_window(o, in, k, s, p);
              EXPECT_LT(w.begin, w.end) << "an empty window at output " << o;
              EXPECT_LE(w.padded_size, k);
              for (int64_t i = w.begin; i < w.end; ++i) fwd.emplace(o, i);
            }
            for (int64_t i = 0; i < in; ++i) {
              int64_t first, last;
              math::windows_containing(i, out, k, s, p, first, last);
              for (int64_t o = first; o <= last; ++o) bwd.emplace(o, i);
            }
            EXPECT_EQ(fwd, bwd) << "in " << in << " k " << k << " s " << s << " p " << p << " ceil " << ceil;
          }
}

TEST(PoolWindows, CountIncludePadClipsAtThePaddingAsPyTorch) {
  // PyTorch: AvgPool2d(3, stride 2, padding 1, ceil_mode) on 6 inputs: outputs 0..3; the last window
  // starts at 5, would end at 8, is clipped to in + pad = 7: 2 counted (one real input, one pad).
  const math::Window last = math::pool_window(3, 6, 3, 2, 1);
  EXPECT_EQ(last.begin, 5);
  EXPECT_EQ(last.end, 6);
  EXPECT_EQ(last.padded_size, 2);
  const math::Window first = math::pool_window(0, 6, 3, 2, 1);
  EXPECT_EQ(first.begin, 0);
  EXPECT_EQ(first.end, 2);
  EXPECT_EQ(first.padded_size, 3);
}

#if defined(CONVOY_CUDA_BACKEND)
// cuDNN builds descriptors without a device: the shapes it derives must be convoy's.
TEST(CudnnDescriptors, ConvolutionOutputShapesAgreeWithTheSpec) {
  std::vector<ConvSpec> specs(4);
  specs[0].N = 8, specs[0].H = 56, specs[0].W = 56, specs[0].C = 64, specs[0].K = 64, specs[0].R = specs[0].S = 3,
  specs[0].pad_h = specs[0].pad_w = 1;
  specs[1] = specs[0], specs[1].stride_h = specs[1].stride_w = 2, specs[1].K = 128;
  specs[2] = specs[0], specs[2].groups = 64, specs[2].K = 64;  // depthwise
  specs[3] = specs[0], specs[3].R = 1, specs[3].S = 3, specs[3].pad_h = 0, specs[3].dilation_w = 2, specs[3].pad_w = 2;
  for (const ConvSpec& s : specs)
    for (Fp32Math m : {Fp32Math::ieee, Fp32Math::tf32}) {
      int64_t n, k, oh, ow;
      cudnn_output_shape(s, m, n, k, oh, ow);
      EXPECT_EQ(n, s.N);
      EXPECT_EQ(k, s.K);
      EXPECT_EQ(oh, s.out_h());
      EXPECT_EQ(ow, s.out_w());
    }
}

TEST(CudnnDescriptors, MathTypesFollowPrecisionAndTf32) {
  EXPECT_EQ(conv_math(DType::f32, Fp32Math::ieee), CUDNN_FMA_MATH);
  EXPECT_EQ(conv_math(DType::f32, Fp32Math::tf32), CUDNN_DEFAULT_MATH);
  EXPECT_EQ(conv_math(DType::f16, Fp32Math::ieee), CUDNN_TENSOR_OP_MATH);
  EXPECT_EQ(conv_math(DType::bf16, Fp32Math::tf32), CUDNN_TENSOR_OP_MATH);
}

TEST(CudnnDescriptors, ABadSpecIsRefusedByCudnnWithTheCall) {
  ConvSpec s;
  s.N = 2, s.H = 8, s.W = 8, s.C = 6, s.K = 4, s.R = s.S = 3, s.groups = 4;  // 6 channels do not split into 4 groups
  try {
    int64_t n, k, oh, ow;
    cudnn_output_shape(s, Fp32Math::ieee, n, k, oh, ow);
    FAIL() << "cuDNN accepted 6 channels in 4 groups";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuDNN call failed"), std::string::npos) << e.what();
  }
}

TEST(ConvAlgoKey, EveryFieldThatChangesTheChoiceChangesTheKey) {
  ConvSpec base;
  base.N = 8, base.H = 14, base.W = 14, base.C = 32, base.K = 64, base.R = base.S = 3, base.pad_h = base.pad_w = 1;
  const std::string k0 = conv_algo_key(base, Fp32Math::ieee, false, 1 << 30);
  EXPECT_EQ(k0, conv_algo_key(base, Fp32Math::ieee, false, 1 << 30));
  ConvSpec b = base;
  b.fuse_relu = true, b.bias = true;  // the epilogue does not change the search
  EXPECT_EQ(k0, conv_algo_key(b, Fp32Math::ieee, false, 1 << 30));
  std::set<std::string> keys{k0};
  auto differs = [&](ConvSpec s, Fp32Math m, bool det, size_t ws) {
    EXPECT_TRUE(keys.insert(conv_algo_key(s, m, det, ws)).second) << conv_algo_key(s, m, det, ws);
  };
  ConvSpec s = base;
  s.N = 16, differs(s, Fp32Math::ieee, false, 1 << 30);
  s = base, s.H = 15, differs(s, Fp32Math::ieee, false, 1 << 30);
  s = base, s.W = 13, differs(s, Fp32Math::ieee, false, 1 << 30);
  s = base, s.C = 16, differs(s, Fp32Math::ieee, false, 1 << 30);
  s = base, s.K = 32, differs(s, Fp32Math::ieee, false, 1 << 30);
  s = base, s.R = 1, differs(s, Fp32Math::ieee, false, 1 << 30);
  s = base, s.S = 1, differs(s, Fp32Math::ieee, false, 1 << 30);
  s = base, s.stride_w = 2, differs(s, Fp32Math::ieee, false, 1 << 30);
  s = base, s.pad_h = 0, differs(s, Fp32Math::ieee, false, 1 << 30);
  s = base, s.dilation_h = 2, differs(s, Fp32Math::ieee, false, 1 << 30);
  s = base, s.groups = 2, differs(s, Fp32Math::ieee, false, 1 << 30);
  s = base, s.dtype = DType::f16, differs(s, Fp32Math::ieee, false, 1 << 30);
  differs(base, Fp32Math::tf32, false, 1 << 30);
  differs(base, Fp32Math::ieee, true, 1 << 30);
  differs(base, Fp32Math::ieee, false, 1 << 20);
}

TEST(WeightLayouts, OihwToOhwiIsAPermutation) {
  const Shape s{4, 3, 2, 5};
  std::set<int64_t> seen;
  for (int64_t i = 0; i < s.numel(); ++i) seen.insert(oihw_to_ohwi(i, s));
  EXPECT_EQ(static_cast<int64_t>(seen.size()), s.numel());
  EXPECT_EQ(*seen.rbegin(), s.numel() - 1);
  // (k=1, c=2, h=1, w=3) -> ((1*2 + 1)*5 + 3)*3 + 2
  EXPECT_EQ(oihw_to_ohwi(((1 * 3 + 2) * 2 + 1) * 5 + 3, s), ((1 * 2 + 1) * 5 + 3) * 3 + 2);
}

TEST(CudaBackend, MakeBackendWithoutAGpuSaysSo) {
  if (cuda_devices() > 0) GTEST_SKIP() << "a GPU is visible: this checks the message where there is none";
  try {
    make_backend("cuda", 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no GPU is visible to this process"), std::string::npos) << e.what();
  }
}
#endif

}  // namespace
}  // namespace convoy::ops::cuda
