#include <doctest/doctest.h>

#include <longseq/nn/linear.hpp>

#include "grad_check.hpp"

using namespace longseq;

TEST_CASE("Linear forward matches the naive formula and has PyTorch layout") {
  nn::Linear<double> lin({.in = 3, .out = 2});
  ParamStore<double> store;
  store.bind(lin);
  CHECK(store.find("weight")->param->shape == Shape{2, 3});
  CHECK(store.find("bias")->param->group == ParamGroup::no_decay);
  Rng rng(1);
  lin.init(rng);
  for (index_t i = 0; i < 6; ++i) CHECK(std::abs(lin.weight.value[i]) <= 1.0 / std::sqrt(3.0));
  Tensor<double> x(Shape{2, 2, 3}), y(Shape{2, 2, 2});
  testing::fill_normal(x.view(), rng);
  HostContext ctx;
  nn::Linear<double>::Saved s;
  lin.forward(ctx, x.view(), y.view(), s);
  for (index_t b = 0; b < 2; ++b)
    for (index_t l = 0; l < 2; ++l)
      for (index_t o = 0; o < 2; ++o) {
        double want = lin.bias.value[o];
        for (index_t i = 0; i < 3; ++i) want += lin.weight.value(o, i) * x(b, l, i);
        CHECK(y(b, l, o) == doctest::Approx(want).epsilon(1e-12));
      }
}

TEST_CASE("Linear gradients (double, finite differences), with and without bias") {
  for (bool bias : {true, false}) {
    nn::Linear<double> lin({.in = 5, .out = 4, .bias = bias});
    ParamStore<double> store;
    store.bind(lin);
    Rng rng(7);
    lin.init(rng);
    Tensor<double> x(Shape{2, 3, 5});
    testing::fill_normal(x.view(), rng);
    testing::check_layer_gradients(lin, store, x, Shape{2, 3, 4}, rng);
    CHECK(store.entries().size() == (bias ? 2u : 1u));
  }
}

TEST_CASE("Linear accumulates parameter gradients") {
  nn::Linear<double> lin({.in = 2, .out = 2});
  ParamStore<double> store;
  store.bind(lin);
  Rng rng(3);
  lin.init(rng);
  Tensor<double> x(Shape{3, 2}, 1.0), y(Shape{3, 2}), dy(Shape{3, 2}, 1.0), dx(Shape{3, 2});
  HostContext ctx;
  nn::Linear<double>::Saved s;
  lin.forward(ctx, x.view(), y.view(), s);
  lin.backward(ctx, s, dy.view(), dx.view());
  lin.backward(ctx, s, dy.view(), dx.view());
  CHECK(lin.bias.grad[0] == doctest::Approx(6.0));
  CHECK(lin.weight.grad(1, 1) == doctest::Approx(6.0));
}

TEST_CASE("Linear rejects wrong shapes with readable errors") {
  nn::Linear<float> lin({.in = 4, .out = 3});
  ParamStore<float> store;
  store.bind(lin);
  Tensor<float> x(Shape{2, 5}), y(Shape{2, 3});
  HostContext ctx;
  nn::Linear<float>::Saved s;
  CHECK_THROWS_WITH_AS(lin.forward(ctx, x.view(), y.view(), s),
                       doctest::Contains("tensor 'x' has shape (2, 5), expected last dimension 4"), Error);
  Tensor<float> x2(Shape{2, 4}), y2(Shape{3, 3});
  CHECK_THROWS_WITH_AS(lin.forward(ctx, x2.view(), y2.view(), s), doctest::Contains("tensor 'y' has shape (3, 3)"),
                       Error);
  CHECK_THROWS_WITH_AS(nn::Linear<float>({.in = 0, .out = 3}), doctest::Contains("positive sizes"), Error);
}
