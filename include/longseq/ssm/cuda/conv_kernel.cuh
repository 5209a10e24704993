// ConvKernel on the device: the kernel is the first L taps of its parameter (a copy op), the penalty per row,
// and the backward adding dK and the penalty's gradient to every tap, each as a device op.
#pragma once
#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../conv_kernel.hpp"
#include "diagonal.cuh"

namespace longseq::ssm {

namespace cuda::conv_kernel_detail {

// K[r, l] = kernel[r, l] for l < L (the parameter has l_max taps per row).
template <class T>
struct Taps {
  const T* kernel;
  index_t L, l_max;
  T* K;
  LONGSEQ_HD void operator()(index_t i) const { K[i] = kernel[(i / L) * l_max + i % L]; }
};

// The penalty of row r, summed in double in the host's order.
template <class T>
struct RowPenalty {
  const T* kernel;
  index_t l_max;
  double decay, smooth;
  double* out;
  LONGSEQ_HD void operator()(index_t r) const {
    const T* k = kernel + r * l_max;
    double p = 0;
    for (index_t l = 0; l < l_max; ++l) {
      double w = double(l) / double(l_max), kl = double(k[l]);
      p += decay * w * w * kl * kl;
      if (l + 1 < l_max) {
        double d = double(k[l + 1]) - kl;
        p += smooth * d * d;
      }
    }
    out[r] = p;
  }
};

// Per tap (r, l): grad += dK[r, l] (l < L), then the penalty's gradient, as the host adds them.
template <class T>
struct TapGrads {
  const T *kernel, *dK;
  index_t L, l_max;
  double decay, smooth;
  T* grad;
  LONGSEQ_HD void operator()(index_t i) const {
    index_t r = i / l_max, l = i % l_max;
    if (l < L) grad[i] = T(accum_t<T>(grad[i]) + accum_t<T>(dK[r * L + l]));
    if (decay == 0 && smooth == 0) return;
    const T* k = kernel + r * l_max;
    double w = double(l) / double(l_max), kl = double(k[l]);
    double d = 2 * decay * w * w * kl;
    if (l + 1 < l_max) d -= 2 * smooth * (double(k[l + 1]) - kl);
    if (l > 0) d += 2 * smooth * (kl - double(k[l - 1]));
    grad[i] = T(accum_t<T>(grad[i]) + accum_t<T>(d));
  }
};

}  // namespace cuda::conv_kernel_detail

// The penalty stays on the device (Saved::penalty_rows, one value per (c, h) row) so that no step waits on a copy;
// Saved::penalty is the host's.
template <class T>
void device_kernel_forward(Context<device::cuda>& ctx, ConvKernel<T, device::cuda>& k, index_t L,
                           TensorView<T, device::cuda> K, typename ConvKernel<T, device::cuda>::Saved& s) {
  namespace cd = cuda::conv_kernel_detail;
  index_t rows = k.cfg.channels * k.cfg.H;
  longseq::cuda::for_each(ctx.stream(), rows * L, cd::Taps<T>{k.kernel.value.data, L, k.cfg.l_max, K.data},
                          "ssm::conv_kernel_taps");
  if (k.cfg.decay == 0 && k.cfg.smooth == 0) return;
  s.penalty_rows.resize(Shape{rows});
  longseq::cuda::for_each(
      ctx.stream(), rows,
      cd::RowPenalty<T>{k.kernel.value.data, k.cfg.l_max, k.cfg.decay, k.cfg.smooth, s.penalty_rows.data()},
      "ssm::conv_kernel_penalty");
}

template <class T>
void device_kernel_backward(Context<device::cuda>& ctx, ConvKernel<T, device::cuda>& k,
                            typename ConvKernel<T, device::cuda>::Saved& s, TensorView<const T, device::cuda> dK) {
  index_t rows = k.cfg.channels * k.cfg.H;
  longseq::cuda::for_each(ctx.stream(), rows * k.cfg.l_max,
                          cuda::conv_kernel_detail::TapGrads<T>{k.kernel.value.data, dK.data, s.L, k.cfg.l_max,
                                                                k.cfg.decay, k.cfg.smooth, k.kernel.grad.data},
                          "ssm::conv_kernel_grads");
}

}  // namespace longseq::ssm
