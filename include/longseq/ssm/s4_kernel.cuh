// S4's convolution kernel on the device: the generating function at the roots of unity (cauchy.cuh) followed
// by cuFFT's inverse real FFT and truncation to the requested length, with the backward of both. The same
// numbers as the host ssm::S4::kernel_forward / kernel_backward; float or double (cuFFT has no bf16 path).
#pragma once
#include <complex>
#include <type_traits>

#include "../core/cuda/context.cuh"
#include "../core/cuda/launch.cuh"
#include "../ops/cuda/fft.cuh"
#include "cauchy.cuh"

namespace longseq::ssm::cuda {

namespace s4_kernel_detail {

// K[r, l] = full[r, l] for l < L (full has Lk columns).
template <class T>
struct Truncate {
  const T* full;
  index_t L, Lk;
  T* K;
  LONGSEQ_HD void operator()(index_t i) const { K[i] = full[(i / L) * Lk + i % L]; }
};

// full[r, l] = dK[r, l] for l < L, zero for L <= l < Lk.
template <class T>
struct ZeroPad {
  const T* dK;
  index_t L, Lk;
  T* full;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t r = i / Lk, l = i % Lk;
    full[i] = l < L ? dK[r * L + l] : T(0);
  }
};

template <class T>
index_t check_kernel_length(const TensorView<T, device::cuda>& K, index_t Ch, index_t H, index_t Lk, const char* name) {
  expect_rank(K, 3, name);
  index_t L = K.size(2);
  LONGSEQ_CHECK(L >= 1 && L <= Lk, "tensor '", name, "' has shape ", K.shape, ", expected (", Ch, ", ", H,
                ", L) with 1 <= L <= Lk = ", Lk);
  expect_shape(K, Shape{Ch, H, L}, name);
  expect_contiguous(K, name);
  return L;
}

}  // namespace s4_kernel_detail

// K (channels, H, L), L <= Lk: the first L taps of the length-Lk S4 kernel (C corrected for Lk), from the
// same inputs as s4_khat_forward.
template <class T>
void s4_kernel_forward(Context<device::cuda>& ctx, DeviceIn<T> dt, DeviceIn<T> lambda, DeviceIn<T> P, DeviceIn<T> B,
                       DeviceIn<T> C, index_t Lk, DeviceOut<T> K) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "s4_kernel_forward: T must be float or double");
  auto d = cauchy_detail::check_s4<T>(dt, lambda, P, B, C, Lk, "s4_kernel_forward");
  index_t L = s4_kernel_detail::check_kernel_length(K, d.Ch, d.H, Lk, "K"), rows = d.Ch * d.H;
  auto khat = ctx.scratch<std::complex<T>>(std::size_t(rows * d.K));
  auto full = ctx.scratch<T>(std::size_t(rows * Lk));
  s4_khat_forward<T>(ctx, dt, lambda, P, B, C, Lk,
                     TensorView<T, device::cuda>(reinterpret_cast<T*>(khat.data()), Shape{d.Ch, d.H, d.K, 2}));
  ops::irfft_forward<T>(ctx, TensorView<const std::complex<T>, device::cuda>(khat.data(), Shape{rows, d.K}),
                        TensorView<T, device::cuda>(full.data(), Shape{rows, Lk}));
  longseq::cuda::for_each(ctx.stream(), rows * L, s4_kernel_detail::Truncate<T>{full.data(), L, Lk, K.data},
                          "ssm::s4_kernel_truncate");
}

// Gradients of s4_kernel_forward given dK (channels, H, L), all written, as in s4_khat_backward.
template <class T>
void s4_kernel_backward(Context<device::cuda>& ctx, DeviceIn<T> dt, DeviceIn<T> lambda, DeviceIn<T> P, DeviceIn<T> B,
                        DeviceIn<T> C, index_t Lk, DeviceIn<T> dK, DeviceOut<T> g_dt, DeviceOut<T> g_lambda,
                        DeviceOut<T> g_P, DeviceOut<T> g_B, DeviceOut<T> g_C) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "s4_kernel_backward: T must be float or double");
  auto d = cauchy_detail::check_s4<T>(dt, lambda, P, B, C, Lk, "s4_kernel_backward");
  index_t L = s4_kernel_detail::check_kernel_length(dK, d.Ch, d.H, Lk, "dK"), rows = d.Ch * d.H;
  auto full = ctx.scratch<T>(std::size_t(rows * Lk));
  auto dkhat = ctx.scratch<std::complex<T>>(std::size_t(rows * d.K));
  longseq::cuda::for_each(ctx.stream(), rows * Lk, s4_kernel_detail::ZeroPad<T>{dK.data, L, Lk, full.data()},
                          "ssm::s4_kernel_pad");
  ops::irfft_backward<T>(ctx, TensorView<const T, device::cuda>(full.data(), Shape{rows, Lk}),
                         TensorView<std::complex<T>, device::cuda>(dkhat.data(), Shape{rows, d.K}));
  s4_khat_backward<T>(ctx, dt, lambda, P, B, C, Lk,
                      TensorView<const T, device::cuda>(reinterpret_cast<const T*>(dkhat.data()),
                                                        Shape{d.Ch, d.H, d.K, 2}),
                      g_dt, g_lambda, g_P, g_B, g_C);
}

}  // namespace longseq::ssm::cuda
