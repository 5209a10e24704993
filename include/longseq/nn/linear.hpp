// nn::Linear: y = x W^T + b over the last axis, W stored (out, in) as in PyTorch. Runs on either device
// policy: every step is an ops:: call with a host and a CUDA overload (only init is host-only).
#pragma once
#include <cmath>

#include "../ops/elementwise.hpp"
#include "../ops/gemm.hpp"
#include "../ops/reduce.hpp"
#include "layer.hpp"

namespace longseq::nn {

template <class T, class D = device::host>
struct Linear {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t in = 0, out = 0;
    bool bias = true;
  };
  struct Saved {
    Tensor<T, D> x;  // copy of the input
  };

  Config cfg;
  Param<T, D> weight;  // (out, in)
  Param<T, D> bias;    // (out), no weight decay; shape (0) when the layer has no bias

  explicit Linear(Config c)
      : cfg(c), weight(Shape{c.out, c.in}, ParamGroup::weight), bias(Shape{c.bias ? c.out : 0}, ParamGroup::no_decay) {
    LONGSEQ_CHECK(c.in > 0 && c.out > 0, "Linear needs positive sizes, got in=", c.in, " out=", c.out);
  }

  template <class F>
  void parameters(F&& f) {
    f("weight", weight);
    if (cfg.bias) f("bias", bias);
  }

  // PyTorch's default: W and b uniform in +-1/sqrt(in).
  void init(Rng& rng) {
    static_assert(!D::is_gpu, "Linear::init fills host memory; initialize on the host and copy");
    const double bound = 1.0 / std::sqrt(double(cfg.in));
    for (index_t i = 0; i < weight.value.numel(); ++i) weight.value[i] = T(rng.uniform(-bound, bound));
    if (cfg.bias)
      for (index_t i = 0; i < bias.value.numel(); ++i) bias.value[i] = T(rng.uniform(-bound, bound));
  }

  // Forward without saving (inference, or callers that keep the input themselves).
  void apply(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y) const {
    check_io(x, y, "x", "y");
    const index_t n = leading_rows(x);
    ops::gemm(ctx, ops::Trans::N, ops::Trans::T, n, cfg.out, cfg.in, T(1), x.data, cfg.in, weight.value.data, cfg.in,
              T(0), y.data, cfg.out);
    if (cfg.bias) ops::add_bias(ctx, y, TensorView<const T, D>(bias.value));
  }

  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    apply(ctx, x, y);
    s.x.resize(x.shape);
    ops::copy<T, T>(ctx, x, s.x.view());
  }

  // Gradients given the saved input: dx written (skipped when dx is empty), dW and db accumulated.
  void backward_from(Context<D>& ctx, TensorView<const T, D> x, TensorView<const T, D> dy, TensorView<T, D> dx) {
    const index_t n = leading_rows(x);
    LONGSEQ_CHECK(dy.rank() == x.rank() && leading_rows(dy) == n && dy.size(-1) == cfg.out,
                  "Linear: tensor 'dy' has shape ", dy.shape, ", expected the input's leading dims and ", cfg.out,
                  " features (input ", x.shape, ")");
    expect_contiguous(dy, "dy");
    if (!dx.empty()) {
      check_io(x, dx, "x", "dx", /*dx_is_input_shaped=*/true);
      ops::gemm(ctx, ops::Trans::N, ops::Trans::N, n, cfg.in, cfg.out, T(1), dy.data, cfg.out, weight.value.data,
                cfg.in, T(0), dx.data, cfg.in);
    }
    ops::gemm(ctx, ops::Trans::T, ops::Trans::N, cfg.out, cfg.in, n, T(1), dy.data, cfg.out, x.data, cfg.in, T(1),
              weight.grad.data, cfg.in);
    if (cfg.bias) ops::sum_rows<T>(ctx, dy, bias.grad, /*accumulate=*/true);
  }

  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    backward_from(ctx, s.x.view(), dy, dx);
  }

 private:
  void check_io(const TensorView<const T, D>& x, const TensorView<T, D>& y, const char* xn, const char* yn,
                bool y_input_shaped = false) const {
    LONGSEQ_CHECK(x.rank() >= 1 && x.size(-1) == cfg.in, "Linear: tensor '", xn, "' has shape ", x.shape,
                  ", expected last dimension ", cfg.in);
    const index_t want_last = y_input_shaped ? cfg.in : cfg.out;
    bool ok = y.rank() == x.rank() && y.size(-1) == want_last;
    for (int i = 0; ok && i + 1 < x.rank(); ++i) ok = y.shape[i] == x.shape[i];
    LONGSEQ_CHECK(ok, "Linear: tensor '", yn, "' has shape ", y.shape, ", expected the leading dims of ", x.shape,
                  " and last dimension ", want_last);
    expect_contiguous(x, xn);
    expect_contiguous(y, yn);
    LONGSEQ_CHECK(weight.value.data != nullptr, "Linear: parameters are not bound (call ParamStore::bind)");
  }
};

static_assert(assert_layer<Linear<float>, float>());

}  // namespace longseq::nn
