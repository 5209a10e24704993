// S4's convolution kernel on the device: the generating function at the roots of unity through the Woodbury
// identity over the Cauchy sums of cauchy.cuh (s4_khat_*), then cuFFT's inverse real FFT and truncation to the
// requested length (s4_kernel_*), with the backward of both. The same numbers as the host ssm::S4 kernel;
// s4_khat_* take float, double or bf16, s4_kernel_* float or double (cuFFT has no bf16 path).
#pragma once
#include <complex>
#include <type_traits>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../ops/cuda/fft.cuh"
#include "cauchy.cuh"

namespace longseq::ssm::cuda {

// The S4 generating function on the device. Channel h uses copy s = h % S of (lambda, P, B). At the nodes
// z_k = exp(-2 pi i k / Lk), k < Lk/2 + 1, with t = tan(pi k / Lk):
//   g = (2/dt) (1 - z)/(1 + z) = 2 i t / dt,   2/(1 + z) = 1 + i t,
//   Khat[c] = (1 + i t) (k00[c] - k01[c] k10 / (1 + k11)),
// k00 = Cauchy(C B), k01 = Cauchy(C P), k10 = Cauchy(conj(P) B), k11 = Cauchy(|P|^2), each over the poles
// lambda and paired with the conjugate modes. At z = -1 (even Lk, k = Lk/2): Khat[c] = dt Re sum_n C B.
// Numerator q layout: k00 for c at q = c, k01 at q = Ch + c, k10 at q = 2 Ch, k11 at q = 2 Ch + 1.

namespace s4_khat_detail {

using namespace cauchy_detail;  // the complex helpers Cz, load, store, inv, conj

LONGSEQ_HD inline bool is_nyquist(index_t k, index_t Lk) { return Lk % 2 == 0 && k == Lk / 2; }
LONGSEQ_HD inline double node_tan(index_t k, index_t Lk) {
  return tan(3.141592653589793 * double(k) / double(Lk));
}

// Numerators (Q, H, M) and per-channel poles (H, M) of the S4 sums, in the accumulator type.
template <class T>
struct S4Numerators {
  using A = accum_t<T>;
  const T *lambda, *P, *B, *C;
  index_t Ch, H, S, M;
  A *v, *w;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t h = i / M, n = i % M, sn = (h % S) * M + n;
    Cz<A> p = load<A>(P, sn), b = load<A>(B, sn);
    store(w, i, load<A>(lambda, sn));
    for (index_t c = 0; c < Ch; ++c) {
      Cz<A> cc = load<A>(C, c * H * M + i);
      store(v, c * H * M + i, cc * b);
      store(v, (Ch + c) * H * M + i, cc * p);
    }
    store(v, 2 * Ch * H * M + i, conj(p) * b);
    store(v, (2 * Ch + 1) * H * M + i, Cz<A>{p.re * p.re + p.im * p.im, A(0)});
  }
};

// Nodes g (H, K); the z = -1 node gets a finite placeholder whose sums are never used.
template <class T>
struct S4Nodes {
  using A = accum_t<T>;
  const T* dt;
  index_t K, Lk;
  A* g;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t h = i / K, k = i % K;
    double im = is_nyquist(k, Lk) ? 0.0 : 2.0 * node_tan(k, Lk) / double(A(dt[h]));
    store(g, i, Cz<A>{A(0), A(im)});
  }
};

// sum_n C[c,h,n] B[s,n] (the z = -1 node).
template <class A, class T>
LONGSEQ_HD inline Cz<A> s4_cb_sum(const T* B, const T* C, index_t c, index_t h, index_t H, index_t S, index_t M) {
  Cz<A> F = {A(0), A(0)};
  for (index_t n = 0; n < M; ++n) F = F + load<A>(C, (c * H + h) * M + n) * load<A>(B, (h % S) * M + n);
  return F;
}

// Woodbury combination per (h, k): Khat (Ch, H, K).
template <class T>
struct S4Combine {
  using A = accum_t<T>;
  const T *dt, *B, *C;
  const A* sums;
  index_t Ch, H, S, M, K, Lk;
  T* Khat;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t h = i / K, k = i % K;
    if (is_nyquist(k, Lk)) {
      for (index_t c = 0; c < Ch; ++c) {
        Cz<A> F = s4_cb_sum<A>(B, C, c, h, H, S, M);
        store(Khat, c * H * K + i, Cz<A>{A(dt[h]) * F.re, A(0)});
      }
      return;
    }
    Cz<A> d = {A(1), A(node_tan(k, Lk))};
    Cz<A> k10 = load<A>(sums, 2 * Ch * H * K + i), k11 = load<A>(sums, (2 * Ch + 1) * H * K + i);
    Cz<A> m = inv(Cz<A>{A(1) + k11.re, k11.im});
    for (index_t c = 0; c < Ch; ++c) {
      Cz<A> k00 = load<A>(sums, c * H * K + i), k01 = load<A>(sums, (Ch + c) * H * K + i);
      store(Khat, c * H * K + i, d * (k00 - k01 * k10 * m));
    }
  }
};

// Cotangents of the sums per (h, k) from dKhat (zero at z = -1, which does not use the sums).
template <class T>
struct S4CombineBackward {
  using A = accum_t<T>;
  const T* dKhat;
  const A* sums;
  index_t Ch, H, K, Lk;
  A* dsums;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t k = i % K;
    Cz<A> zero = {A(0), A(0)};
    if (is_nyquist(k, Lk)) {
      for (index_t q = 0; q < 2 * Ch + 2; ++q) store(dsums, q * H * K + i, zero);
      return;
    }
    Cz<A> d = {A(1), A(node_tan(k, Lk))};
    Cz<A> k10 = load<A>(sums, 2 * Ch * H * K + i), k11 = load<A>(sums, (2 * Ch + 1) * H * K + i);
    Cz<A> m = inv(Cz<A>{A(1) + k11.re, k11.im});
    Cz<A> g10 = zero, g11 = zero;
    for (index_t c = 0; c < Ch; ++c) {
      Cz<A> k01 = load<A>(sums, (Ch + c) * H * K + i);
      Cz<A> gF = conj(d) * load<A>(dKhat, c * H * K + i);
      store(dsums, c * H * K + i, gF);
      store(dsums, (Ch + c) * H * K + i, zero - conj(k10 * m) * gF);
      g10 = g10 - conj(k01 * m) * gF;
      g11 = g11 + conj(k01 * k10 * m * m) * gF;
    }
    store(dsums, 2 * Ch * H * K + i, g10);
    store(dsums, (2 * Ch + 1) * H * K + i, g11);
  }
};

// Per (h, n): gC written to the output; the per-channel gradients of P and B to gP_h, gB_h (H, M). Adds the
// z = -1 node's terms (Khat = dt Re sum C B) with gamma_c = Re dKhat[c, h, Lk/2].
template <class T>
struct S4ParamGrads {
  using A = accum_t<T>;
  const T *dt, *P, *B, *C, *dKhat;
  const A* dv;
  index_t Ch, H, S, M, K, Lk;
  T* gC;
  A *gP_h, *gB_h;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t h = i / M, n = i % M, sn = (h % S) * M + n;
    Cz<A> p = load<A>(P, sn), b = load<A>(B, sn);
    Cz<A> d10 = load<A>(dv, 2 * Ch * H * M + i), d11 = load<A>(dv, (2 * Ch + 1) * H * M + i);
    Cz<A> gB = p * d10;
    Cz<A> gP = conj(d10) * b + scale(A(2) * d11.re, p);
    A dth = A(dt[h]);
    for (index_t c = 0; c < Ch; ++c) {
      Cz<A> cc = load<A>(C, c * H * M + i);
      Cz<A> d00 = load<A>(dv, c * H * M + i), d01 = load<A>(dv, (Ch + c) * H * M + i);
      if (Lk % 2 == 0) {
        A gamma = A(dKhat[2 * (c * H * K + h * K + Lk / 2)]) * dth;
        d00 = d00 + Cz<A>{gamma, A(0)};
      }
      store(gC, c * H * M + i, conj(b) * d00 + conj(p) * d01);
      gB = gB + conj(cc) * d00;
      gP = gP + conj(cc) * d01;
    }
    store(gP_h, i, gP);
    store(gB_h, i, gB);
  }
};

// Per h: dLoss/ddt = sum_k Re(conj(dg) dg/ddt) with dg/ddt = -g/dt, plus gamma_c Re sum_n C B at z = -1.
template <class T>
struct S4DtGrad {
  using A = accum_t<T>;
  const T *dt, *B, *C, *dKhat;
  const A *g, *dg;
  index_t Ch, H, S, M, K, Lk;
  T* gdt;
  LONGSEQ_HD void operator()(index_t h) const {
    A dth = A(dt[h]), acc = A(0);
    for (index_t k = 0; k < K; ++k) {
      if (is_nyquist(k, Lk)) continue;
      Cz<A> gk = load<A>(g, h * K + k), dgk = load<A>(dg, h * K + k);
      acc -= (dgk.re * gk.re + dgk.im * gk.im) / dth;
    }
    if (Lk % 2 == 0)
      for (index_t c = 0; c < Ch; ++c) {
        A gamma = A(dKhat[2 * (c * H * K + h * K + Lk / 2)]);
        acc += gamma * s4_cb_sum<A>(B, C, c, h, H, S, M).re;
      }
    gdt[h] = T(acc);
  }
};

// Per (s, n): sums the per-channel gradients of the channels h = s, s + S, ... that share copy s.
template <class T>
struct S4ReduceCopies {
  using A = accum_t<T>;
  const A *gl_h, *gP_h, *gB_h;
  index_t H, S, M;
  T *gl, *gP, *gB;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t s = i / M, n = i % M;
    Cz<A> a = {A(0), A(0)}, b = a, c = a;
    for (index_t h = s; h < H; h += S) {
      a = a + load<A>(gl_h, h * M + n);
      b = b + load<A>(gP_h, h * M + n);
      c = c + load<A>(gB_h, h * M + n);
    }
    store(gl, i, a);
    store(gP, i, b);
    store(gB, i, c);
  }
};

struct S4Dims {
  index_t Ch, H, S, M, K;
};

template <class T>
S4Dims check_s4(const TensorView<const T, device::cuda>& dt, const TensorView<const T, device::cuda>& lambda,
                const TensorView<const T, device::cuda>& P, const TensorView<const T, device::cuda>& B,
                const TensorView<const T, device::cuda>& C, index_t Lk, const char* fn) {
  LONGSEQ_CHECK(Lk >= 1, fn, ": Lk = ", Lk, ", expected the kernel length (>= 1)");
  expect_rank(lambda, 3, "lambda");
  S4Dims d{0, 0, lambda.size(0), lambda.size(1), Lk / 2 + 1};
  expect_shape(lambda, Shape{d.S, d.M, 2}, "lambda");
  expect_shape(P, lambda.shape, "P");
  expect_shape(B, lambda.shape, "B");
  expect_rank(C, 4, "C");
  d.Ch = C.size(0);
  d.H = C.size(1);
  LONGSEQ_CHECK(d.Ch == 1 || d.Ch == 2, fn, ": tensor 'C' has shape ", C.shape,
                ", expected (channels, H, M, 2) with channels 1 or 2");
  expect_shape(C, Shape{d.Ch, d.H, d.M, 2}, "C");
  LONGSEQ_CHECK(d.S >= 1 && d.H % d.S == 0, fn, ": tensor 'lambda' has shape ", lambda.shape, ", expected (S, M, 2)",
                " with S dividing H = ", d.H);
  expect_shape(dt, Shape{d.H}, "dt");
  expect_contiguous(dt, "dt");
  expect_contiguous(lambda, "lambda");
  expect_contiguous(P, "P");
  expect_contiguous(B, "B");
  expect_contiguous(C, "C");
  return d;
}

}  // namespace s4_khat_detail

// Khat (channels, H, Lk/2 + 1, 2): the S4 generating function of the kernel of length Lk at the roots of unity
// (its inverse real FFT of length Lk is the kernel), from the step sizes dt (H), the copies' lambda, P, B
// (S, M, 2) with S dividing H, and the length-corrected C (channels, H, M, 2).
template <class T>
void s4_khat_forward(Context<device::cuda>& ctx, DeviceIn<T> dt, DeviceIn<T> lambda, DeviceIn<T> P, DeviceIn<T> B,
                     DeviceIn<T> C, index_t Lk, DeviceOut<T> Khat) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bf16>,
                "s4_khat_forward: T must be float, double or bf16");
  using A = accum_t<T>;
  auto d = s4_khat_detail::check_s4<T>(dt, lambda, P, B, C, Lk, "s4_khat_forward");
  expect_shape(Khat, Shape{d.Ch, d.H, d.K, 2}, "Khat");
  expect_contiguous(Khat, "Khat");
  index_t Q = 2 * d.Ch + 2;
  auto v = ctx.scratch<A>(std::size_t(2 * Q * d.H * d.M));
  auto w = ctx.scratch<A>(std::size_t(2 * d.H * d.M));
  auto g = ctx.scratch<A>(std::size_t(2 * d.H * d.K));
  auto sums = ctx.scratch<A>(std::size_t(2 * Q * d.H * d.K));
  cudaStream_t st = ctx.stream();
  longseq::cuda::for_each(st, d.H * d.M,
                          s4_khat_detail::S4Numerators<T>{lambda.data, P.data, B.data, C.data, d.Ch, d.H, d.S, d.M,
                                                         v.data(), w.data()},
                          "ssm::s4_numerators");
  longseq::cuda::for_each(st, d.H * d.K, s4_khat_detail::S4Nodes<T>{dt.data, d.K, Lk, g.data()}, "ssm::s4_nodes");
  cauchy_forward<A>(ctx, TensorView<const A, device::cuda>(v.data(), Shape{Q, d.H, d.M, 2}),
                    TensorView<const A, device::cuda>(w.data(), Shape{d.H, d.M, 2}),
                    TensorView<const A, device::cuda>(g.data(), Shape{d.H, d.K, 2}),
                    TensorView<A, device::cuda>(sums.data(), Shape{Q, d.H, d.K, 2}));
  longseq::cuda::for_each(st, d.H * d.K,
                          s4_khat_detail::S4Combine<T>{dt.data, B.data, C.data, sums.data(), d.Ch, d.H, d.S, d.M, d.K,
                                                      Lk, Khat.data},
                          "ssm::s4_combine");
}

// Gradients of s4_khat_forward given dKhat (channels, H, Lk/2 + 1, 2) (dLoss/dRe, dLoss/dIm interleaved),
// all written: g_dt (H), g_lambda, g_P, g_B (S, M, 2) summed over the channels sharing each copy, g_C
// (channels, H, M, 2).
template <class T>
void s4_khat_backward(Context<device::cuda>& ctx, DeviceIn<T> dt, DeviceIn<T> lambda, DeviceIn<T> P, DeviceIn<T> B,
                      DeviceIn<T> C, index_t Lk, DeviceIn<T> dKhat, DeviceOut<T> g_dt, DeviceOut<T> g_lambda,
                      DeviceOut<T> g_P, DeviceOut<T> g_B, DeviceOut<T> g_C) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bf16>,
                "s4_khat_backward: T must be float, double or bf16");
  using A = accum_t<T>;
  auto d = s4_khat_detail::check_s4<T>(dt, lambda, P, B, C, Lk, "s4_khat_backward");
  expect_shape(dKhat, Shape{d.Ch, d.H, d.K, 2}, "dKhat");
  expect_shape(g_dt, dt.shape, "g_dt");
  expect_shape(g_lambda, lambda.shape, "g_lambda");
  expect_shape(g_P, lambda.shape, "g_P");
  expect_shape(g_B, lambda.shape, "g_B");
  expect_shape(g_C, C.shape, "g_C");
  expect_contiguous(dKhat, "dKhat");
  expect_contiguous(g_dt, "g_dt");
  expect_contiguous(g_lambda, "g_lambda");
  expect_contiguous(g_P, "g_P");
  expect_contiguous(g_B, "g_B");
  expect_contiguous(g_C, "g_C");
  index_t Q = 2 * d.Ch + 2, HM = d.H * d.M, HK = d.H * d.K;
  auto v = ctx.scratch<A>(std::size_t(2 * Q * HM));
  auto w = ctx.scratch<A>(std::size_t(2 * HM));
  auto g = ctx.scratch<A>(std::size_t(2 * HK));
  auto sums = ctx.scratch<A>(std::size_t(2 * Q * HK));
  auto dsums = ctx.scratch<A>(std::size_t(2 * Q * HK));
  auto dv = ctx.scratch<A>(std::size_t(2 * Q * HM));
  auto dw = ctx.scratch<A>(std::size_t(2 * HM));
  auto dg = ctx.scratch<A>(std::size_t(2 * HK));
  auto gP_h = ctx.scratch<A>(std::size_t(2 * HM));
  auto gB_h = ctx.scratch<A>(std::size_t(2 * HM));
  cudaStream_t st = ctx.stream();
  using CV = TensorView<const A, device::cuda>;
  using MV = TensorView<A, device::cuda>;
  longseq::cuda::for_each(st, HM,
                          s4_khat_detail::S4Numerators<T>{lambda.data, P.data, B.data, C.data, d.Ch, d.H, d.S, d.M,
                                                         v.data(), w.data()},
                          "ssm::s4_numerators");
  longseq::cuda::for_each(st, HK, s4_khat_detail::S4Nodes<T>{dt.data, d.K, Lk, g.data()}, "ssm::s4_nodes");
  CV vv(v.data(), Shape{Q, d.H, d.M, 2}), wv(w.data(), Shape{d.H, d.M, 2}), gv(g.data(), Shape{d.H, d.K, 2});
  cauchy_forward<A>(ctx, vv, wv, gv, MV(sums.data(), Shape{Q, d.H, d.K, 2}));
  longseq::cuda::for_each(
      st, HK, s4_khat_detail::S4CombineBackward<T>{dKhat.data, sums.data(), d.Ch, d.H, d.K, Lk, dsums.data()},
      "ssm::s4_combine_backward");
  cauchy_backward<A>(ctx, vv, wv, gv, CV(dsums.data(), Shape{Q, d.H, d.K, 2}), MV(dv.data(), Shape{Q, d.H, d.M, 2}),
                     MV(dw.data(), Shape{d.H, d.M, 2}), MV(dg.data(), Shape{d.H, d.K, 2}));
  longseq::cuda::for_each(st, HM,
                          s4_khat_detail::S4ParamGrads<T>{dt.data, P.data, B.data, C.data, dKhat.data, dv.data(), d.Ch,
                                                         d.H, d.S, d.M, d.K, Lk, g_C.data, gP_h.data(), gB_h.data()},
                          "ssm::s4_param_grads");
  longseq::cuda::for_each(st, d.H,
                          s4_khat_detail::S4DtGrad<T>{dt.data, B.data, C.data, dKhat.data, g.data(), dg.data(), d.Ch,
                                                     d.H, d.S, d.M, d.K, Lk, g_dt.data},
                          "ssm::s4_dt_grad");
  longseq::cuda::for_each(st, d.S * d.M,
                          s4_khat_detail::S4ReduceCopies<T>{dw.data(), gP_h.data(), gB_h.data(), d.H, d.S, d.M,
                                                           g_lambda.data, g_P.data, g_B.data},
                          "ssm::s4_reduce_copies");
}


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
  auto d = s4_khat_detail::check_s4<T>(dt, lambda, P, B, C, Lk, "s4_kernel_forward");
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
  auto d = s4_khat_detail::check_s4<T>(dt, lambda, P, B, C, Lk, "s4_kernel_backward");
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
