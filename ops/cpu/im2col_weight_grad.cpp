#include "ops/cpu/im2col_weight_grad.h"

#include <cstring>

namespace convoy::ops::cpu {

Im2colWeightGrad::Im2colWeightGrad(CpuBackend& be, const ConvSpec& s, const dnnl::memory::desc& packed,
                                   size_t ws_offset)
    : s_(s), P_(s.out_h()), Q_(s.out_w()), rsc_(s.R * s.S * s.C) {
  CONVOY_CHECK(s.groups == 1, "internal: the im2col weight gradient handles groups=1 only");
  // Chunks of whole images keep the column buffer under 32 MB.
  const int64_t per_image = P_ * Q_ * rsc_ * 4;
  images_per_chunk_ = std::clamp<int64_t>((32 << 20) / std::max<int64_t>(per_image, 1), 1, s.N);
  dnnl::memory::desc plain({s.K, s.C, s.R, s.S}, dt::f32, tag::ohwi);
  auto pd = make_pd("weight-gradient reorder", [&] {
    return dnnl::reorder::primitive_desc(be.engine(), plain, be.engine(), packed, scratchpad_attr());
  });
  WorkspacePlan ws;
  ws.add(ws_offset);
  off_plain_ = ws.add(plain.get_size());
  off_col_ = ws.add(static_cast<size_t>(images_per_chunk_ * per_image));
  off_scratch_ = ws.add(pd.scratchpad_desc().get_size());
  ws_end_ = ws.total();
  be.reserve_workspace(ws_end_);
  reorder_ = Call(dnnl::reorder(pd), be.engine());
  reorder_.arg(DNNL_ARG_FROM, plain);
  reorder_.arg(DNNL_ARG_TO, packed);
  reorder_.arg(DNNL_ARG_SCRATCHPAD, pd.scratchpad_desc());
}

// col row (n, p, q) holds the input patch in (r, s, c) order, zeros where it overlaps the padding.
void Im2colWeightGrad::im2col(const float* x, int64_t n0, int64_t images, float* col) const {
  const int64_t C = s_.C, H = s_.H, W = s_.W, rows = images * P_ * Q_;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t n = n0 + row / (P_ * Q_), p = row / Q_ % P_, q = row % Q_;
    float* dst = col + row * rsc_;
    for (int64_t r = 0; r < s_.R; ++r) {
      const int64_t ih = p * s_.stride_h - s_.pad_h + r * s_.dilation_h;
      for (int64_t t = 0; t < s_.S; ++t, dst += C) {
        const int64_t iw = q * s_.stride_w - s_.pad_w + t * s_.dilation_w;
        if (ih < 0 || ih >= H || iw < 0 || iw >= W)
          std::memset(dst, 0, static_cast<size_t>(C) * 4);
        else
          std::memcpy(dst, x + ((n * H + ih) * W + iw) * C, static_cast<size_t>(C) * 4);
      }
    }
  }
}

void Im2colWeightGrad::run(ExecContext& ctx, const float* x, const float* g, void* dw, float* db) {
  char* ws = static_cast<char*>(ctx.workspace(ws_end_));
  float* plain = reinterpret_cast<float*>(ws + off_plain_);
  float* col = reinterpret_cast<float*>(ws + off_col_);
  const int64_t K = s_.K;
  for (int64_t n0 = 0; n0 < s_.N; n0 += images_per_chunk_) {
    const int64_t images = std::min(images_per_chunk_, s_.N - n0), rows = images * P_ * Q_;
    im2col(x, n0, images, col);
    dnnl_status_t st = dnnl_sgemm('T', 'N', K, rsc_, rows, 1.f, g + n0 * P_ * Q_ * K, K, col, rsc_,
                                  n0 == 0 ? 0.f : 1.f, plain, rsc_);
    CONVOY_CHECK(st == dnnl_success, "oneDNN's sgemm failed (status " << static_cast<int>(st) << ")");
  }
  reorder_.set(DNNL_ARG_FROM, plain);
  reorder_.set(DNNL_ARG_TO, dw);
  reorder_.set(DNNL_ARG_SCRATCHPAD, ws + off_scratch_);
  reorder_.run(cpu_ctx(ctx).stream());
  if (db) {
    const int64_t rows = s_.N * P_ * Q_;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < K; ++k) {
      double sum = 0;
      for (int64_t row = 0; row < rows; ++row) sum += g[row * K + k];
      db[k] = static_cast<float>(sum);
    }
  }
}

}  // namespace convoy::ops::cpu
