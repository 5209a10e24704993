// Finite-difference gradient checks for layers in double: loss = sum(y * w) with a fixed random w.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <longseq/core/context.hpp>
#include <longseq/core/parameters.hpp>
#include <longseq/core/rng.hpp>
#include <longseq/core/tensor.hpp>
#include <string>
#include <vector>

namespace longseq::testing {

inline void fill_normal(TensorView<double> t, Rng& rng, double scale = 1.0) {
  for (index_t i = 0; i < t.numel(); ++i) t[i] = rng.normal(0.0, scale);
}

inline double dot(TensorView<const double> a, TensorView<const double> b) {
  double s = 0;
  for (index_t i = 0; i < a.numel(); ++i) s += a[i] * b[i];
  return s;
}

// Compares an analytic gradient with central differences of `loss` while perturbing `v` in place.
// At most `max_checks` entries (evenly spaced) are probed so the check stays fast.
inline void compare_fd(const std::string& what, TensorView<double> v, TensorView<const double> analytic,
                       const std::function<double()>& loss, double tol, index_t max_checks = 60, double h = 1e-5) {
  const index_t n = v.numel();
  if (n == 0) return;
  const index_t step = std::max<index_t>(1, n / max_checks);
  double worst = 0;
  index_t worst_i = -1;
  double worst_a = 0, worst_n = 0;
  for (index_t i = 0; i < n; i += step) {
    const double keep = v[i];
    v[i] = keep + h;
    const double lp = loss();
    v[i] = keep - h;
    const double lm = loss();
    v[i] = keep;
    const double num = (lp - lm) / (2 * h);
    const double a = analytic[i];
    const double err = std::abs(a - num) / std::max({1e-3, std::abs(a), std::abs(num)});
    if (err > worst) {
      worst = err;
      worst_i = i;
      worst_a = a;
      worst_n = num;
    }
  }
  INFO(what, ": worst relative error ", worst, " at element ", worst_i, " (analytic ", worst_a, ", numeric ", worst_n,
       ")");
  CHECK(worst < tol);
}

// Full check of a layer: input gradient and every parameter gradient. `run` computes y = layer(x)
// (forward) and `back` the gradients for cotangent w. Parameters must already be bound and initialized.
template <class L>
void check_layer_gradients(L& layer, ParamStore<double>& store, Tensor<double>& x, Shape y_shape, Rng& rng,
                           double tol = 1e-6, HostContext* ctx_in = nullptr) {
  HostContext own;
  HostContext& ctx = ctx_in ? *ctx_in : own;
  Tensor<double> y(y_shape), w(y_shape), dx(x.shape());
  fill_normal(w.view(), rng);
  typename L::Saved saved;
  auto loss = [&]() {
    typename L::Saved s;
    layer.forward(ctx, x.view(), y.view(), s);
    return dot(y.view(), w.view());
  };
  // Analytic pass; zero the gradient buffer first since parameter gradients accumulate.
  auto g = store.grads();
  for (index_t i = 0; i < g.numel(); ++i) g[i] = 0;
  layer.forward(ctx, x.view(), y.view(), saved);
  layer.backward(ctx, saved, w.view(), dx.view());
  compare_fd("d input", x.view(), dx.view(), loss, tol);
  for (const auto& e : store.entries()) compare_fd("d " + e.name, e.param->value, e.param->grad, loss, tol);
}

}  // namespace longseq::testing
