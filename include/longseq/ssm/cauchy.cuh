// CUDA Cauchy kernels for S4: the conjugate-paired sums S[q,h,k] = sum_n v[q,h,n] / (g[h,k] - w[h,n]) +
// conj(v[q,h,n]) / (g[h,k] - conj w[h,n]) and their backward, fused so that no (H, M, nodes) intermediate
// reaches global memory; and the S4 generating function at the roots of unity (Woodbury identity) built on
// them. Arrays hold interleaved (re, im) pairs of float, double or bf16; sums accumulate in accum_t<T>.
// Every kernel is one thread per output element running a host-and-device functor (simple to check on the
// host; a shared-memory tiled version is the next step once timings can be taken).
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <type_traits>

#include "../core/cuda/context.cuh"
#include "../core/cuda/launch.cuh"
#include "../core/dtype.hpp"
#include "../core/tensor.hpp"

namespace longseq::ssm::cuda {

// The S4 generating function needs 2 C + 2 sums per node (C <= 2 kernel channels); a few spare.
inline constexpr index_t cauchy_max_numerators = 8;

template <class T>
using DeviceIn = std::type_identity_t<TensorView<const T, device::cuda>>;
template <class T>
using DeviceOut = std::type_identity_t<TensorView<T, device::cuda>>;

namespace cauchy_detail {

inline constexpr int max_q = int(cauchy_max_numerators);

template <class A>
struct Cz {
  A re, im;
};
template <class A>
LONGSEQ_HD inline Cz<A> operator+(Cz<A> a, Cz<A> b) {
  return {a.re + b.re, a.im + b.im};
}
template <class A>
LONGSEQ_HD inline Cz<A> operator-(Cz<A> a, Cz<A> b) {
  return {a.re - b.re, a.im - b.im};
}
template <class A>
LONGSEQ_HD inline Cz<A> operator*(Cz<A> a, Cz<A> b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}
template <class A>
LONGSEQ_HD inline Cz<A> scale(A s, Cz<A> a) {
  return {s * a.re, s * a.im};
}
template <class A>
LONGSEQ_HD inline Cz<A> conj(Cz<A> a) {
  return {a.re, -a.im};
}
template <class A>
LONGSEQ_HD inline Cz<A> inv(Cz<A> a) {
  A d = A(1) / (a.re * a.re + a.im * a.im);
  return {a.re * d, -a.im * d};
}
template <class A, class T>
LONGSEQ_HD inline Cz<A> load(const T* p, index_t i) {
  return {A(p[2 * i]), A(p[2 * i + 1])};
}
template <class T, class A>
LONGSEQ_HD inline void store(T* p, index_t i, Cz<A> z) {
  p[2 * i] = T(z.re);
  p[2 * i + 1] = T(z.im);
}

// One thread per (h, k): S[q,h,k] for every numerator q < Q, looping over the modes of channel h. Threads
// of a block share h, so their reads of v and w hit the same addresses (broadcast from cache).
template <class T>
struct CauchyForward {
  using A = accum_t<T>;
  const T *v, *w, *g;
  index_t Q, H, M, K;
  T* S;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t h = i / K;
    Cz<A> node = load<A>(g, i);
    Cz<A> acc[max_q];
    for (int q = 0; q < max_q; ++q) acc[q] = {A(0), A(0)};
    for (index_t n = 0; n < M; ++n) {
      Cz<A> wn = load<A>(w, h * M + n);
      Cz<A> r = inv(node - wn), rb = inv(node - conj(wn));
      for (int q = 0; q < max_q; ++q)
        if (q < Q) {
          Cz<A> vq = load<A>(v, (q * H + h) * M + n);
          acc[q] = acc[q] + vq * r + conj(vq) * rb;
        }
    }
    for (int q = 0; q < Q; ++q) store(S, q * H * K + i, acc[q]);
  }
};

// One thread per (h, n): the gradients of v[., h, n] and w[h, n], looping over the nodes k. With G = dS and
// r = 1/(g - w), rb = 1/(g - conj w):
//   dv_q = sum_k conj(r) G_q + conj(G_q) rb,
//   dw   = sum_k conj(r^2) sum_q conj(v_q) G_q + conj(sum_q v_q G_q) rb^2   (dr/dw = r^2, rb depends on conj w).
template <class T>
struct CauchyBackwardVW {
  using A = accum_t<T>;
  const T *v, *w, *g, *dS;
  index_t Q, H, M, K;
  T *dv, *dw;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t h = i / M;
    Cz<A> wn = load<A>(w, i);
    Cz<A> vq[max_q], gv[max_q];
    for (int q = 0; q < max_q; ++q) {
      vq[q] = q < Q ? load<A>(v, q * H * M + i) : Cz<A>{A(0), A(0)};
      gv[q] = {A(0), A(0)};
    }
    Cz<A> gw = {A(0), A(0)};
    for (index_t k = 0; k < K; ++k) {
      Cz<A> node = load<A>(g, h * K + k);
      Cz<A> r = inv(node - wn), rb = inv(node - conj(wn));
      Cz<A> gr = {A(0), A(0)}, grb = {A(0), A(0)};
      for (int q = 0; q < max_q; ++q)
        if (q < Q) {
          Cz<A> G = load<A>(dS, (q * H + h) * K + k);
          gv[q] = gv[q] + conj(r) * G + conj(G) * rb;
          gr = gr + conj(vq[q]) * G;
          grb = grb + vq[q] * G;
        }
      gw = gw + conj(r * r) * gr + conj(grb) * (rb * rb);
    }
    for (int q = 0; q < Q; ++q) store(dv, q * H * M + i, gv[q]);
    store(dw, i, gw);
  }
};

// One thread per (h, k): the gradient of the node, dg = -sum_n conj(r^2) sum_q conj(v_q) G_q +
// conj(rb^2) sum_q v_q G_q (r and rb are holomorphic in g with derivatives -r^2 and -rb^2).
template <class T>
struct CauchyBackwardG {
  using A = accum_t<T>;
  const T *v, *w, *g, *dS;
  index_t Q, H, M, K;
  T* dg;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t h = i / K;
    Cz<A> node = load<A>(g, i);
    Cz<A> G[max_q];
    for (int q = 0; q < max_q; ++q) G[q] = q < Q ? load<A>(dS, q * H * K + i) : Cz<A>{A(0), A(0)};
    Cz<A> acc = {A(0), A(0)};
    for (index_t n = 0; n < M; ++n) {
      Cz<A> wn = load<A>(w, h * M + n);
      Cz<A> r = inv(node - wn), rb = inv(node - conj(wn));
      Cz<A> gr = {A(0), A(0)}, grb = {A(0), A(0)};
      for (int q = 0; q < max_q; ++q)
        if (q < Q) {
          Cz<A> vq = load<A>(v, (q * H + h) * M + n);
          gr = gr + conj(vq) * G[q];
          grb = grb + vq * G[q];
        }
      acc = acc - conj(r * r) * gr - conj(rb * rb) * grb;
    }
    store(dg, i, acc);
  }
};

struct CauchyDims {
  index_t Q, H, M, K;
};

template <class T>
CauchyDims check_cauchy(const TensorView<const T, device::cuda>& v, const TensorView<const T, device::cuda>& w,
                        const TensorView<const T, device::cuda>& g, const char* fn) {
  expect_rank(v, 4, "v");
  CauchyDims d{v.size(0), v.size(1), v.size(2), 0};
  LONGSEQ_CHECK(d.Q >= 1 && d.Q <= cauchy_max_numerators && v.size(3) == 2, fn, ": tensor 'v' has shape ", v.shape,
                ", expected (Q, H, M, 2) with 1 <= Q <= ", cauchy_max_numerators);
  expect_shape(w, Shape{d.H, d.M, 2}, "w");
  expect_rank(g, 3, "g");
  d.K = g.size(1);
  expect_shape(g, Shape{d.H, d.K, 2}, "g");
  expect_contiguous(v, "v");
  expect_contiguous(w, "w");
  expect_contiguous(g, "g");
  return d;
}

}  // namespace cauchy_detail

// S (Q, H, K, 2) = sum_n v[q,h,n] / (g[h,k] - w[h,n]) + conj(v[q,h,n]) / (g[h,k] - conj w[h,n]) from the
// numerators v (Q, H, M, 2), the poles w (H, M, 2) and the nodes g (H, K, 2); Q <= cauchy_max_numerators.
template <class T>
void cauchy_forward(Context<device::cuda>& ctx, DeviceIn<T> v, DeviceIn<T> w, DeviceIn<T> g, DeviceOut<T> S) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bf16>,
                "cauchy_forward: T must be float, double or bf16");
  auto d = cauchy_detail::check_cauchy<T>(v, w, g, "cauchy_forward");
  expect_shape(S, Shape{d.Q, d.H, d.K, 2}, "S");
  expect_contiguous(S, "S");
  longseq::cuda::for_each(ctx.stream(), d.H * d.K,
                          cauchy_detail::CauchyForward<T>{v.data, w.data, g.data, d.Q, d.H, d.M, d.K, S.data},
                          "ssm::cauchy_forward");
}

// Given dS (Q, H, K, 2) (dLoss/dRe, dLoss/dIm interleaved), writes the gradients dv (Q, H, M, 2), dw (H, M, 2)
// and dg (H, K, 2) in the same convention.
template <class T>
void cauchy_backward(Context<device::cuda>& ctx, DeviceIn<T> v, DeviceIn<T> w, DeviceIn<T> g, DeviceIn<T> dS,
                     DeviceOut<T> dv, DeviceOut<T> dw, DeviceOut<T> dg) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bf16>,
                "cauchy_backward: T must be float, double or bf16");
  auto d = cauchy_detail::check_cauchy<T>(v, w, g, "cauchy_backward");
  expect_shape(dS, Shape{d.Q, d.H, d.K, 2}, "dS");
  expect_shape(dv, v.shape, "dv");
  expect_shape(dw, w.shape, "dw");
  expect_shape(dg, g.shape, "dg");
  expect_contiguous(dS, "dS");
  expect_contiguous(dv, "dv");
  expect_contiguous(dw, "dw");
  expect_contiguous(dg, "dg");
  longseq::cuda::for_each(
      ctx.stream(), d.H * d.M,
      cauchy_detail::CauchyBackwardVW<T>{v.data, w.data, g.data, dS.data, d.Q, d.H, d.M, d.K, dv.data, dw.data},
      "ssm::cauchy_backward_vw");
  longseq::cuda::for_each(
      ctx.stream(), d.H * d.K,
      cauchy_detail::CauchyBackwardG<T>{v.data, w.data, g.data, dS.data, d.Q, d.H, d.M, d.K, dg.data},
      "ssm::cauchy_backward_g");
}

// ---------------------------------------------------------------------------------------------------------
// The S4 generating function on the device. Channel h uses copy s = h % S of (lambda, P, B). At the nodes
// z_k = exp(-2 pi i k / Lk), k < Lk/2 + 1, with t = tan(pi k / Lk):
//   g = (2/dt) (1 - z)/(1 + z) = 2 i t / dt,   2/(1 + z) = 1 + i t,
//   Khat[c] = (1 + i t) (k00[c] - k01[c] k10 / (1 + k11)),
// k00 = Cauchy(C B), k01 = Cauchy(C P), k10 = Cauchy(conj(P) B), k11 = Cauchy(|P|^2), each over the poles
// lambda and paired with the conjugate modes. At z = -1 (even Lk, k = Lk/2): Khat[c] = dt Re sum_n C B.
// Numerator q layout: k00 for c at q = c, k01 at q = Ch + c, k10 at q = 2 Ch, k11 at q = 2 Ch + 1.

namespace cauchy_detail {

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

}  // namespace cauchy_detail

// Khat (channels, H, Lk/2 + 1, 2): the S4 generating function of the kernel of length Lk at the roots of unity
// (its inverse real FFT of length Lk is the kernel), from the step sizes dt (H), the copies' lambda, P, B
// (S, M, 2) with S dividing H, and the length-corrected C (channels, H, M, 2).
template <class T>
void s4_khat_forward(Context<device::cuda>& ctx, DeviceIn<T> dt, DeviceIn<T> lambda, DeviceIn<T> P, DeviceIn<T> B,
                     DeviceIn<T> C, index_t Lk, DeviceOut<T> Khat) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bf16>,
                "s4_khat_forward: T must be float, double or bf16");
  using A = accum_t<T>;
  auto d = cauchy_detail::check_s4<T>(dt, lambda, P, B, C, Lk, "s4_khat_forward");
  expect_shape(Khat, Shape{d.Ch, d.H, d.K, 2}, "Khat");
  expect_contiguous(Khat, "Khat");
  index_t Q = 2 * d.Ch + 2;
  auto v = ctx.scratch<A>(std::size_t(2 * Q * d.H * d.M));
  auto w = ctx.scratch<A>(std::size_t(2 * d.H * d.M));
  auto g = ctx.scratch<A>(std::size_t(2 * d.H * d.K));
  auto sums = ctx.scratch<A>(std::size_t(2 * Q * d.H * d.K));
  cudaStream_t st = ctx.stream();
  longseq::cuda::for_each(st, d.H * d.M,
                          cauchy_detail::S4Numerators<T>{lambda.data, P.data, B.data, C.data, d.Ch, d.H, d.S, d.M,
                                                         v.data(), w.data()},
                          "ssm::s4_numerators");
  longseq::cuda::for_each(st, d.H * d.K, cauchy_detail::S4Nodes<T>{dt.data, d.K, Lk, g.data()}, "ssm::s4_nodes");
  cauchy_forward<A>(ctx, TensorView<const A, device::cuda>(v.data(), Shape{Q, d.H, d.M, 2}),
                    TensorView<const A, device::cuda>(w.data(), Shape{d.H, d.M, 2}),
                    TensorView<const A, device::cuda>(g.data(), Shape{d.H, d.K, 2}),
                    TensorView<A, device::cuda>(sums.data(), Shape{Q, d.H, d.K, 2}));
  longseq::cuda::for_each(st, d.H * d.K,
                          cauchy_detail::S4Combine<T>{dt.data, B.data, C.data, sums.data(), d.Ch, d.H, d.S, d.M, d.K,
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
  auto d = cauchy_detail::check_s4<T>(dt, lambda, P, B, C, Lk, "s4_khat_backward");
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
                          cauchy_detail::S4Numerators<T>{lambda.data, P.data, B.data, C.data, d.Ch, d.H, d.S, d.M,
                                                         v.data(), w.data()},
                          "ssm::s4_numerators");
  longseq::cuda::for_each(st, HK, cauchy_detail::S4Nodes<T>{dt.data, d.K, Lk, g.data()}, "ssm::s4_nodes");
  CV vv(v.data(), Shape{Q, d.H, d.M, 2}), wv(w.data(), Shape{d.H, d.M, 2}), gv(g.data(), Shape{d.H, d.K, 2});
  cauchy_forward<A>(ctx, vv, wv, gv, MV(sums.data(), Shape{Q, d.H, d.K, 2}));
  longseq::cuda::for_each(
      st, HK, cauchy_detail::S4CombineBackward<T>{dKhat.data, sums.data(), d.Ch, d.H, d.K, Lk, dsums.data()},
      "ssm::s4_combine_backward");
  cauchy_backward<A>(ctx, vv, wv, gv, CV(dsums.data(), Shape{Q, d.H, d.K, 2}), MV(dv.data(), Shape{Q, d.H, d.M, 2}),
                     MV(dw.data(), Shape{d.H, d.M, 2}), MV(dg.data(), Shape{d.H, d.K, 2}));
  longseq::cuda::for_each(st, HM,
                          cauchy_detail::S4ParamGrads<T>{dt.data, P.data, B.data, C.data, dKhat.data, dv.data(), d.Ch,
                                                         d.H, d.S, d.M, d.K, Lk, g_C.data, gP_h.data(), gB_h.data()},
                          "ssm::s4_param_grads");
  longseq::cuda::for_each(st, d.H,
                          cauchy_detail::S4DtGrad<T>{dt.data, B.data, C.data, dKhat.data, g.data(), dg.data(), d.Ch,
                                                     d.H, d.S, d.M, d.K, Lk, g_dt.data},
                          "ssm::s4_dt_grad");
  longseq::cuda::for_each(st, d.S * d.M,
                          cauchy_detail::S4ReduceCopies<T>{dw.data(), gP_h.data(), gB_h.data(), d.H, d.S, d.M,
                                                           g_lambda.data, g_P.data, g_B.data},
                          "ssm::s4_reduce_copies");
}

}  // namespace longseq::ssm::cuda
