#include <doctest/doctest.h>

#include <longseq/nn/norm_layers.hpp>

#include "grad_check.hpp"

using namespace longseq;

TEST_CASE("LayerNorm matches the textbook formula") {
  nn::LayerNorm<double> ln({.dim = 4});
  ParamStore<double> store;
  store.bind(ln);
  Rng rng(2);
  ln.init(rng);
  for (index_t i = 0; i < 4; ++i) {
    ln.weight.value[i] = 0.5 + i;
    ln.bias.value[i] = 0.1 * i;
  }
  Tensor<double> x(Shape{3, 4}), y(Shape{3, 4});
  testing::fill_normal(x.view(), rng);
  HostContext ctx;
  nn::LayerNorm<double>::Saved s;
  ln.forward(ctx, x.view(), y.view(), s);
  for (index_t r = 0; r < 3; ++r) {
    double mu = 0, var = 0;
    for (index_t i = 0; i < 4; ++i) mu += x(r, i) / 4;
    for (index_t i = 0; i < 4; ++i) var += (x(r, i) - mu) * (x(r, i) - mu) / 4;
    for (index_t i = 0; i < 4; ++i)
      CHECK(y(r, i) == doctest::Approx((x(r, i) - mu) / std::sqrt(var + 1e-5) * (0.5 + i) + 0.1 * i));
  }
}

TEST_CASE("LayerNorm and RMSNorm gradients (double, finite differences)") {
  Rng rng(5);
  {
    nn::LayerNorm<double> ln({.dim = 6});
    ParamStore<double> store;
    store.bind(ln);
    ln.init(rng);
    testing::fill_normal(store.values(), rng);  // non-trivial gamma and beta
    Tensor<double> x(Shape{2, 3, 6});
    testing::fill_normal(x.view(), rng);
    testing::check_layer_gradients(ln, store, x, Shape{2, 3, 6}, rng);
  }
  {
    nn::LayerNorm<double> ln({.dim = 5, .affine = false});
    ParamStore<double> store;
    store.bind(ln);
    CHECK(store.entries().empty());
    Tensor<double> x(Shape{4, 5});
    testing::fill_normal(x.view(), rng);
    testing::check_layer_gradients(ln, store, x, Shape{4, 5}, rng);
  }
  {
    nn::RMSNorm<double> rn({.dim = 6});
    ParamStore<double> store;
    store.bind(rn);
    testing::fill_normal(store.values(), rng);
    Tensor<double> x(Shape{3, 6}), y(Shape{3, 6});
    testing::fill_normal(x.view(), rng);
    testing::check_layer_gradients(rn, store, x, Shape{3, 6}, rng);
    HostContext ctx;
    nn::RMSNorm<double>::Saved s;
    rn.forward(ctx, x.view(), y.view(), s);
    double ms = 0;
    for (index_t i = 0; i < 6; ++i) ms += x(1, i) * x(1, i) / 6;
    CHECK(y(1, 2) == doctest::Approx(x(1, 2) / std::sqrt(ms + 1e-6) * rn.weight.value[2]));
  }
}

TEST_CASE("norm layers reject wrong shapes") {
  nn::LayerNorm<float> ln({.dim = 4});
  nn::RMSNorm<float> rn({.dim = 4});
  ParamStore<float> s1, s2;
  s1.bind(ln);
  s2.bind(rn);
  Tensor<float> x(Shape{2, 3}), y(Shape{2, 3});
  HostContext ctx;
  nn::LayerNorm<float>::Saved a;
  nn::RMSNorm<float>::Saved b;
  CHECK_THROWS_WITH_AS(ln.forward(ctx, x.view(), y.view(), a),
                       doctest::Contains("LayerNorm: tensor 'x' has shape (2, 3), expected last dimension 4"), Error);
  CHECK_THROWS_WITH_AS(rn.forward(ctx, x.view(), y.view(), b),
                       doctest::Contains("RMSNorm: tensor 'x' has shape (2, 3), expected last dimension 4"), Error);
  Tensor<float> x4(Shape{2, 4}), y4(Shape{4, 2});
  CHECK_THROWS_WITH_AS(ln.forward(ctx, x4.view(), y4.view(), a),
                       doctest::Contains("tensor 'y' has shape (4, 2), expected (2, 4)"), Error);
  CHECK_THROWS_WITH_AS(nn::LayerNorm<float>({.dim = 0}), doctest::Contains("positive dim"), Error);
}
