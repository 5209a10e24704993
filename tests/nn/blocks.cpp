#include <doctest/doctest.h>

#include <longseq/nn/feed_forward.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/runtime_norm.hpp>
#include <longseq/nn/stack.hpp>

#include "grad_check.hpp"

using namespace longseq;

namespace {
// The store must outlive every later use of the layer, so callers that keep using it pass their own.
template <class L>
void randomize_and_check(L& layer, Shape xs, std::uint64_t seed, HostContext* ctx = nullptr,
                         ParamStore<double>* keep = nullptr) {
  ParamStore<double> local;
  ParamStore<double>& store = keep ? *keep : local;
  store.bind(layer);
  Rng rng(seed);
  layer.init(rng);
  testing::fill_normal(store.values(), rng, 0.5);
  Tensor<double> x(xs);
  testing::fill_normal(x.view(), rng);
  testing::check_layer_gradients(layer, store, x, xs, rng, 1e-6, ctx);
}
using FF = nn::FeedForward<double>;
using GFF = nn::GluFeedForward<double>;
using LN = nn::LayerNorm<double>;
}  // namespace

TEST_CASE("FeedForward computes W2 act(W1 x + b1) + b2 and has exact gradients") {
  for (auto act : {nn::Activation::gelu, nn::Activation::gelu_tanh, nn::Activation::relu, nn::Activation::silu}) {
    FF ff({.dim = 4, .expand = 2, .activation = act});
    randomize_and_check(ff, Shape{2, 3, 4}, 11);
  }
  FF ff({.dim = 2, .hidden = 3});
  ParamStore<double> store;
  store.bind(ff);
  CHECK(store.find("linear1.weight")->param->shape == Shape{3, 2});
  CHECK(store.find("linear2.bias")->param->shape == Shape{2});
  Rng rng(4);
  ff.init(rng);
  Tensor<double> x(Shape{1, 2}), y(Shape{1, 2});
  x[0] = 0.3;
  x[1] = -1.2;
  HostContext ctx;
  FF::Saved s;
  ff.forward(ctx, x.view(), y.view(), s);
  double want = ff.linear2.bias.value[1];
  for (index_t j = 0; j < 3; ++j) {
    double h = ff.linear1.bias.value[j] + ff.linear1.weight.value(j, 0) * 0.3 - ff.linear1.weight.value(j, 1) * 1.2;
    want += ff.linear2.weight.value(1, j) * 0.5 * h * (1 + std::erf(h / std::sqrt(2.0)));
  }
  CHECK(y[1] == doctest::Approx(want).epsilon(1e-12));
  Tensor<double> bad(Shape{1, 3}), out(Shape{1, 3});
  CHECK_THROWS_WITH_AS(ff.forward(ctx, bad.view(), out.view(), s),
                       doctest::Contains("tensor 'x' has shape (1, 3), expected last dimension 2"), Error);
}

TEST_CASE("GLU feed-forward gradients and formula") {
  for (auto g : {nn::Activation::sigmoid, nn::Activation::gelu, nn::Activation::silu}) {
    GFF ff({.dim = 3, .expand = 2, .gate = g});
    randomize_and_check(ff, Shape{2, 2, 3}, 13);
  }
  GFF ff({.dim = 1, .hidden = 1, .bias = false});
  ParamStore<double> store;
  store.bind(ff);
  ff.linear1.weight.value[0] = 2.0;
  ff.linear1.weight.value[1] = -1.0;
  ff.linear2.weight.value[0] = 3.0;
  Tensor<double> x(Shape{1, 1}, 0.5), y(Shape{1, 1});
  HostContext ctx;
  GFF::Saved s;
  ff.forward(ctx, x.view(), y.view(), s);
  CHECK(y[0] == doctest::Approx(3.0 * 1.0 / (1 + std::exp(0.5))));
}

TEST_CASE("pre-norm and post-norm residual wrappers: formula and gradients, with dropout") {
  using Pre = nn::PreNormResidual<LN, FF>;
  using Post = nn::PostNormResidual<LN, FF>;
  static_assert(nn::assert_layer<Pre, double>());
  static_assert(nn::assert_layer<Post, double>());
  HostContext ctx;
  for (double p : {0.0, 0.3}) {
    Pre pre({.norm = {.dim = 4}, .mixer = {.dim = 4, .expand = 2}, .dropout = p, .stream = 3});
    randomize_and_check(pre, Shape{2, 3, 4}, 21, &ctx);
    Post post({.norm = {.dim = 4}, .mixer = {.dim = 4, .expand = 2}, .dropout = p, .stream = 4});
    randomize_and_check(post, Shape{2, 3, 4}, 22, &ctx);
  }
  // Pre-norm without dropout equals x + FF(LN(x)) computed by hand.
  Pre pre({.norm = {.dim = 4}, .mixer = {.dim = 4, .expand = 1}});
  ParamStore<double> store;
  store.bind(pre);
  Rng rng(9);
  pre.init(rng);
  Tensor<double> x(Shape{3, 4}), y(Shape{3, 4}), h(Shape{3, 4}), m(Shape{3, 4});
  testing::fill_normal(x.view(), rng);
  Pre::Saved s;
  pre.forward(ctx, x.view(), y.view(), s);
  LN::Saved a;
  FF::Saved b;
  pre.norm.forward(ctx, x.view(), h.view(), a);
  pre.mixer.forward(ctx, h.view(), m.view(), b);
  for (index_t i = 0; i < 12; ++i) CHECK(y[i] == doctest::Approx(x[i] + m[i]));
  // Dropout zeroes about p of the mixer output and is off in evaluation mode.
  Pre dp({.norm = {.dim = 4}, .mixer = {.dim = 4, .expand = 1}, .dropout = 0.5, .stream = 1});
  ParamStore<double> s2;
  s2.bind(dp);
  dp.init(rng);
  Tensor<double> big(Shape{200, 4}), out(Shape{200, 4});
  testing::fill_normal(big.view(), rng);
  Pre::Saved s3;
  dp.forward(ctx, big.view(), out.view(), s3);
  int same = 0;
  for (index_t i = 0; i < 800; ++i) same += out[i] == big[i];
  CHECK(same > 300);
  CHECK(same < 500);
  ctx.training = false;
  dp.forward(ctx, big.view(), out.view(), s3);
  same = 0;
  for (index_t i = 0; i < 800; ++i) same += out[i] == big[i];
  CHECK(same == 0);
  CHECK_THROWS_WITH_AS(Pre({.norm = {.dim = 4}, .mixer = {.dim = 4}, .dropout = 1.0}),
                       doctest::Contains("residual dropout must be in [0, 1)"), Error);
}

TEST_CASE("Stack of residual blocks: names, composition and gradients") {
  using Block = nn::PreNormResidual<LN, FF>;
  using S = nn::Stack<Block>;
  static_assert(nn::assert_layer<S, double>());
  S stack({.depth = 3, .block = {.norm = {.dim = 4}, .mixer = {.dim = 4, .expand = 2}, .dropout = 0.2}});
  ParamStore<double> store;
  store.bind(stack);
  CHECK(store.find("layers.2.mixer.linear1.weight") != nullptr);
  CHECK(store.find("layers.0.norm.bias") != nullptr);
  CHECK(store.entries().size() == 18);
  CHECK(stack.layers[0].cfg.stream != stack.layers[1].cfg.stream);
  HostContext ctx;
  randomize_and_check(stack, Shape{2, 3, 4}, 31, &ctx, &store);
  // Equals applying the blocks one after another.
  ctx.training = false;
  Rng rng(1);
  Tensor<double> x(Shape{2, 4}), y(Shape{2, 4}), a(Shape{2, 4}), b(Shape{2, 4});
  testing::fill_normal(x.view(), rng);
  S::Saved s;
  stack.forward(ctx, x.view(), y.view(), s);
  Block::Saved bs;
  stack.layers[0].forward(ctx, x.view(), a.view(), bs);
  stack.layers[1].forward(ctx, a.view(), b.view(), bs);
  stack.layers[2].forward(ctx, b.view(), a.view(), bs);
  for (index_t i = 0; i < 8; ++i) CHECK(y[i] == doctest::Approx(a[i]));
  CHECK_THROWS_WITH_AS(S({.depth = 0, .block = {.norm = {.dim = 4}, .mixer = {.dim = 4}}}),
                       doctest::Contains("depth >= 1"), Error);
}

TEST_CASE("Residual with a run-time pre/post choice and RuntimeNorm: same numbers as the fixed types") {
  using RN = nn::RuntimeNorm<double>;
  HostContext ctx;
  for (bool prenorm : {true, false})
    for (double p : {0.0, 0.3}) {
      CAPTURE(prenorm);
      CAPTURE(p);
      nn::Residual<LN, FF>::Config rc;
      rc.norm = {.dim = 4};
      rc.mixer = {.dim = 4, .expand = 2};
      rc.dropout = p;
      rc.stream = 5;
      rc.prenorm = prenorm;
      nn::Residual<LN, FF> dyn(rc);
      ParamStore<double> s1;
      randomize_and_check(dyn, Shape{2, 3, 4}, 31, &ctx, &s1);
      // The fixed type on the same parameters gives the same output and gradients, bit for bit.
      auto compare = [&](auto fixed) {
        ParamStore<double> s2;
        s2.bind(fixed);
        auto v1 = s1.values(), v2 = s2.values();
        REQUIRE(v1.numel() == v2.numel());
        std::copy(v1.data, v1.data + v1.numel(), v2.data);
        Rng rng(4);
        Tensor<double> x(Shape{2, 3, 4}), dy(Shape{2, 3, 4}), y1(x.shape()), y2(x.shape()), dx1(x.shape()),
            dx2(x.shape());
        testing::fill_normal(x.view(), rng);
        testing::fill_normal(dy.view(), rng);
        ctx.seed = 17;
        typename nn::Residual<LN, FF>::Saved a;
        typename decltype(fixed)::Saved b;
        dyn.forward(ctx, x.view(), y1.view(), a);
        fixed.forward(ctx, x.view(), y2.view(), b);
        dyn.backward(ctx, a, dy.view(), dx1.view());
        fixed.backward(ctx, b, dy.view(), dx2.view());
        for (index_t i = 0; i < x.numel(); ++i) {
          CHECK(y1[i] == y2[i]);
          CHECK(dx1[i] == dx2[i]);
        }
      };
      typename nn::PreNormResidual<LN, FF>::Config fc{.norm = {.dim = 4}, .mixer = {.dim = 4, .expand = 2},
                                                      .dropout = p, .stream = 5};
      if (prenorm)
        compare(nn::PreNormResidual<LN, FF>(fc));
      else
        compare(nn::PostNormResidual<LN, FF>(fc));
    }
  // Every normalization kind inside a post-norm block: finite-difference gradients.
  for (auto kind : {nn::NormKind::layer, nn::NormKind::batch, nn::NormKind::none}) {
    nn::Residual<RN, FF>::Config c;
    c.norm = {.dim = 4, .kind = kind};
    c.mixer = {.dim = 4, .expand = 2};
    c.prenorm = false;
    nn::Residual<RN, FF> block(c);
    randomize_and_check(block, Shape{3, 5, 4}, 41, &ctx);
  }
}

TEST_CASE("RuntimeNorm: parameters of the chosen norm under its names, identity for none") {
  auto names = [](nn::NormKind k) {
    nn::RuntimeNorm<double> n({.dim = 3, .kind = k});
    std::vector<std::string> out;
    n.parameters([&](std::string_view name, Param<double>&) { out.emplace_back(name); });
    return out;
  };
  CHECK(names(nn::NormKind::layer) == std::vector<std::string>{"weight", "bias"});
  CHECK(names(nn::NormKind::batch) == std::vector<std::string>{"weight", "bias", "running_mean", "running_var"});
  CHECK(names(nn::NormKind::none).empty());
  // The chosen norm's numbers: RuntimeNorm(batch) equals BatchNorm in training and evaluation.
  nn::RuntimeNorm<double> rn({.dim = 3, .kind = nn::NormKind::batch});
  nn::BatchNorm<double> bn({.dim = 3});
  ParamStore<double> s1, s2;
  s1.bind(rn);
  s2.bind(bn);
  Rng rng(2);
  rn.init(rng);
  bn.init(rng);
  Tensor<double> x(Shape{4, 2, 3}), y1(x.shape()), y2(x.shape());
  testing::fill_normal(x.view(), rng);
  HostContext ctx;
  for (bool training : {true, false}) {
    ctx.training = training;
    nn::RuntimeNorm<double>::Saved a;
    nn::BatchNorm<double>::Saved b;
    rn.forward(ctx, x.view(), y1.view(), a);
    bn.forward(ctx, x.view(), y2.view(), b);
    for (index_t i = 0; i < x.numel(); ++i) CHECK(y1[i] == y2[i]);
  }
  // none: y = x.
  nn::RuntimeNorm<double> id({.dim = 3, .kind = nn::NormKind::none});
  nn::RuntimeNorm<double>::Saved s;
  id.forward(ctx, x.view(), y1.view(), s);
  for (index_t i = 0; i < x.numel(); ++i) CHECK(y1[i] == x[i]);
  CHECK(nn::norm_kind("batch") == nn::NormKind::batch);
  CHECK_THROWS_WITH_AS(nn::norm_kind("group"), doctest::Contains("unknown normalization 'group'"), Error);
}
