#include <doctest/doctest.h>

#include <longseq/attention/mha.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>

#include "../nn/grad_check.hpp"
#include "reference.hpp"

using namespace longseq;
using attention::MultiHeadAttention;
using attention::Rotary;

namespace {
template <class Pos = attention::NoRotation>
struct Case {
  using M = MultiHeadAttention<double, device::host, Pos>;
  M m;
  ParamStore<double> store;
  Tensor<double> x;
  std::vector<std::uint8_t> pad;
  Tensor<std::uint8_t> pad_t;
  Rng rng;
  Case(typename M::Config c, index_t B, index_t L, std::uint64_t seed, bool padding = false)
      : m(c), x(Shape{B, L, c.dim}), rng(seed) {
    store.bind(m);
    m.init(rng);
    testing::fill_normal(x.view(), rng);
    if (padding) {
      // Sequence b has length L - 2 b (at least 1): its tail keys are padding.
      pad_t = Tensor<std::uint8_t>(Shape{B, L}, std::uint8_t(0));
      for (index_t b = 0; b < B; ++b)
        for (index_t l = std::max<index_t>(1, L - 2 * b); l < L; ++l) pad_t(b, l) = 1;
      pad.assign(pad_t.data(), pad_t.data() + B * L);
      m.key_padding = pad_t.view();
    }
  }
  void compare_naive(HostContext& ctx, double tol = 1e-12) {
    Tensor<double> y(x.shape());
    typename M::Saved s;
    m.forward(ctx, x.view(), y.view(), s);
    const auto ref = testing::naive_mha(m, x, pad, ctx.training ? m.cfg.dropout : 0.0, ctx.seed);
    double worst = 0;
    for (index_t i = 0; i < y.numel(); ++i) worst = std::max(worst, std::abs(y[i] - ref[std::size_t(i)]));
    CHECK(worst < tol);
  }
  void check_grads(HostContext& ctx) { testing::check_layer_gradients(m, store, x, x.shape(), rng, 1e-6, &ctx); }
};
}  // namespace

TEST_CASE("flash attention equals the naive softmax(q k^T) v reference") {
  HostContext ctx;
  for (index_t block : {3, 4, 64})
    for (bool causal : {false, true})
      for (bool padding : {false, true}) {
        CAPTURE(block);
        CAPTURE(causal);
        CAPTURE(padding);
        Case<> c({.dim = 8, .heads = 2, .causal = causal, .block = block}, 3, 10, 1, padding);
        c.compare_naive(ctx);
      }
}

TEST_CASE("block-local attention equals the naive reference with the same mask") {
  HostContext ctx;
  for (bool causal : {false, true})
    for (index_t back : {0, 1, 2})
      for (index_t block : {2, 5}) {
        CAPTURE(causal);
        CAPTURE(back);
        Case<> c(
            {.dim = 6, .heads = 3, .causal = causal, .window = 3, .look_back = back, .look_forward = 1, .block = block},
            2, 11, 2, true);
        c.compare_naive(ctx);
      }
  // A window as long as the sequence with one block on each side is full attention.
  attention::MaskSpec full, local;
  local.window = 16;
  for (index_t i = 0; i < 16; ++i)
    for (index_t j = 0; j < 16; ++j) CHECK(full.allowed(i, j) == local.allowed(i, j));
  local.window = 4;
  CHECK(local.allowed(5, 0));    // previous block
  CHECK(local.allowed(5, 11));   // next block
  CHECK(!local.allowed(5, 12));  // two blocks ahead
  CHECK(!local.allowed(9, 3));   // two blocks back
}

TEST_CASE("rotary attention equals the naive reference; rotation keeps norms and relative angles") {
  HostContext ctx;
  for (double frac : {1.0, 0.5})
    for (bool inter : {false, true}) {
      Case<Rotary> c(
          {.dim = 8, .heads = 2, .causal = true, .position = {.fraction = frac, .interleaved = inter}, .block = 3}, 2,
          7, 3);
      c.compare_naive(ctx);
    }
  Rotary r({.fraction = 1.0}, 4);
  // <R(p) a, R(p + d) b> depends only on d.
  std::vector<double> a = {0.3, -1.0, 2.0, 0.5}, b = {1.0, 0.2, -0.7, 0.4};
  auto at = [&](std::vector<double> v, index_t pos) {
    std::vector<double> buf(std::size_t(4 * (pos + 1)), 0.0);
    std::copy(v.begin(), v.end(), buf.begin() + pos * 4);
    r.apply(buf.data(), 1, pos + 1, 1, 0, 4);
    return std::vector<double>(buf.begin() + pos * 4, buf.begin() + pos * 4 + 4);
  };
  auto dotv = [](const std::vector<double>& u, const std::vector<double>& w) {
    double s = 0;
    for (std::size_t i = 0; i < u.size(); ++i) s += u[i] * w[i];
    return s;
  };
  CHECK(dotv(at(a, 2), at(b, 5)) == doctest::Approx(dotv(at(a, 4), at(b, 7))));
  CHECK(dotv(at(a, 3), at(a, 3)) == doctest::Approx(dotv(a, a)));
  CHECK(r.rot_dim == 4);
  CHECK(Rotary({.fraction = 0.5}, 6).rot_dim == 2);
}

TEST_CASE("attention gradients (double, finite differences) for every variant") {
  HostContext ctx;
  SUBCASE("bidirectional") { Case<>({.dim = 6, .heads = 2, .block = 3}, 2, 5, 11).check_grads(ctx); }
  SUBCASE("causal") { Case<>({.dim = 6, .heads = 2, .causal = true, .block = 2}, 2, 5, 12).check_grads(ctx); }
  SUBCASE("padding") { Case<>({.dim = 4, .heads = 2, .block = 3}, 3, 6, 13, true).check_grads(ctx); }
  SUBCASE("local") {
    Case<>({.dim = 4, .heads = 2, .window = 2, .look_back = 1, .look_forward = 1, .block = 3}, 1, 7, 14)
        .check_grads(ctx);
    Case<>({.dim = 4, .heads = 1, .causal = true, .window = 2, .block = 2}, 2, 6, 15, true).check_grads(ctx);
  }
  SUBCASE("rotary") {
    Case<Rotary>({.dim = 8, .heads = 2, .position = {.fraction = 0.5}, .block = 4}, 1, 6, 16).check_grads(ctx);
  }
  SUBCASE("dropout") {
    ctx.seed = 77;
    Case<> c({.dim = 4, .heads = 2, .dropout = 0.3, .stream = 5, .block = 3}, 2, 5, 17);
    c.compare_naive(ctx);
    c.check_grads(ctx);
  }
  SUBCASE("no bias") { Case<>({.dim = 4, .heads = 2, .bias = false}, 1, 4, 18).check_grads(ctx); }
}

TEST_CASE("attention parameter names and bad inputs") {
  MultiHeadAttention<float> m({.dim = 8, .heads = 2});
  ParamStore<float> store;
  store.bind(m);
  CHECK(store.entries().size() == 8);
  CHECK(store.find("q_proj.weight")->param->shape == Shape{8, 8});
  CHECK(store.find("out_proj.bias") != nullptr);
  HostContext ctx;
  MultiHeadAttention<float>::Saved s;
  Tensor<float> x(Shape{2, 3, 6}), y(Shape{2, 3, 6});
  CHECK_THROWS_WITH_AS(m.forward(ctx, x.view(), y.view(), s),
                       doctest::Contains("tensor 'x' has shape (2, 3, 6), expected (B, L, 8)"), Error);
  Tensor<float> x2(Shape{6, 8}), y2(Shape{6, 8});
  CHECK_THROWS_WITH_AS(m.forward(ctx, x2.view(), y2.view(), s),
                       doctest::Contains("tensor 'x' has rank 2 (shape (6, 8)), expected rank 3"), Error);
  Tensor<float> x3(Shape{2, 3, 8}), y3(Shape{2, 3, 8});
  Tensor<std::uint8_t> pad(Shape{2, 4}, std::uint8_t(0));
  m.key_padding = pad.view();
  CHECK_THROWS_WITH_AS(m.forward(ctx, x3.view(), y3.view(), s),
                       doctest::Contains("tensor 'key_padding' has shape (2, 4), expected (2, 3)"), Error);
  CHECK_THROWS_WITH_AS(MultiHeadAttention<float>({.dim = 6, .heads = 4}),
                       doctest::Contains("dim 6 must be a positive multiple of heads 4"), Error);
  CHECK_THROWS_WITH_AS(Rotary({.fraction = 1.5}, 4), doctest::Contains("Rotary fraction must be in (0, 1]"), Error);
}

TEST_CASE("a stack of pre-norm attention blocks passes the key padding mask to every layer") {
  using Block = nn::PreNormResidual<nn::LayerNorm<double>, MultiHeadAttention<double>>;
  nn::Stack<Block> stack({.depth = 2, .block = {.norm = {.dim = 4}, .mixer = {.dim = 4, .heads = 2}}});
  ParamStore<double> store;
  store.bind(stack);
  Rng rng(3);
  stack.init(rng);
  Tensor<std::uint8_t> pad(Shape{1, 5}, std::uint8_t(0));
  pad[4] = 1;
  stack.set_key_padding(TensorView<const std::uint8_t>(pad.view()));
  CHECK(stack.layers[1].mixer.key_padding.data == pad.data());
  // Changing the padded position's input leaves the other outputs unchanged.
  Tensor<double> x(Shape{1, 5, 4}), y(x.shape()), y2(x.shape());
  testing::fill_normal(x.view(), rng);
  HostContext ctx;
  nn::Stack<Block>::Saved s;
  stack.forward(ctx, x.view(), y.view(), s);
  for (index_t c = 0; c < 4; ++c) x(0, 4, c) += 3.0;
  stack.forward(ctx, x.view(), y2.view(), s);
  for (index_t l = 0; l < 4; ++l)
    for (index_t c = 0; c < 4; ++c) CHECK(y2(0, l, c) == doctest::Approx(y(0, l, c)).epsilon(1e-14));
  CHECK(y2(0, 4, 0) != y(0, 4, 0));
}

TEST_CASE("the float exp of the flash kernels is accurate to a few ulp and maps -inf to 0") {
  // ops::fast::exp is exact to a few ulp down to -86 and flushes below (exp(-86) ~ 4.5e-38).
  std::vector<float> x;
  for (int i = 0; i <= 20000; ++i) x.push_back(-86.0f * float(i) / 20000.0f);
  x.push_back(-std::numeric_limits<float>::infinity());
  x.push_back(-100.0f);
  auto y = x;
  attention::detail::exp_row(y.data(), index_t(y.size()), 0.0f);
  double worst = 0;
  for (std::size_t i = 0; i + 2 < x.size(); ++i)
    worst = std::max(worst, std::abs(double(y[i]) - std::exp(double(x[i]))) / std::exp(double(x[i])));
  CHECK(worst < 5e-7);
  CHECK(y[y.size() - 2] == 0.0f);
  CHECK(y.back() == 0.0f);
  std::vector<float> z = {3.0f, 1.0f};
  attention::detail::exp_row(z.data(), 2, 3.0f);  // shifted by the row maximum
  CHECK(z[0] == doctest::Approx(1.0f));
  CHECK(z[1] == doctest::Approx(std::exp(-2.0)).epsilon(1e-6));
}

TEST_CASE("a sequence whose keys are all padding gets zero attention output and finite gradients") {
  MultiHeadAttention<double> m({.dim = 4, .heads = 2, .block = 2});
  ParamStore<double> store;
  store.bind(m);
  Rng rng(6);
  m.init(rng);
  Tensor<std::uint8_t> pad(Shape{2, 3}, std::uint8_t(0));
  for (index_t l = 0; l < 3; ++l) pad(1, l) = 1;
  m.set_key_padding(TensorView<const std::uint8_t>(pad.view()));
  Tensor<double> x(Shape{2, 3, 4}), y(x.shape()), dy(x.shape(), 1.0), dx(x.shape());
  testing::fill_normal(x.view(), rng);
  HostContext ctx;
  MultiHeadAttention<double>::Saved s;
  m.forward(ctx, x.view(), y.view(), s);
  for (index_t l = 0; l < 3; ++l)
    for (index_t c = 0; c < 4; ++c) CHECK(y(1, l, c) == doctest::Approx(m.out_proj.bias.value[c]));
  m.backward(ctx, s, dy.view(), dx.view());
  for (index_t i = 12; i < 24; ++i) CHECK(dx[i] == 0.0);
  for (const auto& e : store.entries())
    for (index_t i = 0; i < e.param->grad.numel(); ++i) CHECK(std::isfinite(e.param->grad[i]));
}
