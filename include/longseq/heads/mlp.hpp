// heads::Mlp: the small decoder after pooling: Linear(in -> out), or Linear(in -> hidden), activation,
// Linear(hidden -> out) when a hidden width is set (the paper's "nonlinear" sequence decoder).
#pragma once
#include <optional>

#include "../nn/feed_forward.hpp"
#include "../nn/linear.hpp"

namespace longseq::heads {

template <class T>
struct Mlp {
  struct Config {
    index_t in = 0, out = 0;
    index_t hidden = 0;  // 0: a single Linear
    nn::Activation activation = nn::Activation::relu;
  };
  struct Saved {
    typename nn::Linear<T>::Saved first, second;
    Tensor<T> pre, act, dact;
  };

  Config cfg;
  nn::Linear<T> first;
  std::optional<nn::Linear<T>> second;

  explicit Mlp(Config c)
      : cfg(c), first({c.in, c.hidden > 0 ? c.hidden : c.out, true}) {
    if (c.hidden > 0) second.emplace(typename nn::Linear<T>::Config{c.hidden, c.out, true});
  }
  template <class F>
  void parameters(F&& f) {
    if (!second) { first.parameters(prefixed("linear", f)); return; }
    first.parameters(prefixed("linear1", f));
    second->parameters(prefixed("linear2", f));
  }
  void init(Rng& rng) {
    first.init(rng);
    if (second) second->init(rng);
  }
  void forward(HostContext& ctx, TensorView<const T> x, TensorView<T> y, Saved& s) {
    if (!second) { first.forward(ctx, x, y, s.first); return; }
    Shape h = x.shape;
    h.dims[h.rank - 1] = cfg.hidden;
    s.pre.resize(h);
    s.act.resize(h);
    first.forward(ctx, x, s.pre.view(), s.first);
    for (index_t i = 0; i < s.pre.numel(); ++i) s.act[i] = T(nn::detail::act_value(cfg.activation, double(s.pre[i])));
    second->forward(ctx, s.act.view(), y, s.second);
  }
  void backward(HostContext& ctx, Saved& s, TensorView<const T> dy, TensorView<T> dx) {
    if (!second) { first.backward(ctx, s.first, dy, dx); return; }
    s.dact.resize(s.pre.shape());
    second->backward(ctx, s.second, dy, s.dact.view());
    for (index_t i = 0; i < s.pre.numel(); ++i)
      s.dact[i] = T(double(s.dact[i]) * nn::detail::act_derivative(cfg.activation, double(s.pre[i])));
    first.backward(ctx, s.first, s.dact.view(), dx);
  }
};

}  // namespace longseq::heads
