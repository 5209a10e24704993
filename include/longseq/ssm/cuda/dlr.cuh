// DLR on the device: its form (log_z = -Lambda_r^2 + i Lambda_theta, coef = W) as a device op, the Vandermonde
// sums, and DLR::diagonal_backward as device ops (W's grad per element, Lambda's summed over the channels).
#pragma once
#include "../dlr.hpp"
#include "diagonal.cuh"

namespace longseq::ssm {

namespace cuda::dlr_detail {

using namespace diagonal_detail;

// Per (h, n): log_z and coef = W for every kernel channel.
template <class T>
struct Form {
  using A = accum_t<T>;
  const T *Lambda_r, *Lambda_theta, *W;
  index_t Ch, H, N;
  A *coef, *log_z;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t n = i % N;
    A r = A(Lambda_r[n]);
    store(log_z, i, Cz<A>{-r * r, A(Lambda_theta[n])});
    for (index_t c = 0; c < Ch; ++c) store(coef, c * H * N + i, load<A>(W, c * H * N + i));
  }
};

// Per element of W (C, H, N): W's grad += g_coef.
template <class T>
struct WGrad {
  using A = accum_t<T>;
  const A* g_coef;
  T* W_grad;
  LONGSEQ_HD void operator()(index_t i) const { add_to(W_grad, i, load<A>(g_coef, i)); }
};

// Per mode n: the channels' log_z gradients summed into Lambda_r's and Lambda_theta's grads.
template <class T>
struct LambdaGrads {
  using A = accum_t<T>;
  const T* Lambda_r;
  const A* g_log_z;
  index_t H, N;
  T *Lambda_r_grad, *Lambda_theta_grad;
  LONGSEQ_HD void operator()(index_t n) const {
    Cz<A> g = {A(0), A(0)};
    for (index_t h = 0; h < H; ++h) g = g + load<A>(g_log_z, h * N + n);
    add_to(Lambda_r_grad, n, A(-2) * A(Lambda_r[n]) * g.re);
    add_to(Lambda_theta_grad, n, g.im);
  }
};

}  // namespace cuda::dlr_detail

template <class T>
void device_kernel_forward(Context<device::cuda>& ctx, DLR<T, device::cuda>& k, index_t L,
                           TensorView<T, device::cuda> K, DeviceDiagonalSaved<T, device::cuda>& s) {
  using A = accum_t<T>;
  index_t Ch = k.cfg.channels, H = k.cfg.H, N = k.cfg.N;
  auto form = [&](A* coef, A* log_z, A*) {
    return cuda::dlr_detail::Form<T>{k.Lambda_r.value.data, k.Lambda_theta.value.data, k.W.value.data, Ch, H, N,
                                     coef, log_z};
  };
  // No per-mode derivatives: the form is linear in W and in log_z's parameters.
  cuda::diagonal_kernel_forward<T>(ctx, s, Ch, H, N, 0, A(1), K, form, "ssm::dlr_form");
  (void)L;
}

template <class T>
void device_kernel_backward(Context<device::cuda>& ctx, DLR<T, device::cuda>& k,
                            DeviceDiagonalSaved<T, device::cuda>& s, TensorView<const T, device::cuda> dK) {
  using A = accum_t<T>;
  index_t Ch = k.cfg.channels, H = k.cfg.H, N = k.cfg.N;
  cuda::diagonal_kernel_backward<T>(ctx, s, Ch, H, N, 0, dK, "DLR", [&](const A* g_coef, const A* g_log_z) {
    cudaStream_t st = ctx.stream();
    longseq::cuda::for_each(st, Ch * H * N, cuda::dlr_detail::WGrad<T>{g_coef, k.W.grad.data}, "ssm::dlr_w_grad");
    longseq::cuda::for_each(st, N,
                            cuda::dlr_detail::LambdaGrads<T>{k.Lambda_r.value.data, g_log_z, H, N,
                                                             k.Lambda_r.grad.data, k.Lambda_theta.grad.data},
                            "ssm::dlr_lambda_grads");
  });
}

}  // namespace longseq::ssm
