// Absolute position schemes as layers that add an encoding to the (B, L, H) input: none, fixed
// sinusoidal, learned. Rotary (applied to q and k inside attention) lives in rotary.hpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "../nn/layer.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/reduce.hpp"

namespace longseq::attention {

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
}  // namespace detail

// y = x.
template <class T, class D = device::host>
struct NoPosition {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t dim = 0;
    index_t max_len = 0;
  };
  struct Saved {};
  Config cfg;
  explicit NoPosition(Config c) : cfg(c) {}
  template <class F>
  void parameters(F&&) {}
  void init(Rng&) {}
  void forward(Context<D>&, TensorView<const T, D> x, TensorView<T, D> y, Saved&) {
    expect_shape(y, x.shape, "y");
    std::copy(x.data, x.data + x.numel(), y.data);
  }
  void backward(Context<D>&, Saved&, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dx, dy.shape, "dx");
    std::copy(dy.data, dy.data + dy.numel(), dx.data);
  }
};

// y[b, l, :] = x[b, l, :] + pe(l) with pe(l)[2i] = sin(l w_i), pe(l)[2i + 1] = cos(l w_i),
// w_i = base^(-2i / dim) (Vaswani et al. 2017). No parameters.
template <class T, class D = device::host>
struct SinusoidalPosition {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t dim = 0;
    index_t max_len = 16384;
    double base = 10000.0;
  };
  struct Saved {};
  Config cfg;
  explicit SinusoidalPosition(Config c) : cfg(c) {
    LONGSEQ_CHECK(c.dim > 0 && c.max_len > 0, "SinusoidalPosition needs positive dim and max_len");
  }
  template <class F>
  void parameters(F&&) {}
  void init(Rng&) {}
  double value(index_t l, index_t c) const {
    const double w = std::pow(cfg.base, -double(c / 2 * 2) / double(cfg.dim));
    return c % 2 == 0 ? std::sin(double(l) * w) : std::cos(double(l) * w);
  }
  void forward(Context<D>&, TensorView<const T, D> x, TensorView<T, D> y, Saved&) {
    detail::check_position_input(x, y, cfg.dim, cfg.max_len, "SinusoidalPosition");
    const index_t B = x.size(0), L = x.size(1), H = cfg.dim;
#pragma omp parallel for if (B * L * H > 65536)
    for (index_t l = 0; l < L; ++l)
      for (index_t c = 0; c < H; ++c) {
        const T pe = T(value(l, c));
        for (index_t b = 0; b < B; ++b) y.data[(b * L + l) * H + c] = x.data[(b * L + l) * H + c] + pe;
      }
  }
  void backward(Context<D>&, Saved&, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dx, dy.shape, "dx");
    std::copy(dy.data, dy.data + dy.numel(), dx.data);
  }
};

// y[b, l, :] = x[b, l, :] + weight[l, :] with a learned (max_len, dim) table, initialized N(0, init_std^2):
// learned absolute positions. One template for both device policies: the first L rows of the table are one
// contiguous block of L dim values, so the addition is ops::add_bias on y seen as (B, L dim) and the table's
// gradient ops::sum_rows of dy (a deterministic sum over the batch on either policy). The encoders hold one
// in their position slot (`learned_positions` > 0), named "encoder.position.weight" in a model's checkpoint.
template <class T, class D = device::host>
struct LearnedPosition {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t dim = 0;
    index_t max_len = 0;
    double init_std = 0.02;
  };
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

static_assert(nn::assert_layer<NoPosition<float>, float>());
static_assert(nn::assert_layer<SinusoidalPosition<float>, float>());
static_assert(nn::assert_layer<LearnedPosition<double>, double>());

}  // namespace longseq::attention
