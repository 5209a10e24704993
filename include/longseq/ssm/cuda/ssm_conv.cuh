// The device versions of SSMConv's steps (ssm_conv.hpp): time reversal, the skip/GELU tail fused with the layout
// change (skip_gelu.cuh), the shifted reversal of the anti-causal gradient and the input-gradient sum, each
// overloaded on Context<device::cuda>& with the host step's name and arguments. SSMConv itself is one template.
#pragma once
#include <cuda_runtime.h>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../ops/activation.hpp"
#include "../../ops/cuda/elementwise.cuh"
#include "skip_gelu.cuh"
#include "../../ops/cuda/activation.cuh"
#include "../../ops/cuda/dropout.cuh"
#include "../../ops/cuda/fft_conv.cuh"

namespace longseq::ssm::detail {

namespace conv_steps_cuda {

// Rows of length L of a (B, H, L) tensor, one element per index i = r L + l.

// out[r, l] = in[r, L-1-l]: the time reversal.
template <class T>
struct ReverseRows {
  const T* in;
  T* out;
  index_t L;
  __device__ void operator()(index_t i) const {
    index_t r = i / L, l = i % L;
    out[i] = in[r * L + (L - 1 - l)];
  }
};

// y[r, l] += v[r, L-2-l] for l < L-1: the anti-causal part, shifted one step so u[l] is counted once.
template <class T>
struct AddAnticausal {
  T* y;
  const T* v;
  index_t L;
  __device__ void operator()(index_t i) const {
    index_t r = i / L, l = i % L;
    if (l + 1 < L) y[i] = T(accum_t<T>(y[i]) + accum_t<T>(v[r * L + (L - 2 - l)]));
  }
};

// dv[r, j] = dy[r, L-2-j] for j < L-1, dv[r, L-1] = 0: the gradient of the reversed convolution's output.
template <class T>
struct ShiftReverse {
  const T* dy;
  T* dv;
  index_t L;
  __device__ void operator()(index_t i) const {
    index_t r = i / L, j = i % L;
    dv[i] = j + 1 < L ? dy[r * L + (L - 2 - j)] : T(0);
  }
};

// d[r, l] = (d + du)[r, l] (+ du_r[r, L-1-l]): the skip's and the convolutions' input gradients, in the host
// layer's order of summation.
template <class T, bool Bidirectional>
struct SumInputGrads {
  T* d;
  const T* du;
  const T* du_r;
  index_t L;
  __device__ void operator()(index_t i) const {
    accum_t<T> g = accum_t<T>(d[i]) + accum_t<T>(du[i]);
    if constexpr (Bidirectional) {
      index_t r = i / L, l = i % L;
      g += accum_t<T>(du_r[r * L + (L - 1 - l)]);
    }
    d[i] = T(g);
  }
};

}  // namespace conv_steps_cuda

template <class T>
void reverse_rows(Context<device::cuda>& ctx, TensorView<const T, device::cuda> a, TensorView<T, device::cuda> b) {
  index_t L = a.size(2);
  longseq::cuda::for_each(ctx.stream(), a.numel(), conv_steps_cuda::ReverseRows<T>{a.data, b.data, L},
                          "ssm_conv_reverse");
}

// The anti-causal part is added into yt first; the fused kernel then reads the input in the convolution's layout.
template <bool Bidirectional, class T>
void skip_gelu_forward(Context<device::cuda>& ctx, TensorView<T, device::cuda> yt, TensorView<const T, device::cuda> v,
                       TensorView<const T, device::cuda>, TensorView<const T, device::cuda> u,
                       TensorView<const T, device::cuda> Dv, TensorView<T, device::cuda> z,
                       TensorView<T, device::cuda> a, ops::Gelu gelu) {
  if constexpr (Bidirectional)
    longseq::cuda::for_each(ctx.stream(), yt.numel(),
                            conv_steps_cuda::AddAnticausal<T>{yt.data, v.data, yt.size(2)}, "ssm_conv_add_anticausal");
  cuda::skip_gelu_forward<T>(ctx, yt, u, Dv, z, a, gelu);
}

template <class T>
void skip_gelu_backward(Context<device::cuda>& ctx, TensorView<const T, device::cuda> z,
                        TensorView<const T, device::cuda> da, TensorView<const T, device::cuda> u,
                        TensorView<const T, device::cuda> Dv, TensorView<T, device::cuda> Dgrad,
                        TensorView<T, device::cuda> dyt, TensorView<T, device::cuda> ds, ops::Gelu gelu) {
  cuda::skip_gelu_backward<T>(ctx, z, da, u, Dv, dyt, ds, Dgrad, gelu);
}

template <class T>
void shift_reverse(Context<device::cuda>& ctx, TensorView<const T, device::cuda> dy, TensorView<T, device::cuda> dv) {
  longseq::cuda::for_each(ctx.stream(), dy.numel(), conv_steps_cuda::ShiftReverse<T>{dy.data, dv.data, dy.size(2)},
                          "ssm_conv_shift_reverse");
}

// ds (B, H, L) already holds D dyt: the convolutions' gradients are added in place, then the layout changes.
template <bool Bidirectional, class T>
void input_grad(Context<device::cuda>& ctx, TensorView<const T, device::cuda>, TensorView<T, device::cuda> ds,
                TensorView<const T, device::cuda> du, TensorView<const T, device::cuda> du_r,
                TensorView<const T, device::cuda>, TensorView<T, device::cuda> dx) {
  longseq::cuda::for_each(ctx.stream(), ds.numel(),
                          conv_steps_cuda::SumInputGrads<T, Bidirectional>{ds.data, du.data, du_r.data, ds.size(2)},
                          "ssm_conv_input_grad");
  ops::transpose12<T>(ctx, TensorView<const T, device::cuda>(ds), dx);
}

}  // namespace longseq::ssm::detail
