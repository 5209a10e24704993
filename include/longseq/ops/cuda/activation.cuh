// Pointwise activations (gelu, relu, silu, sigmoid, tanh) and the gated linear unit on the GPU.
#pragma once
#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../activation.hpp"
#include "math.cuh"

namespace longseq::ops {

namespace cuda_detail {

// Each activation: f(x) and f'(x) in the accumulator type, the same formulas as the host op.
struct GeluAct {
  Gelu kind;
  template <class W>
  __device__ W f(W x) const {
    if (kind == Gelu::exact) return W(0.5) * x * (W(1) + derf(x * W(0.7071067811865476)));
    const W c = W(0.7978845608028654);  // sqrt(2 / pi)
    return W(0.5) * x * (W(1) + dtanh(c * (x + W(0.044715) * x * x * x)));
  }
  template <class W>
  __device__ W df(W x) const {
    if (kind == Gelu::exact) {
      W cdf = W(0.5) * (W(1) + derf(x * W(0.7071067811865476)));
      W pdf = dexp(W(-0.5) * x * x) * W(0.3989422804014327);  // 1 / sqrt(2 pi)
      return cdf + x * pdf;
    }
    const W c = W(0.7978845608028654);
    W t = dtanh(c * (x + W(0.044715) * x * x * x));
    return W(0.5) * (W(1) + t) + W(0.5) * x * (W(1) - t * t) * c * (W(1) + W(3 * 0.044715) * x * x);
  }
};
struct ReluAct {  // relu'(0) = 0
  template <class W> __device__ W f(W x) const { return x > W(0) ? x : W(0); }
  template <class W> __device__ W df(W x) const { return x > W(0) ? W(1) : W(0); }
};
struct SiluAct {
  template <class W> __device__ W f(W x) const { return x * dsigmoid(x); }
  template <class W> __device__ W df(W x) const {
    W s = dsigmoid(x);
    return s * (W(1) + x * (W(1) - s));
  }
};
struct SigmoidAct {
  template <class W> __device__ W f(W x) const { return dsigmoid(x); }
  template <class W> __device__ W df(W x) const {
    W s = dsigmoid(x);
    return s * (W(1) - s);
  }
};
struct TanhAct {
  template <class W> __device__ W f(W x) const { return dtanh(x); }
  template <class W> __device__ W df(W x) const {
    W t = dtanh(x);
    return W(1) - t * t;
  }
};

template <class T, class Act>
struct ActForward {
  const T* x;
  T* y;
  Act act;
  __device__ void operator()(index_t i) const { y[i] = T(act.f(accum_t<T>(x[i]))); }
};
template <class T, class Act>
struct ActBackward {
  const T* x;
  const T* dy;
  T* dx;
  Act act;
  __device__ void operator()(index_t i) const {
    using W = accum_t<T>;
    dx[i] = T(W(dy[i]) * act.df(W(x[i])));
  }
};

template <class T, class Act>
void act_forward(Context<device::cuda>& ctx, const TensorView<const T, device::cuda>& x,
                 const TensorView<T, device::cuda>& y, Act act, const char* name) {
  expect_contiguous(x, "x");
  expect_contiguous(y, "y");
  expect_same_shape_as(y, x, "y", "x");
  cuda::for_each(ctx.stream(), x.numel(), ActForward<T, Act>{x.data, y.data, act}, name);
}
template <class T, class Act>
void act_backward(Context<device::cuda>& ctx, const TensorView<const T, device::cuda>& x,
                  const TensorView<const T, device::cuda>& dy, const TensorView<T, device::cuda>& dx, Act act,
                  const char* name) {
  expect_contiguous(x, "x");
  expect_contiguous(dx, "dx");
  expect_same_shape_as(dx, x, "dx", "x");
  expect_contiguous(dy, "dy");
  expect_same_shape_as(dy, x, "dy", "x");
  cuda::for_each(ctx.stream(), x.numel(), ActBackward<T, Act>{x.data, dy.data, dx.data, act}, name);
}

template <class T>
struct GluForward {
  const T* x;
  T* y;
  index_t H;
  __device__ void operator()(index_t i) const {
    using W = accum_t<T>;
    index_t r = i / H, h = i % H;
    const T* xr = x + r * 2 * H;
    y[i] = T(W(xr[h]) * dsigmoid(W(xr[H + h])));
  }
};
template <class T>
struct GluBackward {
  const T* x;
  const T* dy;
  T* dx;
  index_t H;
  __device__ void operator()(index_t i) const {
    using W = accum_t<T>;
    index_t r = i / H, h = i % H;
    const T* xr = x + r * 2 * H;
    T* dr = dx + r * 2 * H;
    W a = W(xr[h]), s = dsigmoid(W(xr[H + h])), g = W(dy[i]);
    dr[h] = T(g * s);
    dr[H + h] = T(g * a * s * (W(1) - s));
  }
};

template <class T, class U>
index_t check_glu(const TensorView<const T, device::cuda>& x, const TensorView<U, device::cuda>& y,
                  std::string_view yname) {
  expect_contiguous(x, "x");
  expect_contiguous(y, yname);
  LONGSEQ_CHECK(x.rank() >= 1 && x.size(-1) % 2 == 0, "glu: tensor 'x' has shape ", x.shape,
                ", expected an even last dimension (..., 2H)");
  Shape want = x.shape;
  want.dims[want.rank - 1] /= 2;
  LONGSEQ_CHECK(y.shape == want, "tensor '", yname, "' has shape ", y.shape, ", expected ", want,
                " (the shape of 'x with its last dimension halved')");
  return want.dims[want.rank - 1];
}

}  // namespace cuda_detail

// Same contracts as the host activations: forward(ctx, x, y), backward(ctx, x, dy, dx) with dx written;
// contiguous views of one shape; y may alias x and dx may alias dy.
template <class T>
void gelu_forward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y,
                  Gelu g = Gelu::exact) {
  static_assert(Real<T>, "gelu: T must be float, double, half or bf16");
  cuda_detail::act_forward(ctx, x, y, cuda_detail::GeluAct{g}, "gelu_forward");
}
template <class T>
void gelu_backward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, cuda_detail::CudaIn<T> dy,
                   TensorView<T, device::cuda> dx, Gelu g = Gelu::exact) {
  static_assert(Real<T>, "gelu: T must be float, double, half or bf16");
  cuda_detail::act_backward(ctx, x, dy, dx, cuda_detail::GeluAct{g}, "gelu_backward");
}
template <class T>
void relu_forward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y) {
  static_assert(Real<T>, "relu: T must be float, double, half or bf16");
  cuda_detail::act_forward(ctx, x, y, cuda_detail::ReluAct{}, "relu_forward");
}
template <class T>
void relu_backward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, cuda_detail::CudaIn<T> dy,
                   TensorView<T, device::cuda> dx) {
  static_assert(Real<T>, "relu: T must be float, double, half or bf16");
  cuda_detail::act_backward(ctx, x, dy, dx, cuda_detail::ReluAct{}, "relu_backward");
}
template <class T>
void silu_forward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y) {
  static_assert(Real<T>, "silu: T must be float, double, half or bf16");
  cuda_detail::act_forward(ctx, x, y, cuda_detail::SiluAct{}, "silu_forward");
}
template <class T>
void silu_backward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, cuda_detail::CudaIn<T> dy,
                   TensorView<T, device::cuda> dx) {
  static_assert(Real<T>, "silu: T must be float, double, half or bf16");
  cuda_detail::act_backward(ctx, x, dy, dx, cuda_detail::SiluAct{}, "silu_backward");
}
template <class T>
void sigmoid_forward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y) {
  static_assert(Real<T>, "sigmoid: T must be float, double, half or bf16");
  cuda_detail::act_forward(ctx, x, y, cuda_detail::SigmoidAct{}, "sigmoid_forward");
}
template <class T>
void sigmoid_backward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, cuda_detail::CudaIn<T> dy,
                      TensorView<T, device::cuda> dx) {
  static_assert(Real<T>, "sigmoid: T must be float, double, half or bf16");
  cuda_detail::act_backward(ctx, x, dy, dx, cuda_detail::SigmoidAct{}, "sigmoid_backward");
}
template <class T>
void tanh_forward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y) {
  static_assert(Real<T>, "tanh: T must be float, double, half or bf16");
  cuda_detail::act_forward(ctx, x, y, cuda_detail::TanhAct{}, "tanh_forward");
}
template <class T>
void tanh_backward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, cuda_detail::CudaIn<T> dy,
                   TensorView<T, device::cuda> dx) {
  static_assert(Real<T>, "tanh: T must be float, double, half or bf16");
  cuda_detail::act_backward(ctx, x, dy, dx, cuda_detail::TanhAct{}, "tanh_backward");
}

// x (..., 2H) -> y (..., H) = x[..., :H] * sigmoid(x[..., H:]).
template <class T>
void glu_forward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y) {
  static_assert(Real<T>, "glu: T must be float, double, half or bf16");
  index_t H = cuda_detail::check_glu(x, y, "y");
  cuda::for_each(ctx.stream(), y.numel(), cuda_detail::GluForward<T>{x.data, y.data, H}, "glu_forward");
}
template <class T>
void glu_backward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, cuda_detail::CudaIn<T> dy,
                  TensorView<T, device::cuda> dx) {
  static_assert(Real<T>, "glu: T must be float, double, half or bf16");
  index_t H = cuda_detail::check_glu(x, dy, "dy");
  expect_contiguous(dx, "dx");
  cuda_detail::expect_same_shape_as(dx, x, "dx", "x");
  cuda::for_each(ctx.stream(), dy.numel(), cuda_detail::GluBackward<T>{x.data, dy.data, dx.data, H},
                 "glu_backward");
}

}  // namespace longseq::ops
