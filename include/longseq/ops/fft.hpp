// Batched real FFTs along the last axis on the host (FFTW, plans cached in the context), with backwards.
#pragma once
#include <complex>
#include <cstdint>
#include <new>
#include <type_traits>
#include <vector>

#include "../core/fftw_plans.hpp"
#include "common.hpp"

namespace longseq::ops {

// Number of bins of the half spectrum of a real signal of length n.
inline constexpr index_t rfft_bins(index_t n) { return n / 2 + 1; }

namespace detail {

// Allocator of arrays aligned to fft_alignment bytes, for the aligned (SIMD) FFT plans.
template <class T>
struct FftAllocator {
  using value_type = T;
  FftAllocator() = default;
  template <class U>
  FftAllocator(const FftAllocator<U>&) {}
  T* allocate(std::size_t count) {
    return static_cast<T*>(::operator new(count * sizeof(T), std::align_val_t(fft_alignment)));
  }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(fft_alignment)); }
  template <class U>
  bool operator==(const FftAllocator<U>&) const {
    return true;
  }
};
template <class T>
using fft_vector = std::vector<T, FftAllocator<T>>;

// One-row transforms of length n, safe to run from many threads at once (each with its own arrays).
// An aligned transform runs FFTW's SIMD codelets and takes only arrays aligned to fft_alignment bytes
// (fft_vector storage, or rows of it at multiples of that alignment).
template <class T>
struct RealFft {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "RealFft: T must be float or double");
  using api = fftw_api<T>;
  index_t n;
  bool aligned;
  typename api::plan r2c, c2r;
  RealFft(Context<device::host>& ctx, index_t n_, bool aligned_ = false)
      : n(n_),
        aligned(aligned_),
        r2c(ctx.fftw.get<T>(FftDir::r2c, n_, 1, aligned_)),
        c2r(ctx.fftw.get<T>(FftDir::c2r, n_, 1, aligned_)) {}
  // in: n reals; out: n/2+1 bins, X[f] = sum_t x[t] exp(-2 pi i f t / n).
  void forward(T* in, std::complex<T>* out) const {
    check_alignment(in, out);
    api::exec_r2c(r2c, in, out);
  }
  // in: n/2+1 bins (overwritten); out: n reals, x[t] = sum over the full Hermitian spectrum (no 1/n).
  void inverse(std::complex<T>* in, T* out) const {
    check_alignment(in, out);
    api::exec_c2r(c2r, in, out);
  }

 private:
  void check_alignment(const void* a, const void* b) const {
    LONGSEQ_CHECK(!aligned || (reinterpret_cast<std::uintptr_t>(a) % fft_alignment == 0 &&
                               reinterpret_cast<std::uintptr_t>(b) % fft_alignment == 0),
                  "RealFft: an aligned transform got arrays not aligned to ", fft_alignment, " bytes");
  }
};

// One row of scratch per thread for the one-row transforms, from the context's arena (reused by every
// later call of the same or a smaller size).
template <class X>
struct RowScratch {
  Arena<device::host>::Scope scope;
  std::size_t stride;  // elements from one thread's row to the next
  X* base;
  RowScratch(Context<device::host>& ctx, int threads, index_t len)
      : scope(ctx.arena.scope(std::size_t(threads) * Arena<device::host>::bytes_for<X>(std::size_t(len)))),
        stride(Arena<device::host>::bytes_for<X>(std::size_t(len)) / sizeof(X)),
        base(scope.take<X>(std::size_t(threads) * stride)) {}
  X* row() const { return base + std::size_t(thread_index()) * stride; }
};

template <class T>
void check_fft_pair(const TensorView<T>& real, const TensorView<std::complex<T>>& spec, std::string_view rname,
                    std::string_view sname) {
  expect_contiguous(real, rname);
  expect_contiguous(spec, sname);
  LONGSEQ_CHECK(real.rank() >= 1 && real.rank() == spec.rank(), "fft: tensor '", rname, "' ", real.shape,
                " and tensor '", sname, "' ", spec.shape, " must have the same rank >= 1");
  Shape want = real.shape;
  want.dims[want.rank - 1] = rfft_bins(real.shape[real.rank() - 1]);
  LONGSEQ_CHECK(spec.shape == want, "fft: tensor '", sname, "' has shape ", spec.shape, ", expected ", want,
                " (n/2+1 bins for tensor '", rname, "' of shape ", real.shape, ")");
}

template <class T>
TensorView<T> unconst(TensorView<const T> v) {
  return TensorView<T>(const_cast<T*>(v.data), v.shape, v.strides);
}

}  // namespace detail

// X = rfft(x) along the last axis, unnormalized (as numpy/torch rfft): x (..., n) -> X (..., n/2+1).
template <class T>
void rfft_forward(Context<device::host>& ctx, TensorView<const T> x, TensorView<std::complex<T>> X) {
  detail::check_fft_pair(detail::unconst(x), X, "x", "X");
  index_t n = x.size(-1), bins = rfft_bins(n), rows = detail::leading_rows(x.shape);
  if (rows == 0 || n == 0) return;
  detail::RealFft<T> fft(ctx, n);
  int nt = detail::threads_for(ctx, rows * n);
  const detail::RowScratch<T> ws(ctx, nt, n);  // FFTW may not read through a pointer to const
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    T* in = ws.row();
#pragma omp for schedule(static)
    for (index_t r = 0; r < rows; ++r) {
      std::copy(x.data + r * n, x.data + (r + 1) * n, in);
      fft.forward(in, X.data + r * bins);
    }
  }
}

// Gradient of rfft: dx[t] = Re(sum_f dX[f] exp(+2 pi i f t / n)) over the n/2+1 stored bins, where
// dX holds dL/dRe + i dL/dIm (PyTorch's convention). Written into dx (..., n).
template <class T>
void rfft_backward(Context<device::host>& ctx, TensorView<const std::complex<T>> dX, TensorView<T> dx) {
  detail::check_fft_pair(dx, detail::unconst(dX), "dx", "dX");
  index_t n = dx.size(-1), bins = rfft_bins(n), rows = detail::leading_rows(dx.shape);
  if (rows == 0 || n == 0) return;
  detail::RealFft<T> fft(ctx, n);
  int nt = detail::threads_for(ctx, rows * n);
  const detail::RowScratch<std::complex<T>> ws(ctx, nt, bins);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    std::complex<T>* s = ws.row();
#pragma omp for schedule(static)
    for (index_t r = 0; r < rows; ++r) {
      // c2r counts each bin strictly between DC and Nyquist twice (as itself and its mirror): halve those.
      const std::complex<T>* g = dX.data + r * bins;
      for (index_t f = 0; f < bins; ++f) {
        bool edge = f == 0 || (n % 2 == 0 && f == n / 2);
        s[f] = edge ? g[f] : g[f] * T(0.5);
      }
      fft.inverse(s, dx.data + r * n);
    }
  }
}

// x = irfft(X, n) along the last axis, normalized by 1/n (inverse of rfft_forward): X (..., n/2+1) ->
// x (..., n); n is taken from x. As in FFTW and torch, the imaginary parts of the DC bin (and of the
// Nyquist bin for even n) are ignored.
template <class T>
void irfft_forward(Context<device::host>& ctx, TensorView<const std::complex<T>> X, TensorView<T> x) {
  detail::check_fft_pair(x, detail::unconst(X), "x", "X");
  index_t n = x.size(-1), bins = rfft_bins(n), rows = detail::leading_rows(x.shape);
  if (rows == 0 || n == 0) return;
  detail::RealFft<T> fft(ctx, n);
  T inv_n = T(1) / T(n);
  int nt = detail::threads_for(ctx, rows * n);
  const detail::RowScratch<std::complex<T>> ws(ctx, nt, bins);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    std::complex<T>* s = ws.row();
#pragma omp for schedule(static)
    for (index_t r = 0; r < rows; ++r) {
      std::copy(X.data + r * bins, X.data + (r + 1) * bins, s);  // c2r overwrites its input
      T* out = x.data + r * n;
      fft.inverse(s, out);
      for (index_t t = 0; t < n; ++t) out[t] *= inv_n;
    }
  }
}

// Gradient of irfft: dX[f] = c_f / n * rfft(dx)[f], c_f = 2 for bins that stand for a mirrored pair and
// 1 for DC and Nyquist; the ignored imaginary parts of those get zero gradient. Written into dX.
template <class T>
void irfft_backward(Context<device::host>& ctx, TensorView<const T> dx, TensorView<std::complex<T>> dX) {
  detail::check_fft_pair(detail::unconst(dx), dX, "dx", "dX");
  index_t n = dx.size(-1), bins = rfft_bins(n), rows = detail::leading_rows(dx.shape);
  if (rows == 0 || n == 0) return;
  detail::RealFft<T> fft(ctx, n);
  T inv_n = T(1) / T(n);
  int nt = detail::threads_for(ctx, rows * n);
  const detail::RowScratch<T> ws(ctx, nt, n);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    T* in = ws.row();
#pragma omp for schedule(static)
    for (index_t r = 0; r < rows; ++r) {
      std::copy(dx.data + r * n, dx.data + (r + 1) * n, in);
      std::complex<T>* g = dX.data + r * bins;
      fft.forward(in, g);
      for (index_t f = 0; f < bins; ++f) {
        bool edge = f == 0 || (n % 2 == 0 && f == n / 2);
        g[f] = edge ? std::complex<T>(g[f].real() * inv_n, T(0)) : g[f] * (T(2) * inv_n);
      }
    }
  }
}

}  // namespace longseq::ops

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads, visible wherever the host op is
#include "cuda/fft.cuh"
#endif
