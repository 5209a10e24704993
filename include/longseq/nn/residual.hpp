// Residual wrappers around any mixer layer: pre-norm x + Drop(M(N(x))) and post-norm N(x + Drop(M(x))).
#pragma once
#include <cstdint>

#include "../ops/dropout.hpp"
#include "layer.hpp"

namespace longseq::nn {

template <class Norm, class Mixer>
struct PreNormResidual {
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
  struct Saved {
    typename Norm::Saved norm;
    typename Mixer::Saved mixer;
    Tensor<T, D> h, dh, g;  // Norm(x), its gradient, the dropped-out dy
    double p = 0;           // dropout used by the forward (0 outside training)
    std::uint64_t seed = 0;
  };

  Config cfg;
  Norm norm;
  Mixer mixer;

  explicit PreNormResidual(Config c) : cfg(c), norm(c.norm), mixer(c.mixer) {
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

  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    expect_shape(y, x.shape, "y");
    s.h.resize(x.shape);
    norm.forward(ctx, x, s.h.view(), s.norm);
    mixer.forward(ctx, s.h.view(), y, s.mixer);
    s.p = ctx.training ? cfg.dropout : 0.0;
    s.seed = ctx.seed;
    if (s.p > 0) ops::dropout_forward<T>(ctx, y, y, s.p, s.seed, cfg.stream);
    for (index_t i = 0; i < x.numel(); ++i) y.data[i] += x.data[i];
  }

  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dx, dy.shape, "dx");
    s.dh.resize(dy.shape);
    TensorView<const T, D> g = dy;
    if (s.p > 0) {
      s.g.resize(dy.shape);
      ops::dropout_backward<T>(ctx, dy, s.g.view(), s.p, s.seed, cfg.stream);
      g = s.g.view();
    }
    // dh = dMixer(g); dx = dy + dNorm(dh).
    mixer.backward(ctx, s.mixer, g, s.dh.view());
    norm.backward(ctx, s.norm, s.dh.view(), dx);
    for (index_t i = 0; i < dx.numel(); ++i) dx.data[i] += dy.data[i];
  }
};

template <class Norm, class Mixer>
struct PostNormResidual {
  using T = typename Mixer::value_type;
  using D = typename Mixer::device_type;
  using value_type = T;
  using device_type = D;
  struct Config {
    typename Norm::Config norm;
    typename Mixer::Config mixer;
    double dropout = 0.0;
    std::uint64_t stream = 0;
  };
  struct Saved {
    typename Norm::Saved norm;
    typename Mixer::Saved mixer;
    Tensor<T, D> z, dz, g;  // x + Drop(M(x)), its gradient, the dropped-out dz
    double p = 0;           // dropout used by the forward (0 outside training)
    std::uint64_t seed = 0;
  };

  Config cfg;
  Norm norm;
  Mixer mixer;

  explicit PostNormResidual(Config c) : cfg(c), norm(c.norm), mixer(c.mixer) {
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

  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    expect_shape(y, x.shape, "y");
    s.z.resize(x.shape);
    mixer.forward(ctx, x, s.z.view(), s.mixer);
    s.p = ctx.training ? cfg.dropout : 0.0;
    s.seed = ctx.seed;
    if (s.p > 0) ops::dropout_forward<T>(ctx, s.z.view(), s.z.view(), s.p, s.seed, cfg.stream);
    for (index_t i = 0; i < x.numel(); ++i) s.z[i] += x.data[i];
    norm.forward(ctx, s.z.view(), y, s.norm);
  }

  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dx, dy.shape, "dx");
    s.dz.resize(dy.shape);
    norm.backward(ctx, s.norm, dy, s.dz.view());
    // dx = dz + dMixer(Drop(dz)); the mixer writes into dx, then dz is added.
    s.g.resize(dy.shape);
    if (s.p > 0)
      ops::dropout_backward<T>(ctx, s.dz.view(), s.g.view(), s.p, s.seed, cfg.stream);
    else
      std::copy(s.dz.data(), s.dz.data() + s.dz.numel(), s.g.data());
    mixer.backward(ctx, s.mixer, s.g.view(), dx);
    for (index_t i = 0; i < dx.numel(); ++i) dx.data[i] += s.dz[i];
  }
};

}  // namespace longseq::nn
