// Pointwise activations (gelu, relu, silu, sigmoid, tanh) and the gated linear unit, with backwards.
#pragma once
#include <cmath>
#include <numbers>
#include <type_traits>

#include "common.hpp"
#include "fast_math.hpp"

namespace longseq::ops {

// exact: x * Phi(x) with the normal CDF through erf; tanh: the approximation of Hendrycks & Gimpel.
enum class Gelu { exact, tanh };

namespace detail {

// Scalar formulas in the accumulator type W (float for half/bf16). For float, exp and erf are the
// branch-free versions of fast_math.hpp so these loops vectorize; double keeps the std:: functions.
template <class W>
W sigmoid(W x) {
  return fast::sigmoid(x);
}

template <class W>
W gelu_exact(W x) {
  return W(0.5) * x * (W(1) + fast::erf(x * W(std::numbers::sqrt2 / 2)));
}
template <class W>
W gelu_tanh(W x) {
  constexpr W c = W(0.7978845608028654);  // sqrt(2 / pi)
  return W(0.5) * x * (W(1) + std::tanh(c * (x + W(0.044715) * x * x * x)));
}

template <class W>
W gelu_exact_grad(W x) {
  if constexpr (std::is_same_v<W, float>) {
    // Phi and phi share one exp: exp(-t^2) with t = x / sqrt(2) is phi(x) sqrt(2 pi).
    float e, g;
    fast::erf_gauss(x * float(std::numbers::sqrt2 / 2), e, g);
    return 0.5f * (1.0f + e) + x * (g * 0.3989422804014327f);
  } else {
    W cdf = W(0.5) * (W(1) + std::erf(x * W(std::numbers::sqrt2 / 2)));
    W pdf = std::exp(W(-0.5) * x * x) * W(0.3989422804014327);  // 1 / sqrt(2 pi)
    return cdf + x * pdf;
  }
}
template <class W>
W gelu_tanh_grad(W x) {
  constexpr W c = W(0.7978845608028654);
  W t = std::tanh(c * (x + W(0.044715) * x * x * x));
  return W(0.5) * (W(1) + t) + W(0.5) * x * (W(1) - t * t) * c * (W(1) + W(3 * 0.044715) * x * x);
}

template <class T>
void check_pointwise(const TensorView<const T>& x, const TensorView<T>& y, std::string_view xname,
                     std::string_view yname) {
  expect_contiguous(x, xname);
  expect_contiguous(y, yname);
  expect_same_shape(y, x.shape, yname, xname);
}

// y[i] = f(x[i]) in the accumulator type. Flattened: every call in the loop (the float exp and erf) is
// inlined so that it vectorizes, whatever the inlining budget of the translation unit (in the encoder
// benchmark GCC left fast::exp a call inside the GELU gradient's loop, 6 times slower).
template <class T, class F>
[[gnu::flatten]] void map_pointwise(Context<device::host>& ctx, const TensorView<const T>& x, const TensorView<T>& y, F f) {
  check_pointwise(x, y, "x", "y");
  using W = accum_t<T>;
  index_t n = x.numel();
  int nt = threads_for(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t i = 0; i < n; ++i) y.data[i] = T(f(W(x.data[i])));
}

// dx[i] = dy[i] * f'(x[i]), flattened as map_pointwise.
template <class T, class F>
[[gnu::flatten]] void map_pointwise_grad(Context<device::host>& ctx, const TensorView<const T>& x, const TensorView<const T>& dy,
                        const TensorView<T>& dx, F df) {
  check_pointwise(x, dx, "x", "dx");
  expect_contiguous(dy, "dy");
  expect_same_shape(dy, x.shape, "dy", "x");
  using W = accum_t<T>;
  index_t n = x.numel();
  int nt = threads_for(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t i = 0; i < n; ++i) dx.data[i] = T(W(dy.data[i]) * df(W(x.data[i])));
}

}  // namespace detail

// Every pointwise pair: forward(ctx, x, y), backward(ctx, x, dy, dx) with dx written; all views
// contiguous and of one shape. y may alias x and dx may alias dy.
template <class T>
void gelu_forward(Context<device::host>& ctx, detail::In<T> x, TensorView<T> y, Gelu g = Gelu::exact) {
  static_assert(Real<T>, "gelu: T must be float, double, half or bf16");
  // One loop per variant, so the loop body has no branch and vectorizes.
  if (g == Gelu::exact)
    detail::map_pointwise(ctx, x, y, [](auto v) { return detail::gelu_exact(v); });
  else
    detail::map_pointwise(ctx, x, y, [](auto v) { return detail::gelu_tanh(v); });
}
template <class T>
void gelu_backward(Context<device::host>& ctx, detail::In<T> x, detail::In<T> dy, TensorView<T> dx,
                   Gelu g = Gelu::exact) {
  static_assert(Real<T>, "gelu: T must be float, double, half or bf16");
  if (g == Gelu::exact)
    detail::map_pointwise_grad(ctx, x, dy, dx, [](auto v) { return detail::gelu_exact_grad(v); });
  else
    detail::map_pointwise_grad(ctx, x, dy, dx, [](auto v) { return detail::gelu_tanh_grad(v); });
}

// relu'(0) is taken as 0.
template <class T>
void relu_forward(Context<device::host>& ctx, detail::In<T> x, TensorView<T> y) {
  static_assert(Real<T>, "relu: T must be float, double, half or bf16");
  detail::map_pointwise(ctx, x, y, [](auto v) { return v > decltype(v)(0) ? v : decltype(v)(0); });
}
template <class T>
void relu_backward(Context<device::host>& ctx, detail::In<T> x, detail::In<T> dy, TensorView<T> dx) {
  static_assert(Real<T>, "relu: T must be float, double, half or bf16");
  detail::map_pointwise_grad(ctx, x, dy, dx, [](auto v) { return decltype(v)(v > decltype(v)(0) ? 1 : 0); });
}

// silu(x) = x * sigmoid(x).
template <class T>
void silu_forward(Context<device::host>& ctx, detail::In<T> x, TensorView<T> y) {
  static_assert(Real<T>, "silu: T must be float, double, half or bf16");
  detail::map_pointwise(ctx, x, y, [](auto v) { return v * detail::sigmoid(v); });
}
template <class T>
void silu_backward(Context<device::host>& ctx, detail::In<T> x, detail::In<T> dy, TensorView<T> dx) {
  static_assert(Real<T>, "silu: T must be float, double, half or bf16");
  detail::map_pointwise_grad(ctx, x, dy, dx, [](auto v) {
    auto s = detail::sigmoid(v);
    return s * (decltype(v)(1) + v * (decltype(v)(1) - s));
  });
}

template <class T>
void sigmoid_forward(Context<device::host>& ctx, detail::In<T> x, TensorView<T> y) {
  static_assert(Real<T>, "sigmoid: T must be float, double, half or bf16");
  detail::map_pointwise(ctx, x, y, [](auto v) { return detail::sigmoid(v); });
}
template <class T>
void sigmoid_backward(Context<device::host>& ctx, detail::In<T> x, detail::In<T> dy, TensorView<T> dx) {
  static_assert(Real<T>, "sigmoid: T must be float, double, half or bf16");
  detail::map_pointwise_grad(ctx, x, dy, dx, [](auto v) {
    auto s = detail::sigmoid(v);
    return s * (decltype(v)(1) - s);
  });
}

template <class T>
void tanh_forward(Context<device::host>& ctx, detail::In<T> x, TensorView<T> y) {
  static_assert(Real<T>, "tanh: T must be float, double, half or bf16");
  detail::map_pointwise(ctx, x, y, [](auto v) { return std::tanh(v); });
}
template <class T>
void tanh_backward(Context<device::host>& ctx, detail::In<T> x, detail::In<T> dy, TensorView<T> dx) {
  static_assert(Real<T>, "tanh: T must be float, double, half or bf16");
  detail::map_pointwise_grad(ctx, x, dy, dx, [](auto v) {
    auto t = std::tanh(v);
    return decltype(v)(1) - t * t;
  });
}

namespace detail {
template <class T, class U>
index_t check_glu(const TensorView<const T>& x, const TensorView<U>& y, std::string_view yname) {
  expect_contiguous(x, "x");
  expect_contiguous(y, yname);
  LONGSEQ_CHECK(x.rank() >= 1 && x.size(-1) % 2 == 0, "glu: tensor 'x' has shape ", x.shape,
                ", expected an even last dimension (..., 2H)");
  Shape want = x.shape;
  want.dims[want.rank - 1] /= 2;
  expect_same_shape(y, want, yname, "x with its last dimension halved");
  return want.dims[want.rank - 1];
}
}  // namespace detail

// Gated linear unit over the last axis: x (..., 2H) -> y (..., H) = x[..., :H] * sigmoid(x[..., H:]).
template <class T>
void glu_forward(Context<device::host>& ctx, detail::In<T> x, TensorView<T> y) {
  static_assert(Real<T>, "glu: T must be float, double, half or bf16");
  using W = accum_t<T>;
  index_t H = detail::check_glu(x, y, "y"), rows = detail::leading_rows(x.shape);
  int nt = detail::threads_for(ctx, rows * H);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x.data + r * 2 * H;
    T* yr = y.data + r * H;
    for (index_t h = 0; h < H; ++h) yr[h] = T(W(xr[h]) * detail::sigmoid(W(xr[H + h])));
  }
}

// dx[..., :H] = dy * sigmoid(b), dx[..., H:] = dy * a * sigmoid(b) * (1 - sigmoid(b)); dx written.
template <class T>
void glu_backward(Context<device::host>& ctx, detail::In<T> x, detail::In<T> dy, TensorView<T> dx) {
  static_assert(Real<T>, "glu: T must be float, double, half or bf16");
  using W = accum_t<T>;
  index_t H = detail::check_glu(x, dy, "dy"), rows = detail::leading_rows(x.shape);
  expect_contiguous(dx, "dx");
  detail::expect_same_shape(dx, x.shape, "dx", "x");
  int nt = detail::threads_for(ctx, rows * H);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x.data + r * 2 * H;
    const T* gr = dy.data + r * H;
    T* dr = dx.data + r * 2 * H;
    for (index_t h = 0; h < H; ++h) {
      W a = W(xr[h]), s = detail::sigmoid(W(xr[H + h])), g = W(gr[h]);
      dr[h] = T(g * s);
      dr[H + h] = T(g * a * s * (W(1) - s));
    }
  }
}

}  // namespace longseq::ops

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads, visible wherever the host op is
#include "cuda/activation.cuh"
#endif
