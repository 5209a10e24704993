// Softmax and log-softmax over the last axis on the GPU: one block per row, block reductions
// (cub::BlockReduce) in the accumulator type (float for half/bf16).
#pragma once
#include <algorithm>
#include <cmath>

#include "../../core/cuda/block_reduce.cuh"
#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../softmax.hpp"
#include "math.cuh"

namespace longseq::ops {

namespace cuda_detail {

// Rows are strided over the grid so that any row count fits the grid limits.
template <class T, bool Log, int Threads>
__global__ void __launch_bounds__(Threads)
    softmax_forward_kernel(const T* x, T* y, index_t rows, index_t C) {
  using W = accum_t<T>;
  __shared__ cuda::BlockReduceStorage<W, Threads> shared;
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    W mx = W(-INFINITY);
    for (index_t c = threadIdx.x; c < C; c += Threads) {
      W v = W(xr[c]);
      mx = v > mx ? v : mx;
    }
    mx = cuda::block_max(mx, shared);
    W s = 0;
    for (index_t c = threadIdx.x; c < C; c += Threads) s += dexp(W(xr[c]) - mx);
    s = cuda::block_sum(s, shared);
    if constexpr (Log) {
      // (x - max) - log(sum) keeps the digits that x - logsumexp would lose for large |x|.
      W ls = dlog(s);
      for (index_t c = threadIdx.x; c < C; c += Threads) yr[c] = T((W(xr[c]) - mx) - ls);
    } else {
      W inv = W(1) / s;
      for (index_t c = threadIdx.x; c < C; c += Threads) yr[c] = T(dexp(W(xr[c]) - mx) * inv);
    }
  }
}

// softmax: dx = y (dy - sum(dy y)); log_softmax: dx = dy - exp(y) sum(dy). The row sum is complete before
// any thread writes, so dx may alias dy.
template <class T, bool Log, int Threads>
__global__ void __launch_bounds__(Threads)
    softmax_backward_kernel(const T* y, const T* dy, T* dx, index_t rows, index_t C) {
  using W = accum_t<T>;
  __shared__ cuda::BlockReduceStorage<W, Threads> shared;
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* yr = y + r * C;
    const T* gr = dy + r * C;
    T* dr = dx + r * C;
    W s = 0;
    for (index_t c = threadIdx.x; c < C; c += Threads) s += Log ? W(gr[c]) : W(gr[c]) * W(yr[c]);
    s = cuda::block_sum(s, shared);
    for (index_t c = threadIdx.x; c < C; c += Threads) {
      if constexpr (Log)
        dr[c] = T(W(gr[c]) - dexp(W(yr[c])) * s);
      else
        dr[c] = T(W(yr[c]) * (W(gr[c]) - s));
    }
  }
}

template <class T, class U>
index_t check_rows(const TensorView<const T, device::cuda>& x, const TensorView<U, device::cuda>& y,
                   std::string_view xname, std::string_view yname) {
  expect_contiguous(x, xname);
  expect_contiguous(y, yname);
  LONGSEQ_CHECK(x.rank() >= 1, "tensor '", xname, "' has shape ", x.shape, ", expected rank >= 1 (..., C)");
  expect_same_shape_as(y, x, yname, xname);
  return x.size(-1);
}

template <class T, bool Log>
void softmax_forward_impl(Context<device::cuda>& ctx, const TensorView<const T, device::cuda>& x,
                          const TensorView<T, device::cuda>& y) {
  index_t C = check_rows(x, y, "x", "y"), rows = leading_rows(x.shape);
  if (rows * C == 0) return;
  auto l = cuda::row_launch(rows, C);
  cuda::with_row_threads(l.threads, [&](auto threads) {
    constexpr int N = decltype(threads)::value;
    softmax_forward_kernel<T, Log, N><<<l.blocks, N, 0, ctx.stream()>>>(x.data, y.data, rows, C);
  });
  LONGSEQ_CUDA_LAUNCH_CHECK(Log ? "log_softmax_forward" : "softmax_forward");
}

template <class T, bool Log>
void softmax_backward_impl(Context<device::cuda>& ctx, const TensorView<const T, device::cuda>& y,
                           const TensorView<const T, device::cuda>& dy, const TensorView<T, device::cuda>& dx) {
  index_t C = check_rows(y, dx, "y", "dx"), rows = leading_rows(y.shape);
  expect_contiguous(dy, "dy");
  expect_same_shape_as(dy, y, "dy", "y");
  if (rows * C == 0) return;
  auto l = cuda::row_launch(rows, C);
  cuda::with_row_threads(l.threads, [&](auto threads) {
    constexpr int N = decltype(threads)::value;
    softmax_backward_kernel<T, Log, N><<<l.blocks, N, 0, ctx.stream()>>>(y.data, dy.data, dx.data, rows, C);
  });
  LONGSEQ_CUDA_LAUNCH_CHECK(Log ? "log_softmax_backward" : "softmax_backward");
}

}  // namespace cuda_detail

// y = softmax(x) over the last axis; x, y (..., C). Rows of all -inf give NaN, as on the host.
template <class T>
void softmax_forward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y) {
  static_assert(Real<T>, "softmax: T must be float, double, half or bf16");
  cuda_detail::softmax_forward_impl<T, false>(ctx, x, y);
}
template <class T>
void softmax_backward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> y, cuda_detail::CudaIn<T> dy,
                      TensorView<T, device::cuda> dx) {
  static_assert(Real<T>, "softmax: T must be float, double, half or bf16");
  cuda_detail::softmax_backward_impl<T, false>(ctx, y, dy, dx);
}
template <class T>
void log_softmax_forward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y) {
  static_assert(Real<T>, "log_softmax: T must be float, double, half or bf16");
  cuda_detail::softmax_forward_impl<T, true>(ctx, x, y);
}
template <class T>
void log_softmax_backward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> y, cuda_detail::CudaIn<T> dy,
                          TensorView<T, device::cuda> dx) {
  static_assert(Real<T>, "log_softmax: T must be float, double, half or bf16");
  cuda_detail::softmax_backward_impl<T, true>(ctx, y, dy, dx);
}

}  // namespace longseq::ops
