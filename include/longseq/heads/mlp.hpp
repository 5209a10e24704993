// heads::Mlp: the small decoder after pooling: Linear(in -> out), or Linear(in -> hidden), activation,
// Linear(hidden -> out) when a hidden width is set (the paper's "nonlinear" sequence decoder). One
// template for both device policies; the activation is an op with a host and a CUDA overload
// (heads/cuda/mlp.cuh), both evaluated in double.
#pragma once
#include <optional>

#include "../nn/feed_forward.hpp"
#include "../nn/linear.hpp"

namespace longseq::heads {

namespace detail {

template <class T>
void mlp_activation_forward(Context<device::host>&, nn::Activation a, TensorView<const T> pre, TensorView<T> act) {
  for (index_t i = 0; i < pre.numel(); ++i) act[i] = T(nn::detail::act_value(a, double(pre[i])));
}
// d *= act'(pre), in place.
template <class T>
void mlp_activation_backward(Context<device::host>&, nn::Activation a, TensorView<const T> pre, TensorView<T> d) {
  for (index_t i = 0; i < pre.numel(); ++i) d[i] = T(double(d[i]) * nn::detail::act_derivative(a, double(pre[i])));
}

}  // namespace detail
}  // namespace longseq::heads

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads of the activation ops
#include "cuda/mlp.cuh"
#endif

namespace longseq::heads {

template <class T, class D = device::host>
struct Mlp {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t in = 0, out = 0;
    index_t hidden = 0;  // 0: a single Linear
    nn::Activation activation = nn::Activation::relu;
  };
  struct Saved {
    typename nn::Linear<T, D>::Saved first, second;
    Tensor<T, D> pre, act, dact;
  };

  Config cfg;
  nn::Linear<T, D> first;
  std::optional<nn::Linear<T, D>> second;

  explicit Mlp(Config c)
      : cfg(c), first({c.in, c.hidden > 0 ? c.hidden : c.out, true}) {
    if (c.hidden > 0) second.emplace(typename nn::Linear<T, D>::Config{c.hidden, c.out, true});
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
  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    if (!second) { first.forward(ctx, x, y, s.first); return; }
    Shape h = x.shape;
    h.dims[h.rank - 1] = cfg.hidden;
    s.pre.resize(h);
    s.act.resize(h);
    first.forward(ctx, x, s.pre.view(), s.first);
    detail::mlp_activation_forward<T>(ctx, cfg.activation, TensorView<const T, D>(s.pre.view()), s.act.view());
    second->forward(ctx, s.act.view(), y, s.second);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    if (!second) { first.backward(ctx, s.first, dy, dx); return; }
    s.dact.resize(s.pre.shape());
    second->backward(ctx, s.second, dy, s.dact.view());
    detail::mlp_activation_backward<T>(ctx, cfg.activation, TensorView<const T, D>(s.pre.view()), s.dact.view());
    first.backward(ctx, s.first, s.dact.view(), dx);
  }
};

}  // namespace longseq::heads
