// Residual wrappers around any mixer layer: pre-norm x + Drop(M(N(x))) and post-norm N(x + Drop(M(x))),
// fixed by type (PreNormResidual, PostNormResidual) or chosen at run time (Residual). They run on the
// device policy of their children (the additions and copies are ops:: calls).
#pragma once
#include <algorithm>
#include <cstdint>

#include "../ops/elementwise.hpp"
#include "dropout.hpp"
#include "layer.hpp"

namespace longseq::nn {

namespace detail {
// What the wrappers share: sizes, the two children, their names, the dropout they apply, and the two
// orders of norm, mixer and residual addition.
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
    DropoutMask dropout_mask = DropoutMask::element;  // or tied: one mask per (batch, channel) over L
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

  explicit ResidualParts(Config c) : cfg(c), norm(c.norm), mixer(mixer_config(c)) {
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
  // A mixer with a dropout of its own (SSMConv) left on stream 0 draws on one derived from this block's, so
  // its mask differs from the residual's and from the other blocks' mixers (Stack numbers the blocks).
  static typename Mixer::Config mixer_config(const Config& c) {
    typename Mixer::Config m = c.mixer;
    if constexpr (requires { m.stream; })
      if (m.stream == 0) m.stream = c.stream ^ 0x9E3779B97F4A7C15ull;
    return m;
  }
  void drop_forward(Context<D>& ctx, TensorView<T, D> y, DropState& d) const {
    d.p = ctx.training ? cfg.dropout : 0.0;
    d.seed = ctx.seed;
    if (d.p > 0) dropout_forward<T>(ctx, y, y, d.p, cfg.dropout_mask, d.seed, cfg.stream);
  }
  // g = Drop'(dy): the gradient through the dropout, or dy itself when none was applied.
  void drop_backward(Context<D>& ctx, const DropState& d, TensorView<const T, D> dy, Tensor<T, D>& g) const {
    g.resize(dy.shape);
    if (d.p > 0)
      dropout_backward<T>(ctx, dy, g.view(), d.p, cfg.dropout_mask, d.seed, cfg.stream);
    else
      ops::copy<T, T>(ctx, dy, g.view());
  }

  // y = x + Drop(M(N(x))); h = N(x) is kept.
  void pre_forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, typename Norm::Saved& ns,
                   typename Mixer::Saved& ms, Tensor<T, D>& h, DropState& d) {
    expect_shape(y, x.shape, "y");
    h.resize(x.shape);
    norm.forward(ctx, x, h.view(), ns);
    mixer.forward(ctx, h.view(), y, ms);
    drop_forward(ctx, y, d);
    ops::add_inplace(ctx, y, x);
  }
  // dh = dMixer(Drop'(dy)); dx = dy + dNorm(dh).
  void pre_backward(Context<D>& ctx, typename Norm::Saved& ns, typename Mixer::Saved& ms, Tensor<T, D>& dh,
                    Tensor<T, D>& g, const DropState& d, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dx, dy.shape, "dx");
    dh.resize(dy.shape);
    drop_backward(ctx, d, dy, g);
    mixer.backward(ctx, ms, g.view(), dh.view());
    norm.backward(ctx, ns, dh.view(), dx);
    ops::add_inplace(ctx, dx, dy);
  }
  // y = N(z) with z = x + Drop(M(x)) kept.
  void post_forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, typename Norm::Saved& ns,
                    typename Mixer::Saved& ms, Tensor<T, D>& z, DropState& d) {
    expect_shape(y, x.shape, "y");
    z.resize(x.shape);
    mixer.forward(ctx, x, z.view(), ms);
    drop_forward(ctx, z.view(), d);
    ops::add_inplace(ctx, z.view(), x);
    norm.forward(ctx, z.view(), y, ns);
  }
  // dz = dNorm(dy); dx = dz + dMixer(Drop'(dz)): the mixer writes into dx, then dz is added.
  void post_backward(Context<D>& ctx, typename Norm::Saved& ns, typename Mixer::Saved& ms, Tensor<T, D>& dz,
                     Tensor<T, D>& g, const DropState& d, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dx, dy.shape, "dx");
    dz.resize(dy.shape);
    norm.backward(ctx, ns, dy, dz.view());
    drop_backward(ctx, d, dz.view(), g);
    mixer.backward(ctx, ms, g.view(), dx);
    ops::add_inplace(ctx, dx, TensorView<const T, D>(dz.view()));
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
    this->pre_forward(ctx, x, y, s.norm, s.mixer, s.h, s.drop);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    this->pre_backward(ctx, s.norm, s.mixer, s.dh, s.g, s.drop, dy, dx);
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
    this->post_forward(ctx, x, y, s.norm, s.mixer, s.z, s.drop);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    this->post_backward(ctx, s.norm, s.mixer, s.dz, s.g, s.drop, dy, dx);
  }
};

// Pre- or post-norm chosen at run time (Config::prenorm), for trainers that read the choice from a
// recipe (the paper's S4 recipes differ per task) without a model type per choice. Same parameters,
// names and numbers as PreNormResidual / PostNormResidual.
template <class Norm, class Mixer>
struct Residual : detail::ResidualParts<Norm, Mixer> {
  using Base = detail::ResidualParts<Norm, Mixer>;
  using typename Base::D;
  using typename Base::T;
  struct Config : Base::Config {
    bool prenorm = true;
  };
  struct Saved {
    typename Norm::Saved norm;
    typename Mixer::Saved mixer;
    Tensor<T, D> a, da, g;  // N(x) (pre) or x + Drop(M(x)) (post), its gradient, the dropped-out one
    typename Base::DropState drop;
  };
  bool prenorm;

  explicit Residual(Config c) : Base(c), prenorm(c.prenorm) {}

  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    if (prenorm)
      this->pre_forward(ctx, x, y, s.norm, s.mixer, s.a, s.drop);
    else
      this->post_forward(ctx, x, y, s.norm, s.mixer, s.a, s.drop);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    if (prenorm)
      this->pre_backward(ctx, s.norm, s.mixer, s.da, s.g, s.drop, dy, dx);
    else
      this->post_backward(ctx, s.norm, s.mixer, s.da, s.g, s.drop, dy, dx);
  }
};

}  // namespace longseq::nn
