// Batched real FFTs along the last axis on the GPU (cuFFT, plans cached in the context), with backwards;
// same contracts and conventions as ops/fft.hpp.
#pragma once
#include <complex>
#include <type_traits>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../fft.hpp"
#include "math.cuh"

namespace longseq::ops {

namespace cuda_detail {

// cuFFT's real transforms for float (R2C/C2R) and double (D2Z/Z2D).
template <class T> struct cufft_real;
template <> struct cufft_real<float> {
  using complex = cufftComplex;
  static constexpr cufftType r2c = CUFFT_R2C, c2r = CUFFT_C2R;
  static cufftResult forward(cufftHandle p, float* in, complex* out) { return cufftExecR2C(p, in, out); }
  static cufftResult inverse(cufftHandle p, complex* in, float* out) { return cufftExecC2R(p, in, out); }
};
template <> struct cufft_real<double> {
  using complex = cufftDoubleComplex;
  static constexpr cufftType r2c = CUFFT_D2Z, c2r = CUFFT_Z2D;
  static cufftResult forward(cufftHandle p, double* in, complex* out) { return cufftExecD2Z(p, in, out); }
  static cufftResult inverse(cufftHandle p, complex* in, double* out) { return cufftExecZ2D(p, in, out); }
};

// s[r, f] = X[r, f] * (edge ? edge_scale : mid_scale), with the imaginary part of the DC bin (and of the
// Nyquist bin for even n) set to zero: the host transforms ignore those parts, and cuFFT is not asked to.
template <class C, class W>
struct ScaleBins {
  const C* in;
  C* out;
  index_t bins, n;
  W edge_scale, mid_scale;
  __device__ void operator()(index_t i) const {
    index_t f = i % bins;
    bool edge = f == 0 || (n % 2 == 0 && f == n / 2);
    C v = in[i];
    W s = edge ? edge_scale : mid_scale;
    v.x *= s;
    v.y = edge ? W(0) : v.y * s;
    out[i] = v;
  }
};

template <class T, class C>
index_t check_fft_pair(const TensorView<T, device::cuda>& real, const TensorView<C, device::cuda>& spec,
                       std::string_view rname, std::string_view sname) {
  expect_contiguous(real, rname);
  expect_contiguous(spec, sname);
  LONGSEQ_CHECK(real.rank() >= 1 && real.rank() == spec.rank(), "fft: tensor '", rname, "' ", real.shape,
                " and tensor '", sname, "' ", spec.shape, " must have the same rank >= 1");
  Shape want = real.shape;
  want.dims[want.rank - 1] = rfft_bins(real.size(-1));
  LONGSEQ_CHECK(spec.shape == want, "fft: tensor '", sname, "' has shape ", spec.shape, ", expected ", want,
                " (n/2+1 bins for tensor '", rname, "' of shape ", real.shape, ")");
  return real.size(-1);
}

template <class T>
using cufft_complex = typename cufft_real<T>::complex;

}  // namespace cuda_detail

// X = rfft(x) along the last axis, unnormalized: x (..., n) -> X (..., n/2+1).
template <class T>
void rfft_forward(Context<device::cuda>& ctx, TensorView<const T, device::cuda> x,
                  TensorView<std::complex<T>, device::cuda> X) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "rfft: T must be float or double");
  using F = cuda_detail::cufft_real<T>;
  index_t n = cuda_detail::check_fft_pair(x, X, "x", "X"), rows = cuda_detail::leading_rows(x.shape);
  if (rows == 0 || n == 0) return;
  // An out-of-place real-to-complex transform leaves its input untouched.
  LONGSEQ_CUFFT_CHECK(F::forward(ctx.fft_plan(F::r2c, n, rows), const_cast<T*>(x.data),
                                 reinterpret_cast<cuda_detail::cufft_complex<T>*>(X.data)));
}

// dx[t] = Re(sum_f dX[f] exp(+2 pi i f t / n)) over the stored bins (PyTorch's convention); written.
template <class T>
void rfft_backward(Context<device::cuda>& ctx, TensorView<const std::complex<T>, device::cuda> dX,
                   TensorView<T, device::cuda> dx) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "rfft: T must be float or double");
  using F = cuda_detail::cufft_real<T>;
  using C = cuda_detail::cufft_complex<T>;
  index_t n = cuda_detail::check_fft_pair(dx, dX, "dx", "dX"), rows = cuda_detail::leading_rows(dx.shape);
  if (rows == 0 || n == 0) return;
  index_t bins = rfft_bins(n);
  auto s = ctx.scratch<C>(std::size_t(rows * bins));
  // c2r counts each bin strictly between DC and Nyquist twice (itself and its mirror): halve those. The
  // edge bins keep their real part only, which is all a real output can depend on.
  cuda::for_each(ctx.stream(), rows * bins,
                 cuda_detail::ScaleBins<C, T>{reinterpret_cast<const C*>(dX.data), s.data(), bins, n, T(1), T(0.5)},
                 "rfft_backward_prepare");
  LONGSEQ_CUFFT_CHECK(F::inverse(ctx.fft_plan(F::c2r, n, rows), s.data(), dx.data));
}

// x = irfft(X, n) normalized by 1/n; n is taken from x. Imaginary parts of DC (and Nyquist) are ignored.
template <class T>
void irfft_forward(Context<device::cuda>& ctx, TensorView<const std::complex<T>, device::cuda> X,
                   TensorView<T, device::cuda> x) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "irfft: T must be float or double");
  using F = cuda_detail::cufft_real<T>;
  using C = cuda_detail::cufft_complex<T>;
  index_t n = cuda_detail::check_fft_pair(x, X, "x", "X"), rows = cuda_detail::leading_rows(x.shape);
  if (rows == 0 || n == 0) return;
  index_t bins = rfft_bins(n);
  auto s = ctx.scratch<C>(std::size_t(rows * bins));  // c2r overwrites its input: work on a scaled copy
  T inv_n = T(1) / T(n);
  cuda::for_each(ctx.stream(), rows * bins,
                 cuda_detail::ScaleBins<C, T>{reinterpret_cast<const C*>(X.data), s.data(), bins, n, inv_n, inv_n},
                 "irfft_prepare");
  LONGSEQ_CUFFT_CHECK(F::inverse(ctx.fft_plan(F::c2r, n, rows), s.data(), x.data));
}

// dX[f] = c_f / n * rfft(dx)[f] with c_f = 2 for mirrored bins, 1 for DC and Nyquist (whose ignored
// imaginary parts get zero gradient); written.
template <class T>
void irfft_backward(Context<device::cuda>& ctx, TensorView<const T, device::cuda> dx,
                    TensorView<std::complex<T>, device::cuda> dX) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "irfft: T must be float or double");
  using F = cuda_detail::cufft_real<T>;
  using C = cuda_detail::cufft_complex<T>;
  index_t n = cuda_detail::check_fft_pair(dx, dX, "dx", "dX"), rows = cuda_detail::leading_rows(dx.shape);
  if (rows == 0 || n == 0) return;
  index_t bins = rfft_bins(n);
  C* out = reinterpret_cast<C*>(dX.data);
  LONGSEQ_CUFFT_CHECK(F::forward(ctx.fft_plan(F::r2c, n, rows), const_cast<T*>(dx.data), out));
  T inv_n = T(1) / T(n);
  cuda::for_each(ctx.stream(), rows * bins, cuda_detail::ScaleBins<C, T>{out, out, bins, n, inv_n, T(2) * inv_n},
                 "irfft_backward_scale");
}

}  // namespace longseq::ops
