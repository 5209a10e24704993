// Reductions on the GPU: sum over leading rows (bias gradients, a deterministic two-stage column sum) and
// mean / max with argmax over one axis, with backwards; same contracts as ops/reduce.hpp.
#pragma once
#include <cstdint>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../reduce.hpp"
#include "math.cuh"

namespace longseq::ops {

namespace cuda_detail {

inline constexpr index_t sum_rows_per_chunk = 128;

// Stage 1: partial[chunk, h] = sum of x[r, h] over the chunk's rows (one thread per column h).
template <class T>
__global__ void column_partial_kernel(const T* x, accum_t<T>* partial, index_t rows, index_t H) {
  using W = accum_t<T>;
  index_t h = index_t(blockIdx.x) * blockDim.x + threadIdx.x, chunk = blockIdx.y;
  if (h >= H) return;
  index_t begin = chunk * sum_rows_per_chunk;
  index_t end = begin + sum_rows_per_chunk < rows ? begin + sum_rows_per_chunk : rows;
  W s = 0;
  for (index_t r = begin; r < end; ++r) s += W(x[r * H + h]);
  partial[chunk * H + h] = s;
}

// Stage 2: y[h] = (accumulate ? y[h] : 0) + sum over chunks, in a fixed order.
template <class T>
struct ColumnFinish {
  const accum_t<T>* partial;
  T* y;
  index_t chunks, H;
  bool accumulate;
  __device__ void operator()(index_t h) const {
    using W = accum_t<T>;
    W s = accumulate ? W(y[h]) : W(0), t = 0;
    for (index_t c = 0; c < chunks; ++c) t += partial[c * H + h];
    y[h] = T(s + t);
  }
};

// One thread per output (o, i), walking the n elements of its axis.
template <class T>
struct MeanOp {
  const T* x;
  T* y;
  detail::AxisSplit s;
  __device__ void operator()(index_t k) const {
    using W = accum_t<T>;
    index_t o = k / s.inner, i = k % s.inner;
    W acc = 0;
    for (index_t j = 0; j < s.n; ++j) acc += W(x[(o * s.n + j) * s.inner + i]);
    y[k] = T(acc / W(s.n));
  }
};

template <class T>
struct MeanBackwardOp {
  const T* dy;
  T* dx;
  detail::AxisSplit s;
  __device__ void operator()(index_t e) const {
    using W = accum_t<T>;
    index_t i = e % s.inner, o = e / (s.inner * s.n);
    dx[e] = T(W(dy[o * s.inner + i]) / W(s.n));
  }
};

// The first maximum wins; a NaN counts as the maximum and ends the scan (the host rule).
template <class T>
struct MaxOp {
  const T* x;
  T* y;
  std::int64_t* argmax;
  detail::AxisSplit s;
  __device__ void operator()(index_t k) const {
    using W = accum_t<T>;
    index_t o = k / s.inner, i = k % s.inner, best = 0;
    W bv = W(x[o * s.n * s.inner + i]);
    for (index_t j = 1; j < s.n && bv == bv; ++j) {
      W v = W(x[(o * s.n + j) * s.inner + i]);
      if (v > bv || v != v) {
        bv = v;
        best = j;
      }
    }
    y[k] = T(bv);
    argmax[k] = best;
  }
};

// An argmax outside [0, n) matches no position: that column of dx is all zeros (the device cannot
// validate the indices without a copy to the host, which the host op does).
template <class T>
struct MaxBackwardOp {
  const std::int64_t* argmax;
  const T* dy;
  T* dx;
  detail::AxisSplit s;
  __device__ void operator()(index_t e) const {
    index_t i = e % s.inner, j = (e / s.inner) % s.n, o = e / (s.inner * s.n);
    index_t k = o * s.inner + i;
    dx[e] = argmax[k] == j ? dy[k] : T(accum_t<T>(0));
  }
};

}  // namespace cuda_detail

// y (H) = sum over all rows of x (..., H); overwritten, or added to with accumulate = true.
template <class T>
void sum_rows(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y,
              bool accumulate = false) {
  expect_contiguous(x, "x");
  expect_contiguous(y, "y");
  LONGSEQ_CHECK(x.rank() >= 1, "sum_rows: tensor 'x' has shape ", x.shape, ", expected rank >= 1 (..., H)");
  index_t H = x.size(-1), rows = cuda_detail::leading_rows(x.shape);
  expect_shape(y, Shape{H}, "y");
  if (H == 0) return;
  index_t chunks = (rows + cuda_detail::sum_rows_per_chunk - 1) / cuda_detail::sum_rows_per_chunk;
  LONGSEQ_CHECK(chunks <= 65535, "sum_rows: ", rows, " rows exceed the column reduction's grid (at most ",
                65535 * cuda_detail::sum_rows_per_chunk, ")");
  auto partial = ctx.scratch<accum_t<T>>(std::size_t(chunks * H));
  if (chunks > 0) {
    dim3 grid(unsigned((H + 127) / 128), unsigned(chunks));
    cuda_detail::column_partial_kernel<T><<<grid, 128, 0, ctx.stream()>>>(x.data, partial.data(), rows, H);
    LONGSEQ_CUDA_LAUNCH_CHECK("sum_rows_partial");
  }
  cuda::for_each(ctx.stream(), H, cuda_detail::ColumnFinish<T>{partial.data(), y.data, chunks, H, accumulate},
                 "sum_rows_finish");
}

// y = mean of x over `axis` (negative counts from the back).
template <class T>
void mean_forward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y, int axis) {
  auto s = detail::split_axis(x, y, axis, "x", "y");
  LONGSEQ_CHECK(s.n > 0, "mean: tensor 'x' has shape ", x.shape, "; axis ", axis, " is empty");
  cuda::for_each(ctx.stream(), s.outer * s.inner, cuda_detail::MeanOp<T>{x.data, y.data, s}, "mean_forward");
}

// dx = dy / n broadcast along `axis` (written).
template <class T>
void mean_backward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> dy, TensorView<T, device::cuda> dx, int axis) {
  auto s = detail::split_axis(dx, dy, axis, "dx", "dy");
  cuda::for_each(ctx.stream(), dx.numel(), cuda_detail::MeanBackwardOp<T>{dy.data, dx.data, s}, "mean_backward");
}

// y = max of x over `axis`, argmax (y's shape) = index of the first maximum along the axis.
template <class T>
void max_forward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y,
                 TensorView<std::int64_t, device::cuda> argmax, int axis) {
  auto s = detail::split_axis(x, y, axis, "x", "y");
  expect_contiguous(argmax, "argmax");
  cuda_detail::expect_same_shape_as(argmax, y, "argmax", "y");
  LONGSEQ_CHECK(s.n > 0, "max: tensor 'x' has shape ", x.shape, "; axis ", axis, " is empty");
  cuda::for_each(ctx.stream(), s.outer * s.inner, cuda_detail::MaxOp<T>{x.data, y.data, argmax.data, s},
                 "max_forward");
}

// dx = dy at the saved argmax along `axis`, 0 elsewhere (written).
template <class T>
void max_backward(Context<device::cuda>& ctx, TensorView<const std::int64_t, device::cuda> argmax,
                  cuda_detail::CudaIn<T> dy, TensorView<T, device::cuda> dx, int axis) {
  auto s = detail::split_axis(dx, dy, axis, "dx", "dy");
  expect_contiguous(argmax, "argmax");
  cuda_detail::expect_same_shape_as(argmax, dy, "argmax", "dy");
  cuda::for_each(ctx.stream(), dx.numel(), cuda_detail::MaxBackwardOp<T>{argmax.data, dy.data, dx.data, s},
                 "max_backward");
}

}  // namespace longseq::ops
