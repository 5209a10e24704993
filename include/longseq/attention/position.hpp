// Absolute position schemes, the encoders' Position slot: policies that add an encoding to the (B, L, H)
// input (none, fixed sinusoidal, a learned table), the AbsolutePosition concept they satisfy, and AnyPosition,
// one of the three chosen at run time. Rotary (applied to q and k inside attention) lives in rotary.hpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <concepts>
#include <tuple>
#include <type_traits>
#include <variant>

#include "../core/config.hpp"
#include "../nn/layer.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/reduce.hpp"

namespace longseq::attention {

// The configurations live outside the policy templates, so that one value configures a policy of any (T, D)
// and AnyPosition's configuration (a variant of them) does not depend on T and D either. A dim of 0 inside an
// encoder means the encoder's width (with_dim below).
struct NoPositionConfig {
  index_t dim = 0;
};
struct SinusoidalPositionConfig {
  index_t dim = 0;
  index_t max_len = 16384;  // the longest input accepted (the code itself has no table)
  double base = 10000.0;
};
struct LearnedPositionConfig {
  index_t dim = 0;
  index_t max_len = 0;  // the table's rows: the longest input it has positions for
  double init_std = 0.02;
};
// AnyPosition's configuration: the chosen policy's own (NoPositionConfig is the default).
using AnyPositionConfig = std::variant<NoPositionConfig, SinusoidalPositionConfig, LearnedPositionConfig>;

// A policy's configuration with its width set to an encoder's `dim`: a width of 0 takes it, any other must
// equal it (`who` names the encoder in the error).
template <class C>
C with_dim(C c, index_t dim, const char* who) {
  if constexpr (requires(C x) { x.dim; }) {
    LONGSEQ_CHECK(c.dim == 0 || c.dim == dim, who, ": position.dim = ", c.dim, ", expected 0 (the encoder's dim) or ",
                  dim);
    c.dim = dim;
  } else {
    std::visit([&](auto& alt) { alt = with_dim(alt, dim, who); }, c);
  }
  return c;
}

// pe(l)[c] = sin(l w) for even c, cos(l w) for odd c, w = base^(-2 floor(c / 2) / dim) (Vaswani et al. 2017),
// in double on either policy, so host and device add the same rounded value.
LONGSEQ_HD inline double sinusoid(index_t l, index_t c, index_t dim, double base) {
  const double w = ::pow(base, -double(c / 2 * 2) / double(dim));
  return c % 2 == 0 ? ::sin(double(l) * w) : ::cos(double(l) * w);
}

namespace detail {
template <class T, class D>
void check_position_input(const TensorView<const T, D>& x, const TensorView<T, D>& y, index_t dim, index_t max_len,
                          const char* who) {
  expect_rank(x, 3, "x");
  LONGSEQ_CHECK(x.size(2) == dim, who, ": tensor 'x' has shape ", x.shape, ", expected (B, L, ", dim, ")");
  LONGSEQ_CHECK(x.size(1) <= max_len, who, ": tensor 'x' has length ", x.size(1), " > max_len ", max_len);
  expect_shape(y, x.shape, "y");
  expect_contiguous(x, "x");
}

// y = x + pe on the host; each element is read and written by the same iteration, so x and y may alias.
template <class T>
void add_sinusoidal(Context<device::host>&, TensorView<const T> x, TensorView<T> y, double base) {
  const index_t B = x.size(0), L = x.size(1), H = x.size(2);
#pragma omp parallel for if (B * L * H > 65536)
  for (index_t l = 0; l < L; ++l)
    for (index_t c = 0; c < H; ++c) {
      const T pe = T(sinusoid(l, c, H, base));
      for (index_t b = 0; b < B; ++b) y.data[(b * L + l) * H + c] = x.data[(b * L + l) * H + c] + pe;
    }
}
}  // namespace detail

}  // namespace longseq::attention

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // the device overload of add_sinusoidal
#include "cuda/position.cuh"
#endif

namespace longseq::attention {

// What an encoder's Position slot needs: a layer (forward adds the encoding, backward passes the gradient
// through) built from its Config, whose width with_dim can set, plus accumulate_grad, the parameter
// gradients alone (an encoder's input needs no gradient). forward must accept x and y aliased: the encoders
// add the encoding in place.
template <class P, class T, class D>
concept AbsolutePosition =
    nn::Layer<P, T, D> && std::constructible_from<P, typename P::Config> &&
    requires(P& p, const typename P::Config& c, Context<D>& ctx, typename P::Saved& s, TensorView<const T, D> dy) {
      { with_dim(c, index_t(1), "") } -> std::same_as<typename P::Config>;
      p.accumulate_grad(ctx, s, dy);
    };

// y = x.
template <class T, class D = device::host>
struct NoPosition {
  using value_type = T;
  using device_type = D;
  using Config = NoPositionConfig;
  struct Saved {};
  Config cfg;
  explicit NoPosition(Config c) : cfg(c) {}
  template <class F>
  void parameters(F&&) {}
  void init(Rng&) {}
  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved&) {
    expect_shape(y, x.shape, "y");
    if (y.data != x.data) ops::copy<T, T>(ctx, x, y);
  }
  void backward(Context<D>& ctx, Saved&, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dx, dy.shape, "dx");
    if (dx.data != dy.data) ops::copy<T, T>(ctx, dy, dx);
  }
  void accumulate_grad(Context<D>&, const Saved&, TensorView<const T, D>) {}
};

// y[b, l, :] = x[b, l, :] + pe(l) (sinusoid above). No parameters.
template <class T, class D = device::host>
struct SinusoidalPosition {
  using value_type = T;
  using device_type = D;
  using Config = SinusoidalPositionConfig;
  struct Saved {};
  Config cfg;
  explicit SinusoidalPosition(Config c) : cfg(c) {
    LONGSEQ_CHECK(c.dim > 0 && c.max_len > 0, "SinusoidalPosition needs positive dim and max_len, got dim = ", c.dim,
                  ", max_len = ", c.max_len);
  }
  template <class F>
  void parameters(F&&) {}
  void init(Rng&) {}
  double value(index_t l, index_t c) const { return sinusoid(l, c, cfg.dim, cfg.base); }
  // x and y may alias (the encoders add the code in place).
  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved&) {
    detail::check_position_input(x, y, cfg.dim, cfg.max_len, "SinusoidalPosition");
    if (x.numel() == 0) return;
    detail::add_sinusoidal<T>(ctx, x, y, cfg.base);
  }
  void backward(Context<D>& ctx, Saved&, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dx, dy.shape, "dx");
    if (dx.data != dy.data) ops::copy<T, T>(ctx, dy, dx);
  }
  void accumulate_grad(Context<D>&, const Saved&, TensorView<const T, D>) {}
};

// y[b, l, :] = x[b, l, :] + weight[l, :] with a learned (max_len, dim) table, initialized N(0, init_std^2):
// learned absolute positions. One template for both device policies: the first L rows of the table are one
// contiguous block of L dim values, so the addition is ops::add_bias on y seen as (B, L dim) and the table's
// gradient ops::sum_rows of dy (a deterministic sum over the batch on either policy). In an encoder's
// Position slot it is named "encoder.position.weight" in a model's checkpoint.
template <class T, class D = device::host>
struct LearnedPosition {
  using value_type = T;
  using device_type = D;
  using Config = LearnedPositionConfig;
  struct Saved {
    index_t batch = 0, len = 0;
  };
  Config cfg;
  Param<T, D> weight;  // (max_len, dim)
  explicit LearnedPosition(Config c) : cfg(c), weight(Shape{c.max_len, c.dim}, ParamGroup::no_decay) {
    LONGSEQ_CHECK(c.dim > 0 && c.max_len > 0, "LearnedPosition needs positive dim and max_len, got dim = ", c.dim,
                  ", max_len = ", c.max_len);
    LONGSEQ_CHECK(c.init_std >= 0, "LearnedPosition: init_std = ", c.init_std, ", expected >= 0");
  }
  template <class F>
  void parameters(F&& f) {
    f("weight", weight);
  }
  // Host-only like every init: a device table is drawn on the host and its values copied.
  void init(Rng& rng) {
    static_assert(std::is_same_v<D, device::host>, "LearnedPosition<T, device::cuda>::init: initialization is "
                                                   "host-only; initialize the host layer and copy its values");
    for (index_t i = 0; i < weight.value.numel(); ++i) weight.value[i] = T(rng.normal(0.0, cfg.init_std));
  }
  // x and y may alias (the encoders add the table in place).
  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    detail::check_position_input(x, y, cfg.dim, cfg.max_len, "LearnedPosition");
    expect_contiguous(y, "y");
    LONGSEQ_CHECK(weight.bound(), "LearnedPosition: parameters are not bound (call ParamStore<T, D>::bind)");
    s.batch = x.size(0);
    s.len = x.size(1);
    if (y.data != x.data) ops::copy<T, T>(ctx, x, y);
    const index_t n = s.len * cfg.dim;
    ops::add_bias<T>(ctx, y.reshape(Shape{s.batch, n}), TensorView<const T, D>(weight.value.data, Shape{n}));
  }
  // dx = dy; dweight[l] += sum_b dy[b, l].
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dx, dy.shape, "dx");
    accumulate_grad(ctx, s, dy);
    if (dx.data != dy.data) ops::copy<T, T>(ctx, dy, dx);
  }
  // The table's gradient alone (for an encoder, whose input needs none).
  void accumulate_grad(Context<D>& ctx, const Saved& s, TensorView<const T, D> dy) {
    expect_shape(dy, Shape({s.batch, s.len, cfg.dim}), "dy");
    expect_contiguous(dy, "dy");
    const index_t n = s.len * cfg.dim;
    ops::sum_rows<T>(ctx, dy.reshape(Shape{s.batch, n}), TensorView<T, D>(weight.grad.data, Shape{n}),
                     /*accumulate=*/true);
  }
};

// One of the three policies above, chosen by the configuration at run time (the trainers' --position). It
// holds the chosen policy and forwards every call to it, so its parameter names, initial values, outputs and
// gradients are exactly that policy's. Only where the choice is a run-time string is it worth the variant:
// a model whose scheme is known when it is written names the policy itself.
template <class T, class D = device::host>
struct AnyPosition {
  using value_type = T;
  using device_type = D;
  using Config = AnyPositionConfig;
  using Policy = std::variant<NoPosition<T, D>, SinusoidalPosition<T, D>, LearnedPosition<T, D>>;
  struct Saved {
    std::tuple<typename NoPosition<T, D>::Saved, typename SinusoidalPosition<T, D>::Saved,
               typename LearnedPosition<T, D>::Saved>
        of;  // the Saved of each alternative; the held policy uses its own
  };
  Policy policy;
  explicit AnyPosition(Config c) : policy(make(c)) {}

  template <class F>
  void parameters(F&& f) {
    std::visit([&](auto& p) { p.parameters(f); }, policy);
  }
  void init(Rng& rng) {
    std::visit([&](auto& p) { p.init(rng); }, policy);
  }
  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    std::visit([&](auto& p) { p.forward(ctx, x, y, saved_of(p, s)); }, policy);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    std::visit([&](auto& p) { p.backward(ctx, saved_of(p, s), dy, dx); }, policy);
  }
  void accumulate_grad(Context<D>& ctx, const Saved& s, TensorView<const T, D> dy) {
    std::visit([&](auto& p) { p.accumulate_grad(ctx, saved_of(p, s), dy); }, policy);
  }

 private:
  static Policy make(const Config& c) {
    return std::visit(
        [](const auto& k) -> Policy {
          using K = std::decay_t<decltype(k)>;
          if constexpr (std::is_same_v<K, NoPositionConfig>)
            return Policy(std::in_place_type<NoPosition<T, D>>, k);
          else if constexpr (std::is_same_v<K, SinusoidalPositionConfig>)
            return Policy(std::in_place_type<SinusoidalPosition<T, D>>, k);
          else
            return Policy(std::in_place_type<LearnedPosition<T, D>>, k);
        },
        c);
  }
  template <class P, class S>
  static auto& saved_of(const P&, S& s) {
    return std::get<typename P::Saved>(s.of);
  }
};

static_assert(nn::assert_layer<NoPosition<float>, float>());
static_assert(nn::assert_layer<SinusoidalPosition<float>, float>());
static_assert(nn::assert_layer<LearnedPosition<double>, double>());
static_assert(AbsolutePosition<NoPosition<float>, float, device::host>);
static_assert(AbsolutePosition<SinusoidalPosition<float>, float, device::host>);
static_assert(AbsolutePosition<LearnedPosition<double>, double, device::host>);
static_assert(AbsolutePosition<AnyPosition<double>, double, device::host>);

}  // namespace longseq::attention
