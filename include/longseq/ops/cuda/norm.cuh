// Layer normalization and RMS normalization over the last axis on the GPU: one block per row for the
// statistics and dx (cub::BlockReduce), a two-stage column reduction (deterministic, no atomics) for dgamma
// and dbeta.
#pragma once
#include <algorithm>

#include "../../core/cuda/block_reduce.cuh"
#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../norm.hpp"
#include "math.cuh"

namespace longseq::ops {

namespace cuda_detail {

// Per row r of x (rows, H): layernorm y = (x - mean) rstd gamma + beta with the two-pass variance;
// rmsnorm (Rms) y = x rstd gamma with rstd = 1 / sqrt(mean(x^2) + eps). beta and mean are unused for Rms.
template <class T, bool Rms, int Threads>
__global__ void __launch_bounds__(Threads)
    norm_forward_kernel(const T* x, const T* gamma, const T* beta, T* y, accum_t<T>* mean, accum_t<T>* rstd,
                        index_t rows, index_t H, accum_t<T> eps) {
  using W = accum_t<T>;
  __shared__ cuda::BlockReduceStorage<W, Threads> shared;
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * H;
    T* yr = y + r * H;
    W m = 0;
    if constexpr (!Rms) {
      for (index_t h = threadIdx.x; h < H; h += Threads) m += W(xr[h]);
      m = cuda::block_sum(m, shared) / W(H);
    }
    W v = 0;
    for (index_t h = threadIdx.x; h < H; h += Threads) v += (W(xr[h]) - m) * (W(xr[h]) - m);
    v = cuda::block_sum(v, shared);
    W rs = W(1) / dsqrt(v / W(H) + eps);
    if (threadIdx.x == 0) {
      if constexpr (!Rms) mean[r] = m;
      rstd[r] = rs;
    }
    for (index_t h = threadIdx.x; h < H; h += Threads) {
      W out = (W(xr[h]) - m) * rs * W(gamma[h]);
      if constexpr (!Rms) out += W(beta[h]);
      yr[h] = T(out);
    }
  }
}

// dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = dy gamma; rmsnorm drops the mean(g) term and has
// xhat = x rstd. The row sums finish before any write, so dx may alias dy.
template <class T, bool Rms, int Threads>
__global__ void __launch_bounds__(Threads)
    norm_backward_dx_kernel(const T* x, const T* gamma, const accum_t<T>* mean, const accum_t<T>* rstd,
                            const T* dy, T* dx, index_t rows, index_t H) {
  using W = accum_t<T>;
  __shared__ cuda::BlockReduceStorage<W, Threads> shared;
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * H;
    const T* gr = dy + r * H;
    T* dr = dx + r * H;
    W m = Rms ? W(0) : mean[r], rs = rstd[r], sg = 0, sgx = 0;
    for (index_t h = threadIdx.x; h < H; h += Threads) {
      W g = W(gr[h]) * W(gamma[h]);
      sg += g;
      sgx += g * (W(xr[h]) - m) * rs;
    }
    if constexpr (!Rms) sg = cuda::block_sum(sg, shared) / W(H);
    sgx = cuda::block_sum(sgx, shared) / W(H);
    for (index_t h = threadIdx.x; h < H; h += Threads) {
      W g = W(gr[h]) * W(gamma[h]), xh = (W(xr[h]) - m) * rs;
      dr[h] = T(rs * (Rms ? g - xh * sgx : g - sg - xh * sgx));
    }
  }
}

inline constexpr index_t norm_rows_per_chunk = 128;

// Stage 1: partial[chunk, h] = sum of dy xhat and partial[chunk, H + h] = sum of dy over the chunk's rows.
template <class T, bool Rms>
__global__ void norm_param_partial_kernel(const T* x, const accum_t<T>* mean, const accum_t<T>* rstd,
                                          const T* dy, accum_t<T>* partial, index_t rows, index_t H) {
  using W = accum_t<T>;
  index_t h = index_t(blockIdx.x) * blockDim.x + threadIdx.x, chunk = blockIdx.y;
  if (h >= H) return;
  index_t begin = chunk * norm_rows_per_chunk, end = begin + norm_rows_per_chunk < rows ? begin + norm_rows_per_chunk : rows;
  W sg = 0, sb = 0;
  for (index_t r = begin; r < end; ++r) {
    W g = W(dy[r * H + h]), m = Rms ? W(0) : mean[r];
    sg += g * (W(x[r * H + h]) - m) * rstd[r];
    sb += g;
  }
  partial[chunk * 2 * H + h] = sg;
  partial[chunk * 2 * H + H + h] = sb;
}

// Stage 2: dgamma[h] += sum over chunks, dbeta[h] likewise (dbeta null for rmsnorm).
template <class T>
struct NormParamFinish {
  const accum_t<T>* partial;
  T* dgamma;
  T* dbeta;
  index_t chunks, H;
  __device__ void operator()(index_t h) const {
    using W = accum_t<T>;
    W sg = 0, sb = 0;
    for (index_t c = 0; c < chunks; ++c) {
      sg += partial[c * 2 * H + h];
      sb += partial[c * 2 * H + H + h];
    }
    dgamma[h] = T(W(dgamma[h]) + sg);
    if (dbeta) dbeta[h] = T(W(dbeta[h]) + sb);
  }
};

template <class T, class U>
index_t check_norm(const TensorView<const T, device::cuda>& x, const TensorView<const T, device::cuda>& gamma,
                   const TensorView<U, device::cuda>& y, std::string_view yname) {
  expect_contiguous(x, "x");
  expect_contiguous(y, yname);
  expect_contiguous(gamma, "gamma");
  LONGSEQ_CHECK(x.rank() >= 1, "norm: tensor 'x' has shape ", x.shape, ", expected rank >= 1 (..., H)");
  index_t H = x.size(-1);
  expect_shape(gamma, Shape{H}, "gamma");
  expect_same_shape_as(y, x, yname, "x");
  return H;
}

template <class S>
void check_stat(const TensorView<S, device::cuda>& s, index_t rows, std::string_view name) {
  expect_contiguous(s, name);
  LONGSEQ_CHECK(s.numel() == rows, "norm: tensor '", name, "' has shape ", s.shape, " (", s.numel(),
                " elements), expected one value per row of 'x' (", rows, ")");
}

template <class T, bool Rms>
void norm_backward_impl(Context<device::cuda>& ctx, const T* x, const T* gamma, const accum_t<T>* mean,
                        const accum_t<T>* rstd, const T* dy, T* dx, T* dgamma, T* dbeta, index_t rows, index_t H) {
  if (rows * H == 0) return;
  // Parameter gradients first: dx may alias dy. A null dgamma means the caller has no parameters (a
  // non-affine norm): only dx is computed.
  if (dgamma) {
    index_t chunks = (rows + norm_rows_per_chunk - 1) / norm_rows_per_chunk;
    LONGSEQ_CHECK(chunks <= 65535, "norm backward: ", rows, " rows exceed the column reduction's grid (at most ",
                  65535 * norm_rows_per_chunk, ")");
    auto partial = ctx.scratch<accum_t<T>>(std::size_t(chunks * 2 * H));
    dim3 grid(unsigned((H + 127) / 128), unsigned(chunks));
    norm_param_partial_kernel<T, Rms><<<grid, 128, 0, ctx.stream()>>>(x, mean, rstd, dy, partial.data(), rows, H);
    LONGSEQ_CUDA_LAUNCH_CHECK("norm_param_partial");
    cuda::for_each(ctx.stream(), H, NormParamFinish<T>{partial.data(), dgamma, dbeta, chunks, H},
                   "norm_param_finish");
  }
  auto l = cuda::row_launch(rows, H);
  cuda::with_row_threads(l.threads, [&](auto threads) {
    constexpr int N = decltype(threads)::value;
    norm_backward_dx_kernel<T, Rms, N><<<l.blocks, N, 0, ctx.stream()>>>(x, gamma, mean, rstd, dy, dx, rows, H);
  });
  LONGSEQ_CUDA_LAUNCH_CHECK(Rms ? "rmsnorm_backward" : "layernorm_backward");
}

}  // namespace cuda_detail

// Same contracts as the host norms: mean and rstd (one per row) in the accumulator type; in the backward
// dx is written (may alias dy), dgamma and dbeta accumulated (layernorm: both may be empty (0) views, then
// only dx is computed).
template <class T>
void layernorm_forward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, cuda_detail::CudaIn<T> gamma,
                       cuda_detail::CudaIn<T> beta, TensorView<T, device::cuda> y,
                       TensorView<accum_t<T>, device::cuda> mean, TensorView<accum_t<T>, device::cuda> rstd,
                       accum_t<T> eps) {
  static_assert(Real<T>, "layernorm: T must be float, double, half or bf16");
  index_t H = cuda_detail::check_norm(x, gamma, y, "y"), rows = cuda_detail::leading_rows(x.shape);
  expect_contiguous(beta, "beta");
  expect_shape(beta, Shape{H}, "beta");
  cuda_detail::check_stat(mean, rows, "mean");
  cuda_detail::check_stat(rstd, rows, "rstd");
  LONGSEQ_CHECK(eps >= accum_t<T>(0), "layernorm: eps ", eps, " must be non-negative");
  if (rows * H == 0) return;
  auto l = cuda::row_launch(rows, H);
  cuda::with_row_threads(l.threads, [&](auto threads) {
    constexpr int N = decltype(threads)::value;
    cuda_detail::norm_forward_kernel<T, false, N><<<l.blocks, N, 0, ctx.stream()>>>(
        x.data, gamma.data, beta.data, y.data, mean.data, rstd.data, rows, H, eps);
  });
  LONGSEQ_CUDA_LAUNCH_CHECK("layernorm_forward");
}

template <class T>
void layernorm_backward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, cuda_detail::CudaIn<T> gamma,
                        std::type_identity_t<TensorView<const accum_t<T>, device::cuda>> mean,
                        std::type_identity_t<TensorView<const accum_t<T>, device::cuda>> rstd,
                        cuda_detail::CudaIn<T> dy, TensorView<T, device::cuda> dx,
                        TensorView<T, device::cuda> dgamma, TensorView<T, device::cuda> dbeta) {
  static_assert(Real<T>, "layernorm: T must be float, double, half or bf16");
  index_t H = cuda_detail::check_norm(x, gamma, dx, "dx"), rows = cuda_detail::leading_rows(x.shape);
  expect_contiguous(dy, "dy");
  cuda_detail::expect_same_shape_as(dy, x, "dy", "x");
  cuda_detail::check_stat(mean, rows, "mean");
  cuda_detail::check_stat(rstd, rows, "rstd");
  // Both of shape (0): no parameter gradients wanted (a non-affine LayerNorm). Otherwise two distinct
  // (H) buffers: an aliased pair would have one accumulation overwrite the other.
  const bool wanted = !(dgamma.numel() == 0 && dbeta.numel() == 0 && H > 0);
  if (wanted) {
    expect_shape(dgamma, Shape{H}, "dgamma");
    expect_shape(dbeta, Shape{H}, "dbeta");
    expect_contiguous(dgamma, "dgamma");
    expect_contiguous(dbeta, "dbeta");
    LONGSEQ_CHECK(H == 0 || dgamma.data != dbeta.data, "layernorm_backward: tensors 'dgamma' and 'dbeta' are the "
                  "same buffer; pass two (H) buffers, or two empty (0) views when no parameter gradient is wanted");
  }
  cuda_detail::norm_backward_impl<T, false>(ctx, x.data, gamma.data, mean.data, rstd.data, dy.data, dx.data,
                                            wanted ? dgamma.data : nullptr, wanted ? dbeta.data : nullptr, rows, H);
}

template <class T>
void rmsnorm_forward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, cuda_detail::CudaIn<T> gamma,
                     TensorView<T, device::cuda> y, TensorView<accum_t<T>, device::cuda> rstd, accum_t<T> eps) {
  static_assert(Real<T>, "rmsnorm: T must be float, double, half or bf16");
  index_t H = cuda_detail::check_norm(x, gamma, y, "y"), rows = cuda_detail::leading_rows(x.shape);
  cuda_detail::check_stat(rstd, rows, "rstd");
  LONGSEQ_CHECK(eps >= accum_t<T>(0), "rmsnorm: eps ", eps, " must be non-negative");
  if (rows * H == 0) return;
  auto l = cuda::row_launch(rows, H);
  cuda::with_row_threads(l.threads, [&](auto threads) {
    constexpr int N = decltype(threads)::value;
    cuda_detail::norm_forward_kernel<T, true, N><<<l.blocks, N, 0, ctx.stream()>>>(
        x.data, gamma.data, nullptr, y.data, nullptr, rstd.data, rows, H, eps);
  });
  LONGSEQ_CUDA_LAUNCH_CHECK("rmsnorm_forward");
}

template <class T>
void rmsnorm_backward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, cuda_detail::CudaIn<T> gamma,
                      std::type_identity_t<TensorView<const accum_t<T>, device::cuda>> rstd,
                      cuda_detail::CudaIn<T> dy, TensorView<T, device::cuda> dx,
                      TensorView<T, device::cuda> dgamma) {
  static_assert(Real<T>, "rmsnorm: T must be float, double, half or bf16");
  index_t H = cuda_detail::check_norm(x, gamma, dx, "dx"), rows = cuda_detail::leading_rows(x.shape);
  expect_contiguous(dy, "dy");
  cuda_detail::expect_same_shape_as(dy, x, "dy", "x");
  cuda_detail::check_stat(rstd, rows, "rstd");
  expect_shape(dgamma, Shape{H}, "dgamma");
  expect_contiguous(dgamma, "dgamma");
  cuda_detail::norm_backward_impl<T, true>(ctx, x.data, gamma.data, nullptr, rstd.data, dy.data, dx.data,
                                           dgamma.data, nullptr, rows, H);
}

}  // namespace longseq::ops
