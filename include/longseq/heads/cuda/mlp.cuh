// CUDA ops of heads::Mlp: the decoder's activation and its derivative, in double as on the host.
#pragma once
#include <cuda_runtime.h>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"

namespace longseq::heads::detail {

namespace mlp_cuda {

__device__ inline double act_value(nn::Activation a, double x) {
  switch (a) {
    case nn::Activation::gelu: return 0.5 * x * (1.0 + erf(x * 0.7071067811865476));
    case nn::Activation::gelu_tanh: return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case nn::Activation::relu: return x > 0 ? x : 0.0;
    case nn::Activation::silu: return x / (1.0 + exp(-x));
    case nn::Activation::sigmoid: return 1.0 / (1.0 + exp(-x));
  }
  return x;
}

__device__ inline double act_derivative(nn::Activation a, double x) {
  switch (a) {
    case nn::Activation::gelu:
      return 0.5 * (1.0 + erf(x * 0.7071067811865476)) + x * 0.3989422804014327 * exp(-0.5 * x * x);
    case nn::Activation::gelu_tanh: {
      const double t = tanh(0.7978845608028654 * (x + 0.044715 * x * x * x));
      const double du = 0.7978845608028654 * (1.0 + 3 * 0.044715 * x * x);
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
    }
    case nn::Activation::relu: return x > 0 ? 1.0 : 0.0;
    case nn::Activation::silu: {
      const double s = 1.0 / (1.0 + exp(-x));
      return s * (1.0 + x * (1.0 - s));
    }
    case nn::Activation::sigmoid: {
      const double s = 1.0 / (1.0 + exp(-x));
      return s * (1.0 - s);
    }
  }
  return 1.0;
}

template <class T>
struct Forward {
  nn::Activation a;
  const T* pre;
  T* act;
  __device__ void operator()(index_t i) const { act[i] = T(act_value(a, double(pre[i]))); }
};
template <class T>
struct Backward {
  nn::Activation a;
  const T* pre;
  T* d;
  __device__ void operator()(index_t i) const { d[i] = T(double(d[i]) * act_derivative(a, double(pre[i]))); }
};

}  // namespace mlp_cuda

template <class T>
void mlp_activation_forward(Context<device::cuda>& ctx, nn::Activation a, TensorView<const T, device::cuda> pre,
                            TensorView<T, device::cuda> act) {
  longseq::cuda::for_each(ctx.stream(), pre.numel(), mlp_cuda::Forward<T>{a, pre.data, act.data},
                          "mlp_activation_forward");
}
template <class T>
void mlp_activation_backward(Context<device::cuda>& ctx, nn::Activation a, TensorView<const T, device::cuda> pre,
                             TensorView<T, device::cuda> d) {
  longseq::cuda::for_each(ctx.stream(), pre.numel(), mlp_cuda::Backward<T>{a, pre.data, d.data},
                          "mlp_activation_backward");
}

}  // namespace longseq::heads::detail
