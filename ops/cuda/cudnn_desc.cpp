#include "ops/cuda/cudnn_desc.h"

#include <sstream>

#include "ops/cuda/cuda_check.h"

namespace convoy::ops::cuda {

cudnnDataType_t cudnn_dtype(DType t) {
  switch (t) {
    case DType::f32: return CUDNN_DATA_FLOAT;
    case DType::f16: return CUDNN_DATA_HALF;
    case DType::bf16: return CUDNN_DATA_BFLOAT16;
    case DType::f64: return CUDNN_DATA_DOUBLE;
    case DType::i32: return CUDNN_DATA_INT32;
    case DType::i64: return CUDNN_DATA_INT64;
    case DType::u8: return CUDNN_DATA_UINT8;
  }
  CONVOY_FAIL("no cuDNN data type for " << dtype_name(t));
}

cudnnMathType_t conv_math(DType t, Fp32Math m) {
  if (t == DType::f16 || t == DType::bf16) return CUDNN_TENSOR_OP_MATH;
  return m == Fp32Math::tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

namespace {
int as_int(int64_t v, const char* what) {
  CONVOY_CHECK(v >= 0 && v <= INT32_MAX, what << " " << v << " is out of cuDNN's int range");
  return static_cast<int>(v);
}
}  // namespace

TensorDesc::TensorDesc() { CUDNN_CHECK(cudnnCreateTensorDescriptor(&d_)); }
TensorDesc::~TensorDesc() { cudnnDestroyTensorDescriptor(d_); }
void TensorDesc::set_nhwc(int64_t N, int64_t H, int64_t W, int64_t C, DType t) {
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(d_, CUDNN_TENSOR_NHWC, cudnn_dtype(t), as_int(N, "batch"), as_int(C, "channels"),
                                         as_int(H, "height"), as_int(W, "width")));
}

FilterDesc::FilterDesc() { CUDNN_CHECK(cudnnCreateFilterDescriptor(&d_)); }
FilterDesc::~FilterDesc() { cudnnDestroyFilterDescriptor(d_); }
void FilterDesc::set(const ConvSpec& s) {
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(d_, cudnn_dtype(s.dtype), CUDNN_TENSOR_NHWC, as_int(s.K, "output channels"),
                                         as_int(s.C / s.groups, "input channels per group"), as_int(s.R, "kernel height"),
                                         as_int(s.S, "kernel width")));
}

ConvDesc::ConvDesc() { CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d_)); }
ConvDesc::~ConvDesc() { cudnnDestroyConvolutionDescriptor(d_); }
void ConvDesc::set(const ConvSpec& s, Fp32Math m) {
  CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d_, as_int(s.pad_h, "padding"), as_int(s.pad_w, "padding"),
                                              as_int(s.stride_h, "stride"), as_int(s.stride_w, "stride"),
                                              as_int(s.dilation_h, "dilation"), as_int(s.dilation_w, "dilation"),
                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CUDNN_CHECK(cudnnSetConvolutionGroupCount(d_, as_int(s.groups, "groups")));
  CUDNN_CHECK(cudnnSetConvolutionMathType(d_, conv_math(s.dtype, m)));
}

void ConvDesc::set_math(cudnnMathType_t math) { CUDNN_CHECK(cudnnSetConvolutionMathType(d_, math)); }

ActivationDesc::ActivationDesc(bool relu) {
  CUDNN_CHECK(cudnnCreateActivationDescriptor(&d_));
  CUDNN_CHECK(cudnnSetActivationDescriptor(d_, relu ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_IDENTITY,
                                           CUDNN_PROPAGATE_NAN, 0.0));  // as oneDNN and PyTorch: a NaN stays NaN
}
ActivationDesc::~ActivationDesc() { cudnnDestroyActivationDescriptor(d_); }

void cudnn_output_shape(const ConvSpec& s, Fp32Math m, int64_t& N, int64_t& K, int64_t& OH, int64_t& OW) {
  TensorDesc x;
  FilterDesc w;
  ConvDesc c;
  x.set_nhwc(s.N, s.H, s.W, s.C, s.dtype);
  w.set(s);
  c.set(s, m);
  int n = 0, k = 0, h = 0, wd = 0;
  CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(c.get(), x.get(), w.get(), &n, &k, &h, &wd));
  N = n, K = k, OH = h, OW = wd;
}

std::string conv_algo_key(const ConvSpec& s, Fp32Math m, bool deterministic, size_t workspace_limit) {
  std::ostringstream os;
  os << dtype_name(s.dtype) << " N" << s.N << " H" << s.H << " W" << s.W << " C" << s.C << " K" << s.K << " R" << s.R
     << " S" << s.S << " str" << s.stride_h << "x" << s.stride_w << " pad" << s.pad_h << "x" << s.pad_w << " dil"
     << s.dilation_h << "x" << s.dilation_w << " g" << s.groups << (m == Fp32Math::tf32 ? " tf32" : " ieee")
     << (deterministic ? " det" : "") << " ws" << workspace_limit;
  return os.str();
}

}  // namespace convoy::ops::cuda
