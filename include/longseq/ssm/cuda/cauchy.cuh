// CUDA Cauchy kernels: the conjugate-paired sums S[q,h,k] = sum_n v[q,h,n] / (g[h,k] - w[h,n]) +
// conj(v[q,h,n]) / (g[h,k] - conj w[h,n]) and their backward, fused so that no (H, M, nodes) intermediate
// reaches global memory. S4's generating function (Woodbury identity) uses them in s4_kernel.cuh. Arrays hold interleaved (re, im) pairs of float, double or bf16; sums accumulate in accum_t<T>.
// Every kernel is one thread per output element running a host-and-device functor (simple to check on the
// host; a shared-memory tiled version is the next step once timings can be taken).
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <type_traits>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../core/dtype.hpp"
#include "../../core/tensor.hpp"

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

}  // namespace longseq::ssm::cuda
