// S4D on the device: the discretized form per mode (a device op in place of S4D::diagonal's loop), the
// Vandermonde sums, and the chain rule of S4D::diagonal_backward as device ops: per mode, then summed over the
// channels sharing a copy of (A, B) and over the modes of each channel's dt.
#pragma once
#include "../s4d.hpp"
#include "diagonal.cuh"

namespace longseq::ssm {

namespace cuda::s4d_detail {

using namespace diagonal_detail;

// Entries of aux (H, M, 10) per mode: dB, dlog_dA/da, dlog_dA/ddt, ddB/da, ddB/ddt.
inline constexpr index_t aux_width = 10;

// Per (h, n): log_z, coef (every kernel channel) and the saved derivatives.
template <class T, class Disc>
struct Form {
  using A = accum_t<T>;
  const T *log_dt, *log_A_real, *A_imag, *B, *C;
  index_t Ch, H, S, M;
  A *coef, *log_z, *aux;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t h = i / M, n = i % M, sn = (h % S) * M + n;
    double dt = exp(double(log_dt[h]));
    Zd a = {-exp(double(log_A_real[sn])), double(A_imag[sn])};
    Mode m = discretize<Disc>(a, dt);
    store(log_z, i, m.log_dA);
    Zd bd = load<double>(B, sn) * m.dB;
    for (index_t c = 0; c < Ch; ++c) store(coef, c * H * M + i, load<double>(C, c * H * M + i) * bd);
    A* x = aux + aux_width * i;
    store(x, 0, m.dB);
    store(x, 1, m.dlog_dA_da);
    store(x, 2, m.dlog_dA_ddt);
    store(x, 3, m.ddB_da);
    store(x, 4, m.ddB_ddt);
  }
};

// Per (h, n): C's grad (accumulated), and B's, a's and dt's contributions of this channel (written to gB, ga,
// gdt) from the form's gradients g_coef, g_log_z.
template <class T>
struct ModeGrads {
  using A = accum_t<T>;
  const T *B, *C;
  const A *aux, *g_coef, *g_log_z;
  index_t Ch, H, S, M;
  T* C_grad;
  A *gB, *ga, *gdt;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t h = i / M, n = i % M, sn = (h % S) * M + n;
    const A* x = aux + aux_width * i;
    Zd dB = load<double>(x, 0), dlda = load<double>(x, 1), dlddt = load<double>(x, 2), dBda = load<double>(x, 3),
       dBddt = load<double>(x, 4);
    Zd b = load<double>(B, sn), gdB = real(0.0), gb = real(0.0);
    for (index_t c = 0; c < Ch; ++c) {
      Zd gco = load<double>(g_coef, c * H * M + i), cc = load<double>(C, c * H * M + i);
      add_to(C_grad, c * H * M + i, conj(b * dB) * gco);
      gb = gb + conj(cc * dB) * gco;
      gdB = gdB + conj(cc * b) * gco;
    }
    Zd glz = load<double>(g_log_z, i);
    store(gB, i, gb);
    store(ga, i, conj(dlda) * glz + conj(dBda) * gdB);
    gdt[i] = A((conj(dlddt) * glz + conj(dBddt) * gdB).re);
  }
};

// Per copy mode (s, n): the channels h = s, s + S, ... summed into B's, log_A_real's and A_imag's grads.
template <class T>
struct CopyGrads {
  using A = accum_t<T>;
  const T* log_A_real;
  const A *gB, *ga;
  index_t H, S, M;
  T *B_grad, *log_A_real_grad, *A_imag_grad;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t s = i / M, n = i % M;
    Zd b = real(0.0), a = real(0.0);
    for (index_t h = s; h < H; h += S) {
      b = b + load<double>(gB, h * M + n);
      a = a + load<double>(ga, h * M + n);
    }
    add_to(B_grad, i, b);
    add_to(log_A_real_grad, i, -exp(double(log_A_real[i])) * a.re);
    add_to(A_imag_grad, i, a.im);
  }
};

}  // namespace cuda::s4d_detail

template <class T, class Disc>
void device_kernel_forward(Context<device::cuda>& ctx, S4D<T, Disc, device::cuda>& k, index_t L,
                           TensorView<T, device::cuda> K, DeviceDiagonalSaved<T, device::cuda>& s) {
  namespace dd = cuda::s4d_detail;
  using A = accum_t<T>;
  index_t Ch = k.cfg.channels, H = k.cfg.H, M = k.M;
  auto form = [&](A* coef, A* log_z, A* aux) {
    return dd::Form<T, Disc>{k.log_dt.value.data, k.log_A_real.value.data, k.A_imag.value.data, k.B.value.data,
                             k.C.value.data, Ch, H, k.S, M, coef, log_z, aux};
  };
  cuda::diagonal_kernel_forward<T>(ctx, s, Ch, H, M, dd::aux_width, A(2), K, form, "ssm::s4d_form");
  (void)L;
}

template <class T, class Disc>
void device_kernel_backward(Context<device::cuda>& ctx, S4D<T, Disc, device::cuda>& k,
                            DeviceDiagonalSaved<T, device::cuda>& s, TensorView<const T, device::cuda> dK) {
  namespace dd = cuda::s4d_detail;
  using A = accum_t<T>;
  index_t Ch = k.cfg.channels, H = k.cfg.H, M = k.M, HM = H * M;
  cuda::diagonal_kernel_backward<T>(ctx, s, Ch, H, M, dd::aux_width, dK, "S4D", [&](const A* g_coef, const A* g_log_z) {
    auto gB = ctx.scratch<A>(std::size_t(2 * HM)), ga = ctx.scratch<A>(std::size_t(2 * HM));
    auto gdt = ctx.scratch<A>(std::size_t(HM));
    cudaStream_t st = ctx.stream();
    longseq::cuda::for_each(st, HM,
                            dd::ModeGrads<T>{k.B.value.data, k.C.value.data, s.aux.data(), g_coef, g_log_z, Ch, H,
                                             k.S, M, k.C.grad.data, gB.data(), ga.data(), gdt.data()},
                            "ssm::s4d_mode_grads");
    longseq::cuda::for_each(st, k.S * M,
                            dd::CopyGrads<T>{k.log_A_real.value.data, gB.data(), ga.data(), H, k.S, M,
                                             k.B.grad.data, k.log_A_real.grad.data, k.A_imag.grad.data},
                            "ssm::s4d_copy_grads");
    longseq::cuda::for_each(st, H, dd::DtGrad<T>{k.log_dt.value.data, gdt.data(), M, k.log_dt.grad.data},
                            "ssm::s4d_dt_grad");
  });
}

}  // namespace longseq::ssm
