#include "ops/cpu/im2col_weight_grad.h"

#include <cstring>

namespace convoy::ops::cpu {

Im2colWeightGrad::Im2colWeightGrad(CpuBackend& be, const ConvSpec& s, const dnnl::memory::desc& packed,
                                   size_t ws_offset)
    : s_(s), es_(dtype_size(s.dtype)), P_(s.out_h()), Q_(s.out_w()), rsc_(s.R * s.S * s.C) {
  CONVOY_CHECK(s.groups == 1, "internal: the im2col weight gradient handles groups=1 only");
  CONVOY_CHECK(s.dtype == DType::f32 || bf16_fits(s), "internal: the bf16 im2col weight gradient does not fit");
  // f32: chunks of whole images keep the column buffer under 32 MB; bf16: the whole batch in one matmul.
  const int64_t per_image = P_ * Q_ * rsc_ * static_cast<int64_t>(es_);
  images_per_chunk_ = s.dtype == DType::f32
                          ? std::clamp<int64_t>((32 << 20) / std::max<int64_t>(per_image, 1), 1, s.N)
                          : s.N;
  dnnl::memory::desc plain({s.K, s.C, s.R, s.S}, dt::f32, tag::ohwi);
  size_t scratch = 0;
  if (s.dtype != DType::f32) {
    using namespace dnnl;
    const int64_t rows = s.N * P_ * Q_;
    memory::desc gt({s.K, rows}, to_dnnl(s.dtype), tag::ba), col({rows, rsc_}, to_dnnl(s.dtype), tag::ab),
        out({s.K, rsc_}, dt::f32, tag::ab);
    auto mpd = make_pd("weight-gradient matmul", [&] {
      return matmul::primitive_desc(matmul::desc(gt, col, out), scratchpad_attr(), be.engine());
    });
    scratch = mpd.scratchpad_desc().get_size();
    matmul_ = Call(matmul(mpd), be.engine());
    matmul_.arg(DNNL_ARG_SRC, gt);
    matmul_.arg(DNNL_ARG_WEIGHTS, col);
    matmul_.arg(DNNL_ARG_DST, out);
    matmul_.arg(DNNL_ARG_SCRATCHPAD, mpd.scratchpad_desc());
  }
  auto pd = make_pd("weight-gradient reorder", [&] {
    return dnnl::reorder::primitive_desc(be.engine(), plain, be.engine(), packed, scratchpad_attr());
  });
  WorkspacePlan ws;
  ws.add(ws_offset);
  off_plain_ = ws.add(plain.get_size());
  off_col_ = ws.add(static_cast<size_t>(images_per_chunk_ * per_image));
  off_scratch_ = ws.add(std::max(scratch, pd.scratchpad_desc().get_size()));
  ws_end_ = ws.total();
  be.reserve_workspace(ws_end_);
  reorder_ = Call(dnnl::reorder(pd), be.engine());
  reorder_.arg(DNNL_ARG_FROM, plain);
  reorder_.arg(DNNL_ARG_TO, packed);
  reorder_.arg(DNNL_ARG_SCRATCHPAD, pd.scratchpad_desc());
}

bool Im2colWeightGrad::bf16_fits(const ConvSpec& s) {
  return s.groups == 1 && s.N * s.out_h() * s.out_w() * s.R * s.S * s.C * 2 <= (64 << 20);
}

void im2col_nhwc(const ConvSpec& s, size_t es, const char* x, int64_t n0, int64_t images, char* col) {
  const int64_t C = s.C, H = s.H, W = s.W, P = s.out_h(), Q = s.out_w(), rows = images * P * Q;
  const int64_t rsc = s.R * s.S * C;
  const size_t run = static_cast<size_t>(C) * es;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t n = n0 + row / (P * Q), p = row / Q % P, q = row % Q;
    char* dst = col + static_cast<size_t>(row * rsc) * es;
    for (int64_t r = 0; r < s.R; ++r) {
      const int64_t ih = p * s.stride_h - s.pad_h + r * s.dilation_h;
      for (int64_t t = 0; t < s.S; ++t, dst += run) {
        const int64_t iw = q * s.stride_w - s.pad_w + t * s.dilation_w;
        if (ih < 0 || ih >= H || iw < 0 || iw >= W)
          std::memset(dst, 0, run);
        else
          std::memcpy(dst, x + static_cast<size_t>(((n * H + ih) * W + iw) * C) * es, run);
      }
    }
  }
}

template <typename T>
void Im2colWeightGrad::bias_grad(const T* g, float* db) const {
  const int64_t rows = s_.N * P_ * Q_, K = s_.K;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < K; ++k) {
    double sum = 0;
    for (int64_t row = 0; row < rows; ++row) sum += load_f32(g[row * K + k]);
    db[k] = static_cast<float>(sum);
  }
}

void Im2colWeightGrad::run(ExecContext& ctx, const void* x, const void* g, void* dw, float* db) {
  char* ws = static_cast<char*>(ctx.workspace(ws_end_));
  float* plain = reinterpret_cast<float*>(ws + off_plain_);
  char* col = ws + off_col_;
  const int64_t K = s_.K;
  if (matmul_.valid()) {
    im2col_nhwc(s_, es_, static_cast<const char*>(x), 0, s_.N, col);
    matmul_.set(DNNL_ARG_SRC, g);
    matmul_.set(DNNL_ARG_WEIGHTS, col);
    matmul_.set(DNNL_ARG_DST, plain);
    matmul_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
    matmul_.run(cpu_ctx(ctx).stream());
  } else {
    const float* gf = static_cast<const float*>(g);
    for (int64_t n0 = 0; n0 < s_.N; n0 += images_per_chunk_) {
      const int64_t images = std::min(images_per_chunk_, s_.N - n0), rows = images * P_ * Q_;
      im2col_nhwc(s_, es_, static_cast<const char*>(x), n0, images, col);
      dnnl_status_t st = dnnl_sgemm('T', 'N', K, rsc_, rows, 1.f, gf + n0 * P_ * Q_ * K, K,
                                    reinterpret_cast<const float*>(col), rsc_, n0 == 0 ? 0.f : 1.f, plain, rsc_);
      CONVOY_CHECK(st == dnnl_success, "oneDNN's sgemm failed (status " << static_cast<int>(st) << ")");
    }
  }
  reorder_.set(DNNL_ARG_FROM, plain);
  reorder_.set(DNNL_ARG_TO, dw);
  reorder_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
  reorder_.run(cpu_ctx(ctx).stream());
  if (db && s_.dtype == DType::bf16)
    bias_grad(static_cast<const uint16_t*>(g), db);
  else if (db)
    bias_grad(static_cast<const float*>(g), db);
}

}  // namespace convoy::ops::cpu
