// FFT convolution along the last axis on the GPU: cuFFT R2C/C2R with a pointwise complex product kernel.
#pragma once
#include <type_traits>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../fft_conv.hpp"
#include "fft.cuh"

namespace longseq::ops {

namespace cuda_detail {

// dst (rows, n) = src (rows, len) widened to the transform type W, followed by n - len zeros per row.
template <class T, class W>
struct PadRows {
  const T* src;
  W* dst;
  index_t len, n;
  __device__ void operator()(index_t i) const {
    index_t r = i / n, t = i % n;
    dst[i] = t < len ? W(src[r * len + t]) : W(0);
  }
};

// out[r, f] = x[r, f] * k[r % channels, f], or times conj(k) (a correlation instead of a convolution).
template <class C>
struct MulSpectra {
  const C* x;
  const C* k;
  C* out;
  index_t channels, bins;
  bool conj_k;
  __device__ void operator()(index_t i) const {
    index_t r = i / bins, f = i % bins;
    C a = x[i], b = k[(r % channels) * bins + f];
    if (conj_k) b.y = -b.y;
    C p;
    p.x = a.x * b.x - a.y * b.y;
    p.y = a.x * b.y + a.y * b.x;
    out[i] = p;
  }
};

// g[c, f] = sum over the batch of conj(u[b, c, f]) * dy[b, c, f]: the spectrum of the kernel gradient.
template <class C>
struct CorrelateOverBatch {
  const C* u;
  const C* dy;
  C* g;
  index_t batch, channels, bins;
  __device__ void operator()(index_t i) const {
    C s;
    s.x = 0;
    s.y = 0;
    for (index_t b = 0; b < batch; ++b) {
      C a = u[b * channels * bins + i], d = dy[b * channels * bins + i];
      s.x += a.x * d.x + a.y * d.y;
      s.y += a.x * d.y - a.y * d.x;
    }
    g[i] = s;
  }
};

// dst (rows, len) (+)= scale * src (rows, n)[:, :len]; cuFFT's inverse is unnormalized, scale = 1/n.
template <class W, class T>
struct CropRows {
  const W* src;
  T* dst;
  index_t len, n;
  W scale;
  bool accumulate;
  __device__ void operator()(index_t i) const {
    index_t r = i / len, t = i % len;
    W v = scale * src[r * n + t];
    dst[i] = accumulate ? T(W(dst[i]) + v) : T(v);
  }
};

struct ConvShape {
  index_t batch, channels, length, klen, n, bins;
};

// The host op's checks (same messages), then the transform length: zero padding to 2L turns the FFT's
// circular convolution into the causal one.
template <class T>
ConvShape conv_shape(const TensorView<const T, device::cuda>& u, const TensorView<const T, device::cuda>& k,
                     const Shape& out, std::string_view out_name, ConvMode mode) {
  expect_rank(u, 3, "u");
  expect_rank(k, 2, "k");
  expect_contiguous(u, "u");
  expect_contiguous(k, "k");
  LONGSEQ_CHECK(k.shape[0] == u.shape[1], "fft_conv: tensor 'k' has shape ", k.shape, ", expected (",
                u.shape[1], ", Lk): one kernel per channel of tensor 'u' (N, C, L) = ", u.shape);
  LONGSEQ_CHECK(k.shape[1] >= 1 && k.shape[1] <= u.shape[2], "fft_conv: tensor 'k' has length Lk = ",
                k.shape[1], " (shape ", k.shape, "), expected 1 <= Lk <= L = ", u.shape[2]);
  LONGSEQ_CHECK(out == u.shape, "fft_conv: tensor '", out_name, "' has shape ", out, ", expected ", u.shape,
                " (the shape of 'u')");
  ConvShape s{u.shape[0], u.shape[1], u.shape[2], k.shape[1], 0, 0};
  s.n = mode == ConvMode::causal ? 2 * s.length : s.length;
  s.bins = s.n / 2 + 1;
  return s;
}

}  // namespace cuda_detail

// y = k * u along the last axis: u (N, C, L), k (C, Lk) with 1 <= Lk <= L, y (N, C, L). Transforms run
// in float for half/bf16 and float, in double for double, all (N, C) rows in one batched cuFFT call.
template <class T>
void fft_conv_forward(Context<device::cuda>& ctx, std::type_identity_t<TensorView<const T, device::cuda>> u,
                      std::type_identity_t<TensorView<const T, device::cuda>> k, TensorView<T, device::cuda> y,
                      ConvMode mode = ConvMode::causal) {
  static_assert(Real<T>, "fft_conv: T must be float, double, half or bf16");
  using W = accum_t<T>;
  using F = cuda_detail::cufft_real<W>;
  using C = typename F::complex;
  auto s = cuda_detail::conv_shape(u, k, y.shape, "y", mode);
  expect_contiguous(y, "y");
  index_t rows = s.batch * s.channels;
  if (rows * s.length == 0) return;
  cudaStream_t st = ctx.stream();
  auto ubuf = ctx.scratch<W>(std::size_t(rows * s.n));
  auto kbuf = ctx.scratch<W>(std::size_t(s.channels * s.n));
  auto U = ctx.scratch<C>(std::size_t(rows * s.bins));
  auto K = ctx.scratch<C>(std::size_t(s.channels * s.bins));
  cuda::for_each(st, rows * s.n, cuda_detail::PadRows<T, W>{u.data, ubuf.data(), s.length, s.n}, "fft_conv_pad_u");
  cuda::for_each(st, s.channels * s.n, cuda_detail::PadRows<T, W>{k.data, kbuf.data(), s.klen, s.n},
                 "fft_conv_pad_k");
  LONGSEQ_CUFFT_CHECK(F::forward(ctx.fft_plan(F::r2c, s.n, rows), ubuf.data(), U.data()));
  LONGSEQ_CUFFT_CHECK(F::forward(ctx.fft_plan(F::r2c, s.n, s.channels), kbuf.data(), K.data()));
  cuda::for_each(st, rows * s.bins,
                 cuda_detail::MulSpectra<C>{U.data(), K.data(), U.data(), s.channels, s.bins, false},
                 "fft_conv_mul");
  LONGSEQ_CUFFT_CHECK(F::inverse(ctx.fft_plan(F::c2r, s.n, rows), U.data(), ubuf.data()));
  cuda::for_each(st, rows * s.length,
                 cuda_detail::CropRows<W, T>{ubuf.data(), y.data, s.length, s.n, W(1) / W(s.n), false},
                 "fft_conv_crop_y");
}

// Backward of fft_conv_forward: du[m] = irfft(DY conj(K)), dk[j] = irfft(sum_n DY conj(U)) (indices mod n).
// du is written (null data skips it), dk accumulated.
template <class T>
void fft_conv_backward(Context<device::cuda>& ctx, std::type_identity_t<TensorView<const T, device::cuda>> u,
                       std::type_identity_t<TensorView<const T, device::cuda>> k,
                       std::type_identity_t<TensorView<const T, device::cuda>> dy, TensorView<T, device::cuda> du,
                       TensorView<T, device::cuda> dk, ConvMode mode = ConvMode::causal) {
  static_assert(Real<T>, "fft_conv: T must be float, double, half or bf16");
  using W = accum_t<T>;
  using F = cuda_detail::cufft_real<W>;
  using C = typename F::complex;
  auto s = cuda_detail::conv_shape(u, k, dy.shape, "dy", mode);
  expect_contiguous(dy, "dy");
  bool want_du = du.data != nullptr;
  if (want_du) {
    cuda_detail::conv_shape(u, k, du.shape, "du", mode);
    expect_contiguous(du, "du");
  }
  expect_shape(dk, k.shape, "dk");
  expect_contiguous(dk, "dk");
  index_t rows = s.batch * s.channels;
  if (rows * s.length == 0) return;
  cudaStream_t st = ctx.stream();
  auto ubuf = ctx.scratch<W>(std::size_t(rows * s.n));
  auto kbuf = ctx.scratch<W>(std::size_t(s.channels * s.n));
  auto U = ctx.scratch<C>(std::size_t(rows * s.bins));
  auto DY = ctx.scratch<C>(std::size_t(rows * s.bins));
  auto K = ctx.scratch<C>(std::size_t(s.channels * s.bins));
  auto G = ctx.scratch<C>(std::size_t(s.channels * s.bins));
  cufftHandle rows_r2c = ctx.fft_plan(F::r2c, s.n, rows);
  cuda::for_each(st, rows * s.n, cuda_detail::PadRows<T, W>{u.data, ubuf.data(), s.length, s.n}, "fft_conv_pad_u");
  LONGSEQ_CUFFT_CHECK(F::forward(rows_r2c, ubuf.data(), U.data()));
  cuda::for_each(st, rows * s.n, cuda_detail::PadRows<T, W>{dy.data, ubuf.data(), s.length, s.n},
                 "fft_conv_pad_dy");
  LONGSEQ_CUFFT_CHECK(F::forward(rows_r2c, ubuf.data(), DY.data()));
  // dk[c, j] = sum_{b,l} dy[b,c,l] u[b,c,l-j]: conj(U) * DY summed over the batch, then one inverse per channel.
  cuda::for_each(st, s.channels * s.bins,
                 cuda_detail::CorrelateOverBatch<C>{U.data(), DY.data(), G.data(), s.batch, s.channels, s.bins},
                 "fft_conv_dk_spectrum");
  LONGSEQ_CUFFT_CHECK(F::inverse(ctx.fft_plan(F::c2r, s.n, s.channels), G.data(), kbuf.data()));
  W scale = W(1) / W(s.n);
  cuda::for_each(st, s.channels * s.klen,
                 cuda_detail::CropRows<W, T>{kbuf.data(), dk.data, s.klen, s.n, scale, true}, "fft_conv_crop_dk");
  if (!want_du) return;
  // du[b, c, m] = sum_l dy[b,c,l] k[c,l-m]: conj(K) * DY, written into U (no longer needed).
  cuda::for_each(st, s.channels * s.n, cuda_detail::PadRows<T, W>{k.data, kbuf.data(), s.klen, s.n},
                 "fft_conv_pad_k");
  LONGSEQ_CUFFT_CHECK(F::forward(ctx.fft_plan(F::r2c, s.n, s.channels), kbuf.data(), K.data()));
  cuda::for_each(st, rows * s.bins,
                 cuda_detail::MulSpectra<C>{DY.data(), K.data(), U.data(), s.channels, s.bins, true},
                 "fft_conv_du_spectrum");
  LONGSEQ_CUFFT_CHECK(F::inverse(ctx.fft_plan(F::c2r, s.n, rows), U.data(), ubuf.data()));
  cuda::for_each(st, rows * s.length,
                 cuda_detail::CropRows<W, T>{ubuf.data(), du.data, s.length, s.n, scale, false}, "fft_conv_crop_du");
}

}  // namespace longseq::ops
