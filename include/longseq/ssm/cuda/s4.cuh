// S4 on the device: the step sizes and poles from the parameters (a device op in place of S4::modes' loop),
// the kernel through the Cauchy / Woodbury code and cuFFT of s4_kernel.cuh, and the chain rule from its
// gradients back to log_dt, log_A_real and A_imag. The sums and FFTs run in accum_t<T> (float for bf16).
#pragma once
#include <type_traits>

#include "../../ops/cuda/elementwise.cuh"
#include "../s4.hpp"
#include "diagonal.cuh"
#include "s4_kernel.cuh"

namespace longseq::ssm {

namespace cuda::s4_detail {

using diagonal_detail::add_to;

// dt (H) = exp(log_dt) and lambda (S, M, 2) = -exp(log_A_real) + i A_imag, in A.
template <class T>
struct Inputs {
  using A = accum_t<T>;
  const T *log_dt, *log_A_real, *A_imag;
  index_t H, SM;
  A *dt, *lambda;
  LONGSEQ_HD void operator()(index_t i) const {
    if (i < H) dt[i] = A(exp(double(log_dt[i])));
    if (i < SM) {
      lambda[2 * i] = A(-exp(double(log_A_real[i])));
      lambda[2 * i + 1] = A(A_imag[i]);
    }
  }
};

// log_dt's grad += dt g_dt; log_A_real's += -exp(log_A_real) Re g_lambda; A_imag's += Im g_lambda.
template <class T>
struct ParamGrads {
  using A = accum_t<T>;
  const A *dt, *g_dt, *g_lambda;
  const T* log_A_real;
  index_t H, SM;
  T *log_dt_grad, *log_A_real_grad, *A_imag_grad;
  LONGSEQ_HD void operator()(index_t i) const {
    if (i < H) add_to(log_dt_grad, i, dt[i] * g_dt[i]);
    if (i < SM) {
      add_to(log_A_real_grad, i, A(-exp(double(log_A_real[i]))) * g_lambda[2 * i]);
      add_to(A_imag_grad, i, g_lambda[2 * i + 1]);
    }
  }
};

// y[i] += x[i] (x in A, y in T).
template <class T>
struct AddGrad {
  using A = accum_t<T>;
  const A* x;
  T* y;
  LONGSEQ_HD void operator()(index_t i) const { add_to(y, i, x[i]); }
};

// The parameter views the device S4 code takes, in A: P, B and C as they are when T is A, else converted copies.
template <class T>
struct Operands {
  using A = accum_t<T>;
  longseq::cuda::Scratch<A> dt, lambda, conv;  // conv holds P, B, C converted (T narrower than A)
  TensorView<const A, device::cuda> dtv, lamv, Pv, Bv, Cv;
  Operands(Context<device::cuda>& ctx, S4<T, device::cuda>& k)
      : dt(ctx.scratch<A>(std::size_t(k.cfg.H))),
        lambda(ctx.scratch<A>(std::size_t(2 * k.S * k.M))),
        conv(ctx.scratch<A>(std::is_same_v<T, A> ? 0 : std::size_t(k.P.value.numel() + k.B.value.numel() +
                                                                     k.C.value.numel()))) {
    index_t H = k.cfg.H, SM = k.S * k.M;
    longseq::cuda::for_each(ctx.stream(), H > SM ? H : SM,
                            Inputs<T>{k.log_dt.value.data, k.log_A_real.value.data, k.A_imag.value.data, H, SM,
                                      dt.data(), lambda.data()},
                            "ssm::s4_inputs");
    dtv = TensorView<const A, device::cuda>(dt.data(), Shape{H});
    lamv = TensorView<const A, device::cuda>(lambda.data(), Shape{k.S, k.M, 2});
    if constexpr (std::is_same_v<T, A>) {
      Pv = k.P.value;
      Bv = k.B.value;
      Cv = k.C.value;
    } else {
      A* p = conv.data();
      Pv = convert(ctx, k.P.value, p);
      Bv = convert(ctx, k.B.value, p);
      Cv = convert(ctx, k.C.value, p);
    }
  }
  static TensorView<const A, device::cuda> convert(Context<device::cuda>& ctx, TensorView<T, device::cuda> x, A*& p) {
    TensorView<A, device::cuda> y(p, x.shape);
    ops::copy<A, T>(ctx, TensorView<const T, device::cuda>(x), y);
    p += x.numel();
    return y;
  }
};

}  // namespace cuda::s4_detail

template <class T>
void device_kernel_forward(Context<device::cuda>& ctx, S4<T, device::cuda>& k, index_t L,
                           TensorView<T, device::cuda> K, typename S4<T, device::cuda>::Saved& s) {
  using A = accum_t<T>;
  static_assert(std::is_same_v<A, float> || std::is_same_v<A, double>, "S4 on the device: T must be float, double, bf16 or half");
  cuda::s4_detail::Operands<T> in(ctx, k);
  if constexpr (std::is_same_v<T, A>) {
    cuda::s4_kernel_forward<A>(ctx, in.dtv, in.lamv, in.Pv, in.Bv, in.Cv, k.cfg.l_max, K);
  } else {
    s.work.resize(K.shape);
    cuda::s4_kernel_forward<A>(ctx, in.dtv, in.lamv, in.Pv, in.Bv, in.Cv, k.cfg.l_max, s.work.view());
    ops::copy<T, A>(ctx, TensorView<const A, device::cuda>(s.work.view()), K);
  }
  (void)L;
}

template <class T>
void device_kernel_backward(Context<device::cuda>& ctx, S4<T, device::cuda>& k, typename S4<T, device::cuda>::Saved&,
                            TensorView<const T, device::cuda> dK) {
  using A = accum_t<T>;
  namespace sd = cuda::s4_detail;
  sd::Operands<T> in(ctx, k);
  index_t H = k.cfg.H, SM = k.S * k.M;
  auto g_dt = ctx.scratch<A>(std::size_t(H));
  auto g_lambda = ctx.scratch<A>(std::size_t(2 * SM)), g_P = ctx.scratch<A>(std::size_t(2 * SM)),
       g_B = ctx.scratch<A>(std::size_t(2 * SM));
  auto g_C = ctx.scratch<A>(std::size_t(k.C.value.numel()));
  using MV = TensorView<A, device::cuda>;
  TensorView<const A, device::cuda> dKa;
  longseq::cuda::Scratch<A> dK_conv = ctx.scratch<A>(std::is_same_v<T, A> ? 0 : std::size_t(dK.numel()));
  if constexpr (std::is_same_v<T, A>) {
    dKa = dK;
  } else {
    ops::copy<A, T>(ctx, dK, MV(dK_conv.data(), dK.shape));
    dKa = TensorView<const A, device::cuda>(dK_conv.data(), dK.shape);
  }
  cuda::s4_kernel_backward<A>(ctx, in.dtv, in.lamv, in.Pv, in.Bv, in.Cv, k.cfg.l_max, dKa, MV(g_dt.data(), Shape{H}),
                              MV(g_lambda.data(), in.lamv.shape), MV(g_P.data(), in.lamv.shape),
                              MV(g_B.data(), in.lamv.shape), MV(g_C.data(), k.C.value.shape));
  cudaStream_t st = ctx.stream();
  longseq::cuda::for_each(st, H > SM ? H : SM,
                          sd::ParamGrads<T>{in.dt.data(), g_dt.data(), g_lambda.data(), k.log_A_real.value.data, H, SM,
                                            k.log_dt.grad.data, k.log_A_real.grad.data, k.A_imag.grad.data},
                          "ssm::s4_param_grads");
  longseq::cuda::for_each(st, 2 * SM, sd::AddGrad<T>{g_P.data(), k.P.grad.data}, "ssm::s4_p_grad");
  longseq::cuda::for_each(st, 2 * SM, sd::AddGrad<T>{g_B.data(), k.B.grad.data}, "ssm::s4_b_grad");
  longseq::cuda::for_each(st, k.C.value.numel(), sd::AddGrad<T>{g_C.data(), k.C.grad.data}, "ssm::s4_c_grad");
}

}  // namespace longseq::ssm
