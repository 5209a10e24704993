// Residual wrappers around any mixer layer: pre-norm x + Drop(M(N(x))) and post-norm N(x + Drop(M(x))).
// They run on the device policy of their children (the additions and copies are ops:: calls).
#pragma once
#include <algorithm>
#include <cstdint>

#include "../ops/dropout.hpp"
#include "../ops/elementwise.hpp"
#include "layer.hpp"

namespace longseq::nn {

namespace detail {
// What both wrappers share: sizes, the two children, their names, and the dropout they apply.
template <class Norm, class Mixer>
struct ResidualParts {
  using T = typename Mixer::value_type;
  using D = typename Mixer::device_type;
  using value_type = T;
  using device_type = D;
  struct Config {
    typename Norm::Config norm;
    typename Mixer::Config mixer;
    double dropout = 0.0;
    std::uint64_t stream = 0;  // dropout stream; distinct per layer (Stack assigns them)
  };
  // Dropout as the forward applied it, so the backward regenerates the same mask.
  struct DropState {
    double p = 0;  // 0 outside training
    std::uint64_t seed = 0;
  };

  Config cfg;
  Norm norm;
  Mixer mixer;

  explicit ResidualParts(Config c) : cfg(c), norm(c.norm), mixer(c.mixer) {
    LONGSEQ_CHECK(c.dropout >= 0 && c.dropout < 1, "residual dropout must be in [0, 1), got ", c.dropout);
  }
  template <class F>
  void parameters(F&& f) {
    norm.parameters(prefixed("norm", f));
    mixer.parameters(prefixed("mixer", f));
  }
  void init(Rng& rng) {
    norm.init(rng);
    mixer.init(rng);
  }
  // Forwards a key padding mask to a mixer that takes one (attention).
  template <class M>
  void set_key_padding(M m) requires requires(Mixer& x) {
    x.set_key_padding(m);
  }
  { mixer.set_key_padding(m); }

 protected:
  void drop_forward(Context<D>& ctx, TensorView<T, D> y, DropState& d) const {
    d.p = ctx.training ? cfg.dropout : 0.0;
    d.seed = ctx.seed;
    if (d.p > 0) ops::dropout_forward<T>(ctx, y, y, d.p, d.seed, cfg.stream);
  }
  // g = Drop'(dy): the gradient through the dropout, or dy itself when none was applied.
  void drop_backward(Context<D>& ctx, const DropState& d, TensorView<const T, D> dy, Tensor<T, D>& g) const {
    g.resize(dy.shape);
    if (d.p > 0)
      ops::dropout_backward<T>(ctx, dy, g.view(), d.p, d.seed, cfg.stream);
    else
      ops::copy<T, T>(ctx, dy, g.view());
  }
};
}  // namespace detail

template <class Norm, class Mixer>
struct PreNormResidual : detail::ResidualParts<Norm, Mixer> {
  using Base = detail::ResidualParts<Norm, Mixer>;
  using typename Base::Config;
  using typename Base::D;
  using typename Base::T;
  struct Saved {
    typename Norm::Saved norm;
    typename Mixer::Saved mixer;
    Tensor<T, D> h, dh, g;  // Norm(x), its gradient, the dropped-out dy
    typename Base::DropState drop;
  };
  using Base::Base;

  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    expect_shape(y, x.shape, "y");
    s.h.resize(x.shape);
    this->norm.forward(ctx, x, s.h.view(), s.norm);
    this->mixer.forward(ctx, s.h.view(), y, s.mixer);
    this->drop_forward(ctx, y, s.drop);
    ops::add_inplace(ctx, y, x);
  }

  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dx, dy.shape, "dx");
    s.dh.resize(dy.shape);
    this->drop_backward(ctx, s.drop, dy, s.g);
    // dh = dMixer(g); dx = dy + dNorm(dh).
    this->mixer.backward(ctx, s.mixer, s.g.view(), s.dh.view());
    this->norm.backward(ctx, s.norm, s.dh.view(), dx);
    ops::add_inplace(ctx, dx, dy);
  }
};

template <class Norm, class Mixer>
struct PostNormResidual : detail::ResidualParts<Norm, Mixer> {
  using Base = detail::ResidualParts<Norm, Mixer>;
  using typename Base::Config;
  using typename Base::D;
  using typename Base::T;
  struct Saved {
    typename Norm::Saved norm;
    typename Mixer::Saved mixer;
    Tensor<T, D> z, dz, g;  // x + Drop(M(x)), its gradient, the dropped-out dz
    typename Base::DropState drop;
  };
  using Base::Base;

  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    expect_shape(y, x.shape, "y");
    s.z.resize(x.shape);
    this->mixer.forward(ctx, x, s.z.view(), s.mixer);
    this->drop_forward(ctx, s.z.view(), s.drop);
    ops::add_inplace(ctx, s.z.view(), x);
    this->norm.forward(ctx, s.z.view(), y, s.norm);
  }

  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dx, dy.shape, "dx");
    s.dz.resize(dy.shape);
    this->norm.backward(ctx, s.norm, dy, s.dz.view());
    // dx = dz + dMixer(Drop'(dz)): the mixer writes into dx, then dz is added.
    this->drop_backward(ctx, s.drop, s.dz.view(), s.g);
    this->mixer.backward(ctx, s.mixer, s.g.view(), dx);
    ops::add_inplace(ctx, dx, TensorView<const T, D>(s.dz.view()));
  }
};

}  // namespace longseq::nn
