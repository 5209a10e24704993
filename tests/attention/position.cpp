#include <doctest/doctest.h>

#include <longseq/attention/local.hpp>
#include <longseq/attention/position.hpp>

#include "../nn/grad_check.hpp"
#include "reference.hpp"

using namespace longseq;

TEST_CASE("sinusoidal position encoding follows the published formula") {
  attention::SinusoidalPosition<double> pe({.dim = 6, .max_len = 32});
  Tensor<double> x(Shape{2, 5, 6}, 0.0), y(Shape{2, 5, 6});
  HostContext ctx;
  attention::SinusoidalPosition<double>::Saved s;
  pe.forward(ctx, x.view(), y.view(), s);
  for (index_t l = 0; l < 5; ++l)
    for (index_t i = 0; i < 3; ++i) {
      const double w = 1.0 / std::pow(10000.0, 2.0 * i / 6.0);
      CHECK(y(1, l, 2 * i) == doctest::Approx(std::sin(l * w)));
      CHECK(y(0, l, 2 * i + 1) == doctest::Approx(std::cos(l * w)));
    }
  ParamStore<double> store;
  store.bind(pe);
  Rng rng(1);
  testing::fill_normal(x.view(), rng);
  testing::check_layer_gradients(pe, store, x, x.shape(), rng);
  Tensor<double> big(Shape{1, 33, 6}), out(Shape{1, 33, 6});
  CHECK_THROWS_WITH_AS(pe.forward(ctx, big.view(), out.view(), s),
                       doctest::Contains("tensor 'x' has length 33 > max_len 32"), Error);
}

TEST_CASE("learned position table: gradients and bad input") {
  attention::LearnedPosition<double> pe({.dim = 3, .max_len = 8});
  ParamStore<double> store;
  store.bind(pe);
  CHECK(store.find("weight")->param->shape == Shape{8, 3});
  Rng rng(2);
  pe.init(rng);
  Tensor<double> x(Shape{2, 4, 3});
  testing::fill_normal(x.view(), rng);
  testing::check_layer_gradients(pe, store, x, x.shape(), rng);
  CHECK(pe.weight.grad(5, 0) == 0.0);  // positions beyond L get no gradient
  HostContext ctx;
  attention::LearnedPosition<double>::Saved s;
  Tensor<double> bad(Shape{2, 4, 2}), out(Shape{2, 4, 2});
  CHECK_THROWS_WITH_AS(pe.forward(ctx, bad.view(), out.view(), s),
                       doctest::Contains("LearnedPosition: tensor 'x' has shape (2, 4, 2), expected (B, L, 3)"), Error);
  attention::NoPosition<double> none({.dim = 3});
  attention::NoPosition<double>::Saved ns;
  CHECK_THROWS_WITH_AS(none.forward(ctx, x.view(), out.view(), ns),
                       doctest::Contains("tensor 'y' has shape (2, 4, 2), expected (2, 4, 3)"), Error);
  Tensor<double> same(x.shape());
  none.forward(ctx, x.view(), same.view(), ns);
  CHECK(same[7] == x[7]);
}

TEST_CASE("AnyPosition as a layer: each alternative's gradients, its parameters only when learned") {
  Rng rng(3);
  Tensor<double> x(Shape{2, 4, 3});
  testing::fill_normal(x.view(), rng);
  for (const attention::AnyPositionConfig& c :
       {attention::AnyPositionConfig(attention::NoPositionConfig{.dim = 3}),
        attention::AnyPositionConfig(attention::SinusoidalPositionConfig{.dim = 3, .max_len = 4}),
        attention::AnyPositionConfig(attention::LearnedPositionConfig{.dim = 3, .max_len = 6})}) {
    CAPTURE(c.index());
    attention::AnyPosition<double> pe(c);
    ParamStore<double> store;
    store.bind(pe);
    CHECK(store.entries().size() == (c.index() == 2 ? 1u : 0u));
    pe.init(rng);
    testing::check_layer_gradients(pe, store, x, x.shape(), rng);
  }
}

TEST_CASE("LocalAttention is the windowed mixer") {
  attention::LocalAttention<double> la(
      {.dim = 4, .heads = 2, .window = 3, .look_back = 1, .look_forward = 0, .block = 2});
  ParamStore<double> store;
  store.bind(la);
  Rng rng(4);
  la.init(rng);
  CHECK(la.mask_spec().window == 3);
  Tensor<double> x(Shape{2, 10, 4}), y(Shape{2, 10, 4});
  testing::fill_normal(x.view(), rng);
  HostContext ctx;
  attention::LocalAttention<double>::Saved s;
  la.forward(ctx, x.view(), y.view(), s);
  const auto ref = testing::naive_mha<attention::NoRotation>(la, x, {});
  for (index_t i = 0; i < y.numel(); ++i) CHECK(y[i] == doctest::Approx(ref[std::size_t(i)]).epsilon(1e-12));
  // Changing position 7 (block 2) leaves blocks 0 and 1 alone (they never look forward) and changes
  // block 3, which looks back one block.
  Tensor<double> x2 = Tensor<double>(x.shape());
  std::copy(x.data(), x.data() + x.numel(), x2.data());
  for (index_t c = 0; c < 4; ++c) x2(0, 7, c) += 1.0;
  Tensor<double> y2(x.shape());
  la.forward(ctx, x2.view(), y2.view(), s);
  for (index_t c = 0; c < 4; ++c) {
    CHECK(y2(0, 2, c) == y(0, 2, c));
    CHECK(y2(0, 5, c) == y(0, 5, c));
    CHECK(y2(0, 9, c) != y(0, 9, c));
    CHECK(y2(1, 9, c) == y(1, 9, c));
  }
  testing::check_layer_gradients(la, store, x, x.shape(), rng);
  CHECK_THROWS_WITH_AS(attention::LocalAttention<float>({.dim = 4, .heads = 2, .window = 0}),
                       doctest::Contains("LocalAttention needs a window > 0"), Error);
}
