// Long convolution of (N, C, L) signals with per-channel kernels (C, Lk) via FFT, causal or circular.
#pragma once
#include <algorithm>
#include <complex>
#include <cstddef>
#include <type_traits>

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

// Scratch of one convolution call, from the context's arena (256-byte slices, so FFTW's aligned plans
// apply): the kernel spectra, then per thread one real row of n and `spectra` rows of n/2+1 bins.
template <class W>
struct ConvScratch {
  std::complex<W>* K;  // C rows at spectrum_stride
  std::byte* threads;  // thread t's rows start at threads + t * per_thread
  std::size_t per_thread;
  index_t n, bins;
  // Thread t's real row (i = 0) ...
  W* real(int t) const { return reinterpret_cast<W*>(threads + std::size_t(t) * per_thread); }
  // ... and its spectrum rows i = 0, 1, ...
  std::complex<W>* spectrum(int t, int i) const {
    return reinterpret_cast<std::complex<W>*>(threads + std::size_t(t) * per_thread +
                                              Arena<device::host>::bytes_for<W>(std::size_t(n)) +
                                              std::size_t(i) * Arena<device::host>::bytes_for<std::complex<W>>(std::size_t(bins)));
  }
};
template <class W>
ConvScratch<W> conv_scratch(Arena<device::host>::Scope& scope, index_t C, index_t n, int threads, int spectra) {
  using A = Arena<device::host>;
  const index_t bins = rfft_bins(n);
  const std::size_t per = A::bytes_for<W>(std::size_t(n)) + std::size_t(spectra) * A::bytes_for<std::complex<W>>(std::size_t(bins));
  auto* K = scope.take<std::complex<W>>(std::size_t(C * spectrum_stride(bins)));
  return {K, scope.take<std::byte>(per * std::size_t(threads)), per, n, bins};
}
template <class W>
std::size_t conv_scratch_bytes(index_t C, index_t n, int threads, int spectra) {
  using A = Arena<device::host>;
  const index_t bins = rfft_bins(n);
  return A::bytes_for<std::complex<W>>(std::size_t(C * spectrum_stride(bins))) +
         std::size_t(threads) * (A::bytes_for<W>(std::size_t(n)) +
                                 std::size_t(spectra) * A::bytes_for<std::complex<W>>(std::size_t(bins)));
}

// Spectra of the zero-padded kernels into ws.K, one row of n/2+1 bins (at stride spectrum_stride) per
// channel; uses the threads' real rows.
template <class W, class T>
void kernel_spectra(Context<device::host>& ctx, const RealFft<W>& fft, const TensorView<const T>& k,
                    const ConvScratch<W>& ws, int max_threads) {
  index_t C = k.shape[0], Lk = k.shape[1], n = fft.n, stride = spectrum_stride(rfft_bins(n));
  int nt = std::min(threads_for(ctx, C * n), max_threads);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    W* pad = ws.real(thread_index());
#pragma omp for schedule(static)
    for (index_t c = 0; c < C; ++c) {
      for (index_t j = 0; j < Lk; ++j) pad[j] = W(k.data[c * Lk + j]);
      std::fill(pad + Lk, pad + n, W(0));
      fft.forward(pad, ws.K + c * stride);
    }
  }
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
  detail::RealFft<W> fft(ctx, n, /*aligned=*/true);  // every array below is a 256-byte aligned arena slice
  const int nt = std::max(detail::threads_for(ctx, N * C * n), detail::threads_for(ctx, C * n));
  auto scope = ctx.arena.scope(detail::conv_scratch_bytes<W>(C, n, nt, 1));
  const auto ws = detail::conv_scratch<W>(scope, C, n, nt, 1);
  detail::kernel_spectra<W>(ctx, fft, k, ws, nt);
  index_t stride = detail::spectrum_stride(bins);
  W inv_n = W(1) / W(n);
  int nrow = detail::threads_for(ctx, N * C * n);
#pragma omp parallel num_threads(nrow) if (nrow > 1)
  {
    const int t = detail::thread_index();
    W* pad = ws.real(t);
    std::complex<W>* U = ws.spectrum(t, 0);
#pragma omp for schedule(static)
    for (index_t row = 0; row < N * C; ++row) {
      const std::complex<W>* Kc = ws.K + (row % C) * stride;
      const T* ur = u.data + row * L;
      for (index_t l = 0; l < L; ++l) pad[l] = W(ur[l]);
      std::fill(pad + L, pad + n, W(0));
      fft.forward(pad, U);
      detail::mul_spectrum(U, Kc, bins, /*conj_b=*/false);
      fft.inverse(U, pad);
      T* yr = y.data + row * L;
      for (index_t l = 0; l < L; ++l) yr[l] = T(pad[l] * inv_n);
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
  detail::RealFft<W> fft(ctx, n, /*aligned=*/true);  // every array below is a 256-byte aligned arena slice
  const int nt = std::max(detail::threads_for(ctx, N * C * n), detail::threads_for(ctx, C * n));
  auto scope = ctx.arena.scope(detail::conv_scratch_bytes<W>(C, n, nt, 3));
  const auto ws = detail::conv_scratch<W>(scope, C, n, nt, 3);
  detail::kernel_spectra<W>(ctx, fft, k, ws, nt);
  index_t stride = detail::spectrum_stride(bins);
  W inv_n = W(1) / W(n);
  int nrow = detail::threads_for(ctx, N * C * n);
#pragma omp parallel num_threads(nrow) if (nrow > 1)
  {
    const int t = detail::thread_index();
    W* pad = ws.real(t);
    std::complex<W>*DY = ws.spectrum(t, 0), *U = ws.spectrum(t, 1), *acc = ws.spectrum(t, 2);
#pragma omp for schedule(dynamic, 1)
    for (index_t c = 0; c < C; ++c) {
      const std::complex<W>* Kc = ws.K + c * stride;
      std::fill(acc, acc + bins, std::complex<W>(0));
      for (index_t b = 0; b < N; ++b) {
        index_t row = b * C + c;
        const T* dyr = dy.data + row * L;
        for (index_t l = 0; l < L; ++l) pad[l] = W(dyr[l]);
        std::fill(pad + L, pad + n, W(0));
        fft.forward(pad, DY);
        const T* ur = u.data + row * L;
        for (index_t l = 0; l < L; ++l) pad[l] = W(ur[l]);
        std::fill(pad + L, pad + n, W(0));
        fft.forward(pad, U);
        detail::add_mul_conj(acc, DY, U, bins);
        if (want_du) {
          detail::mul_spectrum(DY, Kc, bins, /*conj_b=*/true);
          fft.inverse(DY, pad);
          T* dur = du.data + row * L;
          for (index_t l = 0; l < L; ++l) dur[l] = T(pad[l] * inv_n);
        }
      }
      fft.inverse(acc, pad);
      T* dkr = dk.data + c * Lk;
      for (index_t j = 0; j < Lk; ++j) dkr[j] = T(W(dkr[j]) + pad[j] * inv_n);
    }
  }
}

}  // namespace longseq::ops

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads, visible wherever the host op is
#include "cuda/fft_conv.cuh"
#endif
