// Elementwise ops on the GPU: fill, copy (with conversion, from strided views), add, axpy, scale, mul, bias
// add and the (B,L,H) <-> (B,H,L) transpose; same contracts as ops/elementwise.hpp.
#pragma once
#include <cstdint>
#include <type_traits>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../elementwise.hpp"
#include "math.cuh"

namespace longseq::ops {

namespace cuda_detail {

template <class T, class U>
void check_same(const TensorView<T, device::cuda>& a, const TensorView<U, device::cuda>& b, std::string_view an,
                std::string_view bn) {
  expect_contiguous(a, an);
  expect_contiguous(b, bn);
  expect_same_shape_as(b, a, bn, an);
}

// Reads through float for half/bf16, as the host copy does.
template <class U>
using convert_via = std::conditional_t<std::is_same_v<U, half> || std::is_same_v<U, bf16>, float, U>;

template <class T>
struct FillOp {
  T* y;
  T value;
  __device__ void operator()(index_t i) const { y[i] = value; }
};

// Extents and strides in plain arrays: device code does not touch std::array.
struct Strided {
  index_t ext[Shape::max_rank], str[Shape::max_rank];
  int rank;
};
inline Strided strided_of(const Shape& shape, const Shape& strides) {
  Strided s{};
  s.rank = shape.rank;
  for (int d = 0; d < shape.rank; ++d) {
    s.ext[d] = shape.dims[d];
    s.str[d] = strides.dims[d];
  }
  return s;
}

template <class T, class U>
struct CopyOp {
  const U* x;
  T* y;
  Strided s;
  bool contiguous;
  __device__ void operator()(index_t i) const {
    index_t off = i;
    if (!contiguous) {
      off = 0;
      index_t rest = i;
      for (int d = s.rank - 1; d >= 0; --d) {
        off += (rest % s.ext[d]) * s.str[d];
        rest /= s.ext[d];
      }
    }
    y[i] = T(convert_via<U>(x[off]));
  }
};

// y = alpha_a * a + alpha_b * b, or y = a * b with Mul; b may be y itself (add_inplace, axpy).
template <class T, bool Mul>
struct BinaryOp {
  const T* a;
  const T* b;
  T* y;
  accum_t<T> alpha_a, alpha_b;
  __device__ void operator()(index_t i) const {
    using W = accum_t<T>;
    if constexpr (Mul)
      y[i] = T(W(a[i]) * W(b[i]));
    else
      y[i] = T(alpha_a * W(a[i]) + alpha_b * W(b[i]));
  }
};

template <class T>
struct ScaleOp {
  T* y;
  accum_t<T> alpha;
  __device__ void operator()(index_t i) const { y[i] = T(alpha * accum_t<T>(y[i])); }
};

template <class T>
struct MulBackwardOp {
  const T* a;
  const T* b;
  const T* dy;
  T* da;
  T* db;
  __device__ void operator()(index_t i) const {
    using W = accum_t<T>;
    W g = W(dy[i]), av = W(a[i]), bv = W(b[i]);
    if (da) da[i] = T(g * bv);
    if (db) db[i] = T(g * av);
  }
};

template <class T>
struct AddBiasOp {
  T* y;
  const T* bias;
  index_t H;
  __device__ void operator()(index_t i) const {
    using W = accum_t<T>;
    y[i] = T(W(y[i]) + W(bias[i % H]));
  }
};

// A transpose only moves bits: one kernel per element size, on unsigned words of that size.
template <std::size_t Bytes> struct word;
template <> struct word<2> { using type = std::uint16_t; };
template <> struct word<4> { using type = std::uint32_t; };
template <> struct word<8> { using type = std::uint64_t; };

// 32 x 32 tiles through shared memory (padded against bank conflicts) so that both the reads of x and
// the writes of y are coalesced. Block (32, 8); blockIdx.z strides over the batch.
template <class S>
__global__ void transpose12_kernel(const S* x, S* y, index_t B, index_t L, index_t H) {
  __shared__ S tile[32][33];
  index_t h0 = index_t(blockIdx.x) * 32, l0 = index_t(blockIdx.y) * 32;
  for (index_t b = blockIdx.z; b < B; b += gridDim.z) {
    const S* xb = x + b * L * H;
    S* yb = y + b * L * H;
    for (int k = threadIdx.y; k < 32; k += 8) {
      index_t l = l0 + k, h = h0 + threadIdx.x;
      if (l < L && h < H) tile[k][threadIdx.x] = xb[l * H + h];
    }
    __syncthreads();
    for (int k = threadIdx.y; k < 32; k += 8) {
      index_t h = h0 + k, l = l0 + threadIdx.x;
      if (h < H && l < L) yb[h * L + l] = tile[threadIdx.x][k];
    }
    __syncthreads();
  }
}

}  // namespace cuda_detail

template <class T>
void fill(Context<device::cuda>& ctx, TensorView<T, device::cuda> y, std::type_identity_t<T> value) {
  expect_contiguous(y, "y");
  cuda::for_each(ctx.stream(), y.numel(), cuda_detail::FillOp<T>{y.data, value}, "fill");
}

// y = x converting element types; x may be strided, y contiguous of the same shape.
template <class T, class U>
void copy(Context<device::cuda>& ctx, TensorView<const U, device::cuda> x, TensorView<T, device::cuda> y) {
  expect_contiguous(y, "y");
  cuda_detail::expect_same_shape_as(y, x, "y", "x");
  cuda::for_each(ctx.stream(), y.numel(),
                 cuda_detail::CopyOp<T, U>{x.data, y.data, cuda_detail::strided_of(x.shape, x.strides),
                                           x.is_contiguous()},
                 "copy");
}
template <class T>
void copy(Context<device::cuda>& ctx, TensorView<T, device::cuda> x, TensorView<T, device::cuda> y) {
  copy<T, T>(ctx, TensorView<const T, device::cuda>(x), y);
}

// y = a + b (y may alias a or b).
template <class T>
void add(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> a, cuda_detail::CudaIn<T> b,
         TensorView<T, device::cuda> y) {
  cuda_detail::check_same(a, b, "a", "b");
  cuda_detail::check_same(a, y, "a", "y");
  using W = accum_t<T>;
  cuda::for_each(ctx.stream(), y.numel(), cuda_detail::BinaryOp<T, false>{a.data, b.data, y.data, W(1), W(1)}, "add");
}

// y += x.
template <class T>
void add_inplace(Context<device::cuda>& ctx, TensorView<T, device::cuda> y, cuda_detail::CudaIn<T> x) {
  cuda_detail::check_same(x, y, "x", "y");
  using W = accum_t<T>;
  cuda::for_each(ctx.stream(), y.numel(), cuda_detail::BinaryOp<T, false>{x.data, y.data, y.data, W(1), W(1)},
                 "add_inplace");
}

// y += alpha * x.
template <class T>
void axpy(Context<device::cuda>& ctx, accum_t<T> alpha, cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y) {
  cuda_detail::check_same(x, y, "x", "y");
  using W = accum_t<T>;
  cuda::for_each(ctx.stream(), y.numel(), cuda_detail::BinaryOp<T, false>{x.data, y.data, y.data, alpha, W(1)},
                 "axpy");
}

// y *= alpha, in place.
template <class T>
void scale(Context<device::cuda>& ctx, TensorView<T, device::cuda> y, accum_t<T> alpha) {
  expect_contiguous(y, "y");
  cuda::for_each(ctx.stream(), y.numel(), cuda_detail::ScaleOp<T>{y.data, alpha}, "scale");
}

// y = a * b (y may alias a or b).
template <class T>
void mul(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> a, cuda_detail::CudaIn<T> b,
         TensorView<T, device::cuda> y) {
  cuda_detail::check_same(a, b, "a", "b");
  cuda_detail::check_same(a, y, "a", "y");
  using W = accum_t<T>;
  cuda::for_each(ctx.stream(), y.numel(), cuda_detail::BinaryOp<T, true>{a.data, b.data, y.data, W(1), W(1)}, "mul");
}

// da = dy * b, db = dy * a (written; a null view is skipped).
template <class T>
void mul_backward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> a, cuda_detail::CudaIn<T> b,
                  cuda_detail::CudaIn<T> dy, TensorView<T, device::cuda> da, TensorView<T, device::cuda> db) {
  cuda_detail::check_same(a, b, "a", "b");
  cuda_detail::check_same(a, dy, "a", "dy");
  if (da.data != nullptr) cuda_detail::check_same(a, da, "a", "da");
  if (db.data != nullptr) cuda_detail::check_same(a, db, "a", "db");
  cuda::for_each(ctx.stream(), a.numel(), cuda_detail::MulBackwardOp<T>{a.data, b.data, dy.data, da.data, db.data},
                 "mul_backward");
}

// y (..., H) += bias (H) on every row.
template <class T>
void add_bias(Context<device::cuda>& ctx, TensorView<T, device::cuda> y, cuda_detail::CudaIn<T> bias) {
  expect_contiguous(y, "y");
  expect_contiguous(bias, "bias");
  LONGSEQ_CHECK(y.rank() >= 1, "add_bias: tensor 'y' has shape ", y.shape, ", expected rank >= 1 (..., H)");
  index_t H = y.size(-1);
  expect_shape(bias, Shape{H}, "bias");
  cuda::for_each(ctx.stream(), y.numel(), cuda_detail::AddBiasOp<T>{y.data, bias.data, H}, "add_bias");
}

// y[b, j, i] = x[b, i, j]: x (B, L, H) -> y (B, H, L); x and y must not alias.
template <class T>
void transpose12(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y) {
  expect_rank(x, 3, "x");
  expect_contiguous(x, "x");
  expect_contiguous(y, "y");
  index_t B = x.shape[0], L = x.shape[1], H = x.shape[2];
  expect_shape(y, Shape{B, H, L}, "y");
  LONGSEQ_CHECK(x.data != y.data || x.numel() == 0, "transpose12: tensors 'x' and 'y' must not alias");
  if (x.numel() == 0) return;
  LONGSEQ_CHECK((H + 31) / 32 <= 0x7fffffff && (L + 31) / 32 <= 65535, "transpose12: L = ", L,
                " exceeds the grid limit of ", 65535 * 32);
  using S = typename cuda_detail::word<sizeof(T)>::type;
  dim3 grid(unsigned((H + 31) / 32), unsigned((L + 31) / 32), unsigned(B < 65535 ? B : 65535));
  cuda_detail::transpose12_kernel<S><<<grid, dim3(32, 8), 0, ctx.stream()>>>(
      reinterpret_cast<const S*>(x.data), reinterpret_cast<S*>(y.data), B, L, H);
  LONGSEQ_CUDA_LAUNCH_CHECK("transpose12");
}

}  // namespace longseq::ops
