// What the diagonal parameterizations (S4D, DSS, DLR) share on the device: double-precision complex helpers and
// the discretizations as device functions, the Vandermonde sums over a DeviceDiagonalSaved (in accum_t<T>, with
// one rounding to T for narrow storage), and the accumulation of a gradient into a parameter's grad.
#pragma once
#include <cuda_runtime.h>

#include <type_traits>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../ops/cuda/elementwise.cuh"
#include "../discretization.hpp"
#include "../vandermonde.hpp"
#include "cauchy.cuh"
#include "vandermonde.cuh"

namespace longseq::ssm::cuda {

namespace diagonal_detail {

using namespace cauchy_detail;  // Cz and its operators, load, store, conj, inv
using Zd = Cz<double>;

LONGSEQ_HD inline Zd zexp(Zd x) {
  double m = exp(x.re);
  return {m * cos(x.im), m * sin(x.im)};
}
// exp(x) - 1 without cancellation: expm1(re) cos(im) - 2 sin^2(im/2) + i exp(re) sin(im) (as the host ZOH).
LONGSEQ_HD inline Zd zexpm1(Zd x) {
  double sh = sin(0.5 * x.im);
  return {expm1(x.re) * cos(x.im) - 2 * sh * sh, exp(x.re) * sin(x.im)};
}
LONGSEQ_HD inline Zd zlog(Zd x) { return {log(hypot(x.re, x.im)), atan2(x.im, x.re)}; }
LONGSEQ_HD inline Zd real(double r) { return {r, 0.0}; }

// The host DiscreteMode's fields, on the device.
struct Mode {
  Zd log_dA, dB, dlog_dA_da, dlog_dA_ddt, ddB_da, ddB_ddt;
};

template <class Disc>
inline constexpr bool has_device_form = std::is_same_v<Disc, ZOH> || std::is_same_v<Disc, Bilinear>;

// Disc::apply(a, dt) of discretization.hpp, for the policies that have a device form (ZOH, Bilinear).
template <class Disc>
LONGSEQ_HD inline Mode discretize(Zd a, double dt) {
  static_assert(has_device_form<Disc>, "ssm::cuda::discretize: this Discretization has no device form (ZOH, Bilinear)");
  Zd x = scale(dt, a);
  Mode m;
  if constexpr (std::is_same_v<Disc, ZOH>) {
    Zd em1 = zexpm1(x), ex = em1 + real(1.0);
    m.log_dA = x;
    m.dlog_dA_da = real(dt);
    m.dlog_dA_ddt = a;
    m.dB = em1 * inv(a);
    // d/da (exp(dt a) - 1)/a = dt^2 (x e^x - e^x + 1) / x^2; the series keeps small |x| accurate.
    Zd g;
    if (hypot(x.re, x.im) < 0.1) {
      Zd term = real(1.0), sum = real(0.0);
      double fact = 2.0;  // (k+2)!
      for (int k = 0; k < 14; ++k) {
        sum = sum + scale(double(k + 1) / fact, term);
        term = term * x;
        fact *= double(k + 3);
      }
      g = sum;
    } else {
      g = (x * ex - em1) * inv(x * x);
    }
    m.ddB_da = scale(dt * dt, g);
    m.ddB_ddt = ex;
  } else {
    Zd h = scale(0.5, x), den = real(1.0) - h;
    // 2 atanh(x/2) = log((1 + x/2) / (1 - x/2)).
    m.log_dA = zlog((real(1.0) + h) * inv(den));
    Zd dlog = inv(real(1.0) - scale(0.25, x * x));
    m.dlog_dA_da = scale(dt, dlog);
    m.dlog_dA_ddt = a * dlog;
    m.dB = scale(dt, inv(den));
    m.ddB_da = scale(0.5 * dt * dt, inv(den * den));
    m.ddB_ddt = inv(den * den);
  }
  return m;
}

// p[i] += v as T, read and written once (the gradient of one element has one writer).
template <class T, class V>
LONGSEQ_HD inline void add_to(T* p, index_t i, V v) {
  p[i] = T(V(p[i]) + v);
}
template <class T, class V>
LONGSEQ_HD inline void add_to(T* p, index_t i, Cz<V> v) {
  add_to(p, 2 * i, v.re);
  add_to(p, 2 * i + 1, v.im);
}

// Per channel h: dt's contributions of its modes, times d dt / d log_dt = dt.
template <class T>
struct DtGrad {
  using A = accum_t<T>;
  const T* log_dt;
  const A* gdt;
  index_t M;
  T* log_dt_grad;
  LONGSEQ_HD void operator()(index_t h) const {
    double g = 0;
    for (index_t n = 0; n < M; ++n) g += double(gdt[h * M + n]);
    add_to(log_dt_grad, h, exp(double(log_dt[h])) * g);
  }
};

}  // namespace diagonal_detail

// K (C, H, L) from the saved form (coef (C, H, M, 2), log_z (H, M, 2) in A = accum_t<T>): the Vandermonde
// sums in A, written to K directly when T is A, else into s.K and rounded to T once.
template <class T>
void diagonal_vandermonde_forward(Context<device::cuda>& ctx, DeviceDiagonalSaved<T, device::cuda>& s, index_t C,
                                  index_t H, index_t M, TensorView<T, device::cuda> K) {
  using A = accum_t<T>;
  index_t L = K.size(2);
  if constexpr (std::is_same_v<T, A>) {
    vandermonde_forward<A>(ctx.stream(), s.coef.data(), s.log_z.data(), C, H, M, L, s.scale, K.data);
  } else {
    s.K.resize(Shape{C, H, L});
    vandermonde_forward<A>(ctx.stream(), s.coef.data(), s.log_z.data(), C, H, M, L, s.scale, s.K.data());
    ops::copy<T, A>(ctx, TensorView<const A, device::cuda>(s.K.view()), K);
  }
}

// g_coef (C, H, M, 2) and g_log_z (H, M, 2), written, from dK (C, H, L) (converted to A first if T is narrower).
template <class T>
void diagonal_vandermonde_backward(Context<device::cuda>& ctx, DeviceDiagonalSaved<T, device::cuda>& s, index_t C,
                                   index_t H, index_t M, TensorView<const T, device::cuda> dK, accum_t<T>* g_coef,
                                   accum_t<T>* g_log_z) {
  using A = accum_t<T>;
  index_t L = dK.size(2);
  if constexpr (std::is_same_v<T, A>) {
    vandermonde_backward<A>(ctx.stream(), s.coef.data(), s.log_z.data(), dK.data, C, H, M, L, s.scale, g_coef, g_log_z);
  } else {
    auto dKa = ctx.scratch<A>(std::size_t(C * H * L));
    ops::copy<A, T>(ctx, dK, TensorView<A, device::cuda>(dKa.data(), dK.shape));
    vandermonde_backward<A>(ctx.stream(), s.coef.data(), s.log_z.data(), dKa.data(), C, H, M, L, s.scale, g_coef,
                            g_log_z);
  }
}


// The launch shape S4D, DSS and DLR share. Sizes s for Ch kernel channels over H x M modes (aux_width
// derivatives per mode; 0 keeps none), runs the parameterization's form once per mode, then the Vandermonde
// sums into K. make_form(coef, log_z, aux) builds the per-mode op over s's buffers, which exist only once
// sized here.
template <class T, class MakeForm>
void diagonal_kernel_forward(Context<device::cuda>& ctx, DeviceDiagonalSaved<T, device::cuda>& s, index_t Ch,
                             index_t H, index_t M, index_t aux_width, accum_t<T> scale, TensorView<T, device::cuda> K,
                             MakeForm&& make_form, const char* name) {
  s.coef.resize(Shape{Ch, H, M, 2});
  s.log_z.resize(Shape{H, M, 2});
  if (aux_width > 0) s.aux.resize(Shape{H, M, aux_width});
  s.scale = scale;
  longseq::cuda::for_each(ctx.stream(), H * M, make_form(s.coef.data(), s.log_z.data(), s.aux.data()), name);
  diagonal_vandermonde_forward<T>(ctx, s, Ch, H, M, K);
}

// The backward's shared start: checks that s holds a forward of this shape (layer names the parameterization
// in the error), takes the form's gradients g_coef (Ch, H, M, 2) and g_log_z (H, M, 2) from the Vandermonde
// sums, and hands them to chain(g_coef, g_log_z), which launches the parameterization's chain rule while the
// scratch is alive.
template <class T, class Chain>
void diagonal_kernel_backward(Context<device::cuda>& ctx, DeviceDiagonalSaved<T, device::cuda>& s, index_t Ch,
                              index_t H, index_t M, index_t aux_width, TensorView<const T, device::cuda> dK,
                              const char* layer, Chain&& chain) {
  using A = accum_t<T>;
  LONGSEQ_CHECK(s.log_z.shape() == (Shape{H, M, 2}) && (aux_width == 0 || s.aux.shape() == (Shape{H, M, aux_width})),
                layer, ": kernel_backward needs the Saved of a forward call");
  auto g_coef = ctx.scratch<A>(std::size_t(2 * Ch * H * M));
  auto g_log_z = ctx.scratch<A>(std::size_t(2 * H * M));
  diagonal_vandermonde_backward<T>(ctx, s, Ch, H, M, dK, g_coef.data(), g_log_z.data());
  chain(static_cast<const A*>(g_coef.data()), static_cast<const A*>(g_log_z.data()));
}

}  // namespace longseq::ssm::cuda
