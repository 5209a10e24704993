// Long convolution of (N, C, L) signals with per-channel kernels (C, Lk) via FFT, causal or circular.
#pragma once
#include <algorithm>
#include <complex>
#include <type_traits>
#include <vector>

#include "fft.hpp"

namespace longseq::ops {

// causal: y[l] = sum_{j<=l} k[j] u[l-j] (zero padding to 2L removes the wrap-around);
// circular: y[l] = sum_j k[j] u[(l-j) mod L].
enum class ConvMode { causal, circular };

namespace detail {

template <class T>
void check_fft_conv(const TensorView<const T>& u, const TensorView<const T>& k, const Shape& out,
                    std::string_view out_name) {
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
}

// Products of spectra written out over real and imaginary parts (std::complex's operator* checks for
// NaN through a library call, which keeps these loops from vectorizing; the finite results are the same).
// a[f] *= b[f], or a[f] *= conj(b[f]) with conj_b.
template <class W>
void mul_spectrum(std::complex<W>* a, const std::complex<W>* b, index_t bins, bool conj_b) {
  W* x = reinterpret_cast<W*>(a);
  const W* y = reinterpret_cast<const W*>(b);
  const W s = conj_b ? W(-1) : W(1);
  for (index_t f = 0; f < bins; ++f) {
    const W ar = x[2 * f], ai = x[2 * f + 1], br = y[2 * f], bi = s * y[2 * f + 1];
    x[2 * f] = ar * br - ai * bi;
    x[2 * f + 1] = ar * bi + ai * br;
  }
}
// acc[f] += a[f] * conj(b[f]).
template <class W>
void add_mul_conj(std::complex<W>* acc, const std::complex<W>* a, const std::complex<W>* b, index_t bins) {
  W* z = reinterpret_cast<W*>(acc);
  const W *x = reinterpret_cast<const W*>(a), *y = reinterpret_cast<const W*>(b);
  for (index_t f = 0; f < bins; ++f) {
    const W ar = x[2 * f], ai = x[2 * f + 1], br = y[2 * f], bi = -y[2 * f + 1];
    z[2 * f] += ar * br - ai * bi;
    z[2 * f + 1] += ar * bi + ai * br;
  }
}

// Row stride of the kernel spectra: n/2+1 bins rounded up so that every row starts aligned for the
// aligned FFT plans (8 complex values are at least 64 bytes).
inline index_t spectrum_stride(index_t bins) { return (bins + 7) / 8 * 8; }

// Spectra of the zero-padded kernels, one row of n/2+1 bins (at stride spectrum_stride) per channel.
template <class W, class T>
fft_vector<std::complex<W>> kernel_spectra(Context<device::host>& ctx, const RealFft<W>& fft,
                                           const TensorView<const T>& k) {
  index_t C = k.shape[0], Lk = k.shape[1], n = fft.n, stride = spectrum_stride(rfft_bins(n));
  fft_vector<std::complex<W>> K(std::size_t(C * stride));
  int nt = threads_for(ctx, C * n);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    fft_vector<W> pad(std::size_t(n), W(0));
#pragma omp for schedule(static)
    for (index_t c = 0; c < C; ++c) {
      for (index_t j = 0; j < Lk; ++j) pad[std::size_t(j)] = W(k.data[c * Lk + j]);
      std::fill(pad.begin() + Lk, pad.end(), W(0));
      fft.forward(pad.data(), K.data() + c * stride);
    }
  }
  return K;
}

}  // namespace detail

// y = k * u along the last axis: u (N, C, L), k (C, Lk) with 1 <= Lk <= L, y (N, C, L).
// Transforms run in float for half/bf16 and float, in double for double; one (N, C) row per thread.
template <class T>
void fft_conv_forward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> u,
                      std::type_identity_t<TensorView<const T>> k, TensorView<T> y,
                      ConvMode mode = ConvMode::causal) {
  static_assert(Real<T>, "fft_conv: T must be float, double, half or bf16");
  using W = accum_t<T>;
  detail::check_fft_conv(u, k, y.shape, "y");
  expect_contiguous(y, "y");
  index_t N = u.shape[0], C = u.shape[1], L = u.shape[2];
  if (N * C * L == 0) return;
  index_t n = mode == ConvMode::causal ? 2 * L : L, bins = rfft_bins(n);
  detail::RealFft<W> fft(ctx, n, /*aligned=*/true);  // every array below is fft_vector storage
  auto K = detail::kernel_spectra<W>(ctx, fft, k);
  index_t stride = detail::spectrum_stride(bins);
  W inv_n = W(1) / W(n);
  int nt = detail::threads_for(ctx, N * C * n);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    detail::fft_vector<W> pad(std::size_t(n), W(0));
    detail::fft_vector<std::complex<W>> U(static_cast<std::size_t>(bins));
#pragma omp for schedule(static)
    for (index_t row = 0; row < N * C; ++row) {
      const std::complex<W>* Kc = K.data() + (row % C) * stride;
      const T* ur = u.data + row * L;
      for (index_t l = 0; l < L; ++l) pad[std::size_t(l)] = W(ur[l]);
      std::fill(pad.begin() + L, pad.end(), W(0));
      fft.forward(pad.data(), U.data());
      detail::mul_spectrum(U.data(), Kc, bins, /*conj_b=*/false);
      fft.inverse(U.data(), pad.data());
      T* yr = y.data + row * L;
      for (index_t l = 0; l < L; ++l) yr[l] = T(pad[std::size_t(l)] * inv_n);
    }
  }
}

// Backward of fft_conv_forward. Both gradients are correlations computed in the frequency domain:
// du[m] = sum_l dy[l] k[l-m] = irfft(DY conj(K)), dk[j] = sum_{n,l} dy[n,l] u[n,l-j] = irfft(sum_n DY conj(U))
// (indices mod n; the zero padding keeps the causal sums from wrapping). du is written, dk accumulated.
// A du with null data skips the input gradient. Work is split over channels so that each thread owns
// the dk rows it adds to (no reduction across threads, and the result does not depend on thread count).
template <class T>
void fft_conv_backward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> u,
                       std::type_identity_t<TensorView<const T>> k, std::type_identity_t<TensorView<const T>> dy,
                       TensorView<T> du, TensorView<T> dk, ConvMode mode = ConvMode::causal) {
  static_assert(Real<T>, "fft_conv: T must be float, double, half or bf16");
  using W = accum_t<T>;
  detail::check_fft_conv(u, k, dy.shape, "dy");
  expect_contiguous(dy, "dy");
  bool want_du = du.data != nullptr;
  if (want_du) {
    detail::check_fft_conv(u, k, du.shape, "du");
    expect_contiguous(du, "du");
  }
  expect_shape(dk, k.shape, "dk");
  expect_contiguous(dk, "dk");
  index_t N = u.shape[0], C = u.shape[1], L = u.shape[2], Lk = k.shape[1];
  if (N * C * L == 0) return;
  index_t n = mode == ConvMode::causal ? 2 * L : L, bins = rfft_bins(n);
  detail::RealFft<W> fft(ctx, n, /*aligned=*/true);  // every array below is fft_vector storage
  auto K = detail::kernel_spectra<W>(ctx, fft, k);
  index_t stride = detail::spectrum_stride(bins);
  W inv_n = W(1) / W(n);
  int nt = detail::threads_for(ctx, N * C * n);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    detail::fft_vector<W> pad(std::size_t(n), W(0));
    auto nb = static_cast<std::size_t>(bins);
    detail::fft_vector<std::complex<W>> DY(nb), U(nb), acc(nb);
#pragma omp for schedule(dynamic, 1)
    for (index_t c = 0; c < C; ++c) {
      const std::complex<W>* Kc = K.data() + c * stride;
      std::fill(acc.begin(), acc.end(), std::complex<W>(0));
      for (index_t b = 0; b < N; ++b) {
        index_t row = b * C + c;
        const T* dyr = dy.data + row * L;
        for (index_t l = 0; l < L; ++l) pad[std::size_t(l)] = W(dyr[l]);
        std::fill(pad.begin() + L, pad.end(), W(0));
        fft.forward(pad.data(), DY.data());
        const T* ur = u.data + row * L;
        for (index_t l = 0; l < L; ++l) pad[std::size_t(l)] = W(ur[l]);
        std::fill(pad.begin() + L, pad.end(), W(0));
        fft.forward(pad.data(), U.data());
        detail::add_mul_conj(acc.data(), DY.data(), U.data(), bins);
        if (want_du) {
          detail::mul_spectrum(DY.data(), Kc, bins, /*conj_b=*/true);
          fft.inverse(DY.data(), pad.data());
          T* dur = du.data + row * L;
          for (index_t l = 0; l < L; ++l) dur[l] = T(pad[std::size_t(l)] * inv_n);
        }
      }
      fft.inverse(acc.data(), pad.data());
      T* dkr = dk.data + c * Lk;
      for (index_t j = 0; j < Lk; ++j) dkr[j] = T(W(dkr[j]) + pad[std::size_t(j)] * inv_n);
    }
  }
}

}  // namespace longseq::ops

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads, visible wherever the host op is
#include "cuda/fft_conv.cuh"
#endif
