// DSS on the device: the factor f of every mode (ZOH's dB for the exp variant, 1 / (lambda sum_k e^{k lambda dt})
// for the softmax one) as a device op in place of DSS::diagonal's loop, the Vandermonde sums, and the chain rule
// of DSS::diagonal_backward as device ops (per mode, then summed over the channels for the shared Lambda and
// over the modes for each channel's dt).
#pragma once
#include "../dss.hpp"
#include "diagonal.cuh"

namespace longseq::ssm {

namespace cuda::dss_detail {

using namespace diagonal_detail;

// Entries of aux (H, N, 6) per mode: f, df/dlambda, df/ddt.
inline constexpr index_t aux_width = 6;

template <DSSVariant V>
LONGSEQ_HD inline Zd lambda(double re, double im) {
  return {V == DSSVariant::exp ? -exp(re) : re, im};
}

// Per (h, n): log_z = lambda dt, coef = W f (every kernel channel) and f with its derivatives. The softmax
// variant sums its normalization over the L powers one term at a time in double (exact exponentials, no
// rescaling: like the host's, a growing mode must stay below double's exponent range).
template <class T, DSSVariant V>
struct Form {
  using A = accum_t<T>;
  const T *log_dt, *Lambda_re, *Lambda_im, *W;
  index_t Ch, H, N, L;
  A *coef, *log_z, *aux;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t h = i / N, n = i % N;
    double dt = exp(double(log_dt[h]));
    Zd l = lambda<V>(double(Lambda_re[n]), double(Lambda_im[n])), x = scale(dt, l), f, dfl, dfdt;
    if constexpr (V == DSSVariant::exp) {
      Mode m = discretize<ZOH>(l, dt);
      f = m.dB;
      dfl = m.ddB_da;
      dfdt = m.ddB_ddt;
    } else {
      Zd S = real(0.0), S1 = real(0.0);
      for (index_t k = 0; k < L; ++k) {
        Zd p = zexp(scale(double(k), x));
        S = S + p;
        S1 = S1 + scale(double(k), p);
      }
      f = inv(l * S);
      Zd q = S1 * inv(S);
      dfl = real(0.0) - f * inv(l) - scale(dt, f * q);
      dfdt = real(0.0) - f * q * l;
    }
    store(log_z, i, x);
    for (index_t c = 0; c < Ch; ++c) store(coef, c * H * N + i, load<double>(W, c * H * N + i) * f);
    A* a = aux + aux_width * i;
    store(a, 0, f);
    store(a, 1, dfl);
    store(a, 2, dfdt);
  }
};

// Per (h, n): W's grad (accumulated), this channel's contributions to lambda's and dt's gradients (written).
template <class T, DSSVariant V>
struct ModeGrads {
  using A = accum_t<T>;
  const T *log_dt, *Lambda_re, *Lambda_im, *W;
  const A *aux, *g_coef, *g_log_z;
  index_t Ch, H, N;
  T* W_grad;
  A *gl, *gdt;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t h = i / N, n = i % N;
    double dt = exp(double(log_dt[h]));
    Zd l = lambda<V>(double(Lambda_re[n]), double(Lambda_im[n]));
    const A* a = aux + aux_width * i;
    Zd f = load<double>(a, 0), dfl = load<double>(a, 1), dfdt = load<double>(a, 2), gf = real(0.0);
    for (index_t c = 0; c < Ch; ++c) {
      Zd gco = load<double>(g_coef, c * H * N + i);
      add_to(W_grad, c * H * N + i, conj(f) * gco);
      gf = gf + conj(load<double>(W, c * H * N + i)) * gco;
    }
    Zd glz = load<double>(g_log_z, i);
    store(gl, i, scale(dt, glz) + conj(dfl) * gf);
    gdt[i] = A((conj(l) * glz + conj(dfdt) * gf).re);
  }
};

// Per mode n: the channels' lambda contributions summed into Lambda_re's and Lambda_im's grads.
template <class T, DSSVariant V>
struct LambdaGrads {
  using A = accum_t<T>;
  const T* Lambda_re;
  const A* gl;
  index_t H, N;
  T *Lambda_re_grad, *Lambda_im_grad;
  LONGSEQ_HD void operator()(index_t n) const {
    Zd g = real(0.0);
    for (index_t h = 0; h < H; ++h) g = g + load<double>(gl, h * N + n);
    double dre = V == DSSVariant::exp ? -exp(double(Lambda_re[n])) : 1.0;
    add_to(Lambda_re_grad, n, dre * g.re);
    add_to(Lambda_im_grad, n, g.im);
  }
};

}  // namespace cuda::dss_detail

template <class T, DSSVariant V>
void device_kernel_forward(Context<device::cuda>& ctx, DSS<T, V, device::cuda>& k, index_t L,
                           TensorView<T, device::cuda> K, DeviceDiagonalSaved<T, device::cuda>& s) {
  namespace dd = cuda::dss_detail;
  using A = accum_t<T>;
  index_t Ch = k.cfg.channels, H = k.cfg.H, N = k.cfg.N;
  auto form = [&](A* coef, A* log_z, A* aux) {
    return dd::Form<T, V>{k.log_dt.value.data, k.Lambda_re.value.data, k.Lambda_im.value.data, k.W.value.data,
                          Ch, H, N, L, coef, log_z, aux};
  };
  cuda::diagonal_kernel_forward<T>(ctx, s, Ch, H, N, dd::aux_width, A(1), K, form, "ssm::dss_form");
}

template <class T, DSSVariant V>
void device_kernel_backward(Context<device::cuda>& ctx, DSS<T, V, device::cuda>& k,
                            DeviceDiagonalSaved<T, device::cuda>& s, TensorView<const T, device::cuda> dK) {
  namespace dd = cuda::dss_detail;
  using A = accum_t<T>;
  index_t Ch = k.cfg.channels, H = k.cfg.H, N = k.cfg.N, HN = H * N;
  cuda::diagonal_kernel_backward<T>(ctx, s, Ch, H, N, dd::aux_width, dK, "DSS", [&](const A* g_coef, const A* g_log_z) {
    auto gl = ctx.scratch<A>(std::size_t(2 * HN));
    auto gdt = ctx.scratch<A>(std::size_t(HN));
    cudaStream_t st = ctx.stream();
    longseq::cuda::for_each(st, HN,
                            dd::ModeGrads<T, V>{k.log_dt.value.data, k.Lambda_re.value.data, k.Lambda_im.value.data,
                                                k.W.value.data, s.aux.data(), g_coef, g_log_z, Ch, H, N,
                                                k.W.grad.data, gl.data(), gdt.data()},
                            "ssm::dss_mode_grads");
    longseq::cuda::for_each(st, N,
                            dd::LambdaGrads<T, V>{k.Lambda_re.value.data, gl.data(), H, N, k.Lambda_re.grad.data,
                                                  k.Lambda_im.grad.data},
                            "ssm::dss_lambda_grads");
    // dt's gradient has S4D's shape: per channel, the modes' contributions times dt.
    longseq::cuda::for_each(st, H, dd::DtGrad<T>{k.log_dt.value.data, gdt.data(), N, k.log_dt.grad.data},
                            "ssm::dss_dt_grad");
  });
}

}  // namespace longseq::ssm
