// Position-wise feed-forward blocks: Linear-act-Linear with an expansion factor, and the gated (GLU) variant.
// FeedForward runs on either device policy; GluFeedForward is host-only.
#pragma once
#include <cmath>

#include "../ops/activation.hpp"
#include "linear.hpp"

namespace longseq::nn {

enum class Activation { gelu, gelu_tanh, relu, silu, sigmoid };

namespace detail {
// Pointwise activation value and derivative in double (host); GELU "exact" uses erf as PyTorch's default.
inline double act_value(Activation a, double x) {
  switch (a) {
    case Activation::gelu:
      return 0.5 * x * (1.0 + std::erf(x * 0.7071067811865476));
    case Activation::gelu_tanh: {
      const double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
      return 0.5 * x * (1.0 + std::tanh(u));
    }
    case Activation::relu:
      return x > 0 ? x : 0.0;
    case Activation::silu:
      return x / (1.0 + std::exp(-x));
    case Activation::sigmoid:
      return 1.0 / (1.0 + std::exp(-x));
  }
  return x;
}
inline double act_derivative(Activation a, double x) {
  switch (a) {
    case Activation::gelu: {
      const double cdf = 0.5 * (1.0 + std::erf(x * 0.7071067811865476));
      const double pdf = 0.3989422804014327 * std::exp(-0.5 * x * x);
      return cdf + x * pdf;
    }
    case Activation::gelu_tanh: {
      const double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
      const double t = std::tanh(u);
      const double du = 0.7978845608028654 * (1.0 + 3 * 0.044715 * x * x);
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
    }
    case Activation::relu:
      return x > 0 ? 1.0 : 0.0;
    case Activation::silu: {
      const double s = 1.0 / (1.0 + std::exp(-x));
      return s * (1.0 + x * (1.0 - s));
    }
    case Activation::sigmoid: {
      const double s = 1.0 / (1.0 + std::exp(-x));
      return s * (1.0 - s);
    }
  }
  return 1.0;
}
}  // namespace detail

// y = W2 act(W1 x + b1) + b2 with hidden width expand * dim (or `hidden` when set).
template <class T, class D = device::host>
struct FeedForward {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t dim = 0;
    index_t expand = 4;
    index_t hidden = 0;  // overrides expand * dim when positive
    Activation activation = Activation::gelu;
    bool bias = true;
    index_t width() const { return hidden > 0 ? hidden : expand * dim; }
  };
  struct Saved {
    typename Linear<T, D>::Saved in;
    Tensor<T, D> pre;   // W1 x + b1
    Tensor<T, D> act;   // act(pre), the input of the second Linear
    Tensor<T, D> dact;  // scratch for the backward
  };

  Config cfg;
  Linear<T, D> linear1, linear2;

  explicit FeedForward(Config c) : cfg(c), linear1({c.dim, c.width(), c.bias}), linear2({c.width(), c.dim, c.bias}) {}

  template <class F>
  void parameters(F&& f) {
    linear1.parameters(prefixed("linear1", f));
    linear2.parameters(prefixed("linear2", f));
  }
  void init(Rng& rng) {
    linear1.init(rng);
    linear2.init(rng);
  }

  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    Shape hs = x.shape;
    LONGSEQ_CHECK(x.rank() >= 1, "FeedForward: tensor 'x' must have rank >= 1, got ", x.shape);
    hs[hs.rank - 1] = cfg.width();
    s.pre.resize(hs);
    s.act.resize(hs);
    linear1.forward(ctx, x, s.pre.view(), s.in);
    if constexpr (vector_activation) {
      device_activation(ctx, s.pre.view(), s.act.view());
    } else {
      // The host evaluates the activation in double.
      const index_t n = s.pre.numel();
#pragma omp parallel for if (n > 65536)
      for (index_t i = 0; i < n; ++i) s.act[i] = T(detail::act_value(cfg.activation, s.pre[i]));
    }
    linear2.apply(ctx, s.act.view(), y);
  }

  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    s.dact.resize(s.act.shape());
    linear2.backward_from(ctx, s.act.view(), dy, s.dact.view());
    if constexpr (vector_activation) {
      device_activation_backward(ctx, s.pre.view(), s.dact.view());
    } else {
      const index_t n = s.pre.numel();
#pragma omp parallel for if (n > 65536)
      for (index_t i = 0; i < n; ++i) s.dact[i] = T(s.dact[i] * detail::act_derivative(cfg.activation, s.pre[i]));
    }
    linear1.backward(ctx, s.in, s.dact.view(), dx);
  }

 private:
  // The activation ops (vectorized float erf/exp on the host) for the device and for narrower storage than
  // double on the host: the double loops with libm's erf had about 7 % of the perf samples of an encoder
  // layer (d 128, FF 256, B 16, L 1024). Double keeps them (the finite-difference checks).
  static constexpr bool vector_activation = D::is_gpu || !std::is_same_v<T, double>;
  // The activation ops, evaluated in accum_t<T> (the host loops above use double).
  void device_activation(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y) const {
    switch (cfg.activation) {
      case Activation::gelu: ops::gelu_forward<T>(ctx, x, y, ops::Gelu::exact); break;
      case Activation::gelu_tanh: ops::gelu_forward<T>(ctx, x, y, ops::Gelu::tanh); break;
      case Activation::relu: ops::relu_forward<T>(ctx, x, y); break;
      case Activation::silu: ops::silu_forward<T>(ctx, x, y); break;
      case Activation::sigmoid: ops::sigmoid_forward<T>(ctx, x, y); break;
    }
  }
  // g = g * act'(x) in place (the device activation backwards allow dx to alias dy).
  void device_activation_backward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> g) const {
    const TensorView<const T, D> gin = g;
    switch (cfg.activation) {
      case Activation::gelu: ops::gelu_backward<T>(ctx, x, gin, g, ops::Gelu::exact); break;
      case Activation::gelu_tanh: ops::gelu_backward<T>(ctx, x, gin, g, ops::Gelu::tanh); break;
      case Activation::relu: ops::relu_backward<T>(ctx, x, gin, g); break;
      case Activation::silu: ops::silu_backward<T>(ctx, x, gin, g); break;
      case Activation::sigmoid: ops::sigmoid_backward<T>(ctx, x, gin, g); break;
    }
  }
};

// Gated variant: h = W1 x + b1 split in halves (a, g); y = W2 (a * gate(g)) + b2. gate = sigmoid gives GLU,
// gelu gives GEGLU, silu gives SwiGLU. Hidden width is expand * dim per half.
template <class T, class D = device::host>
struct GluFeedForward {
  static_assert(!D::is_gpu,
                "nn::GluFeedForward is implemented for the host policy only (FeedForward runs on the GPU)");
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t dim = 0;
    index_t expand = 4;
    index_t hidden = 0;
    Activation gate = Activation::sigmoid;
    bool bias = true;
    index_t width() const { return hidden > 0 ? hidden : expand * dim; }
  };
  struct Saved {
    typename Linear<T, D>::Saved in;
    Tensor<T, D> pre;  // (..., 2 * width): [a | g]
    Tensor<T, D> act;  // (..., width)
    Tensor<T, D> dact, dpre;
  };

  Config cfg;
  Linear<T, D> linear1, linear2;

  explicit GluFeedForward(Config c)
      : cfg(c), linear1({c.dim, 2 * c.width(), c.bias}), linear2({c.width(), c.dim, c.bias}) {}

  template <class F>
  void parameters(F&& f) {
    linear1.parameters(prefixed("linear1", f));
    linear2.parameters(prefixed("linear2", f));
  }
  void init(Rng& rng) {
    linear1.init(rng);
    linear2.init(rng);
  }

  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    LONGSEQ_CHECK(x.rank() >= 1, "GluFeedForward: tensor 'x' must have rank >= 1, got ", x.shape);
    const index_t w = cfg.width();
    Shape ps = x.shape, as = x.shape;
    ps[ps.rank - 1] = 2 * w;
    as[as.rank - 1] = w;
    s.pre.resize(ps);
    s.act.resize(as);
    linear1.forward(ctx, x, s.pre.view(), s.in);
    const index_t rows = leading_rows(x);
#pragma omp parallel for if (rows * w > 65536)
    for (index_t r = 0; r < rows; ++r)
      for (index_t i = 0; i < w; ++i) {
        const double a = s.pre[r * 2 * w + i], g = s.pre[r * 2 * w + w + i];
        s.act[r * w + i] = T(a * detail::act_value(cfg.gate, g));
      }
    linear2.apply(ctx, s.act.view(), y);
  }

  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    const index_t w = cfg.width();
    s.dact.resize(s.act.shape());
    s.dpre.resize(s.pre.shape());
    linear2.backward_from(ctx, s.act.view(), dy, s.dact.view());
    const index_t rows = leading_rows(s.act.view());
#pragma omp parallel for if (rows * w > 65536)
    for (index_t r = 0; r < rows; ++r)
      for (index_t i = 0; i < w; ++i) {
        const double a = s.pre[r * 2 * w + i], g = s.pre[r * 2 * w + w + i], d = s.dact[r * w + i];
        s.dpre[r * 2 * w + i] = T(d * detail::act_value(cfg.gate, g));
        s.dpre[r * 2 * w + w + i] = T(d * a * detail::act_derivative(cfg.gate, g));
      }
    linear1.backward(ctx, s.in, s.dpre.view(), dx);
  }
};

static_assert(assert_layer<FeedForward<float>, float>());
static_assert(assert_layer<GluFeedForward<double>, double>());

}  // namespace longseq::nn
