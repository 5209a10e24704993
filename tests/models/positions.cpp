// The encoders' Position slot: every policy (none, sinusoidal, learned, and AnyPosition holding each) through a
// whole model with finite-difference gradients in double; AnyPosition bit for bit the static policy it holds
// (names, initial values, loss, gradients); learned tables (checkpoint name, group, rows added by position,
// a long input refused) and the fixed sinusoidal code written out; bad position settings named.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include <longseq/heads/classification.hpp>
#include <longseq/models/family.hpp>
#include <longseq/models/model.hpp>
#include <longseq/nn/feed_forward.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>

#include "nn/grad_check.hpp"

using namespace longseq;

namespace {

template <class T>
using Block = nn::PreNormResidual<nn::LayerNorm<T>, nn::FeedForward<T>>;
template <class T, template <class, class> class Position>
using TokenNet = models::Model<models::TokenEncoder<T, device::host, Position>, nn::Stack<Block<T>>, nn::LayerNorm<T>,
                               heads::ClassificationHead<T>>;
template <class T, template <class, class> class Position>
using PixelNet = models::Model<models::LinearEncoder<T, device::host, Position>, nn::Stack<Block<T>>,
                               nn::LayerNorm<T>, heads::ClassificationHead<T>>;

constexpr index_t b = 3, l = 5, h = 4, vocab = 7, max_len = 8;

template <class Net>
typename Net::Config config(typename Net::encoder_type::Config enc) {
  return {enc, {.depth = 2, .block = {{.dim = h}, {.dim = h, .expand = 2}}}, {.dim = h},
          {.dim = h, .classes = 3, .pool = nn::PoolMode::mean}};
}

// One batch of token ids or pixel values (with lengths, so pooling sees padding) and class labels.
template <class T>
struct Batch {
  Tensor<std::int32_t> ids{Shape{b, l}}, len{Shape{b}}, labels{Shape{b}};
  Tensor<T> values{Shape{b, l, 2}};
  explicit Batch(std::uint64_t seed) {
    Rng rng(seed);
    for (index_t i = 0; i < b * l; ++i) ids[i] = std::int32_t(rng.below(vocab));
    for (index_t i = 0; i < values.numel(); ++i) values[i] = T(rng.normal(0.0, 1.0));
    for (index_t i = 0; i < b; ++i) {
      len[i] = std::int32_t(2 + i % 4);
      labels[i] = std::int32_t(i % 3);
    }
  }
  models::Inputs<T> inputs() const { return {ids.view(), values.view(), len.view()}; }
  heads::Targets<T> targets() const { return {labels.view(), {}, {}, {}}; }
};

// Finite differences of the loss against the analytic gradients of every parameter of a double model.
template <class Net>
void check_model_gradients(typename Net::encoder_type::Config enc, std::vector<std::string>& names) {
  Net net(config<Net>(enc));
  ParamStore<double> store;
  store.bind(net);
  Rng rng(3);
  net.init(rng);
  for (const auto& e : store.entries()) names.push_back(e.name);
  const Batch<double> batch(5);
  HostContext ctx;
  auto g = store.grads();
  for (index_t i = 0; i < g.numel(); ++i) g[i] = 0;
  typename Net::Saved s;
  net.forward(ctx, batch.inputs(), batch.targets(), s);
  net.backward(ctx, s, 1.0);
  auto loss = [&] {
    typename Net::Saved u;
    return net.forward(ctx, batch.inputs(), batch.targets(), u).loss;
  };
  for (const auto& e : store.entries())
    testing::compare_fd("d " + e.name, e.param->value, e.param->grad, loss, 1e-6, 24);
}

// What a float model computes on one batch: parameter names, initial values, loss and gradients.
struct Run {
  std::vector<std::string> names;
  std::vector<float> values, grads;
  double loss = 0;
};
template <class Net>
Run run_float(typename Net::encoder_type::Config enc) {
  Net net(config<Net>(enc));
  ParamStore<float> store;
  store.bind(net);
  Rng rng(11, 1);
  net.init(rng);
  const Batch<float> batch(12);
  HostContext ctx;
  auto g = store.grads();
  for (index_t i = 0; i < g.numel(); ++i) g[i] = 0;
  typename Net::Saved s;
  Run r;
  r.loss = net.forward(ctx, batch.inputs(), batch.targets(), s).loss;
  net.backward(ctx, s, 1.0);
  for (const auto& e : store.entries()) r.names.push_back(e.name);
  r.values.assign(store.values().data, store.values().data + store.values().numel());
  r.grads.assign(g.data, g.data + g.numel());
  return r;
}
void check_same(const Run& a, const Run& b) {
  CHECK(a.names == b.names);
  CHECK(a.values == b.values);
  CHECK(a.loss == b.loss);
  CHECK(a.grads == b.grads);
}

}  // namespace

TEST_CASE("every position policy through a whole token model: finite-difference gradients and parameter names") {
  using attention::LearnedPositionConfig, attention::SinusoidalPositionConfig;
  using Any = TokenNet<double, attention::AnyPosition>;
  std::vector<std::string> none, sinus, learned, any_learned, any_sinus;
  check_model_gradients<TokenNet<double, attention::NoPosition>>({.vocab = vocab, .dim = h}, none);
  check_model_gradients<TokenNet<double, attention::SinusoidalPosition>>({.vocab = vocab, .dim = h}, sinus);
  check_model_gradients<TokenNet<double, attention::LearnedPosition>>(
      {.vocab = vocab, .dim = h, .position = {.max_len = max_len}}, learned);
  check_model_gradients<Any>({.vocab = vocab, .dim = h, .position = LearnedPositionConfig{.max_len = max_len}},
                             any_learned);
  check_model_gradients<Any>({.vocab = vocab, .dim = h, .position = SinusoidalPositionConfig{}}, any_sinus);
  // Only a learned table adds a parameter, under the name checkpoints have always used.
  CHECK(none == sinus);
  CHECK(sinus.size() + 1 == learned.size());
  CHECK(learned[1] == "encoder.position.weight");
  CHECK(any_learned == learned);
  CHECK(any_sinus == sinus);
}

TEST_CASE("every position policy through a whole pixel model: finite-difference gradients") {
  std::vector<std::string> none, sinus, learned;
  check_model_gradients<PixelNet<double, attention::AnyPosition>>({.channels = 2, .dim = h}, none);
  check_model_gradients<PixelNet<double, attention::SinusoidalPosition>>({.channels = 2, .dim = h}, sinus);
  check_model_gradients<PixelNet<double, attention::LearnedPosition>>(
      {.channels = 2, .dim = h, .position = {.max_len = l}}, learned);
  CHECK(none == sinus);
  CHECK(learned[2] == "encoder.position.weight");
}

TEST_CASE("AnyPosition is bit for bit the policy it holds: names, initial values, loss and gradients (float)") {
  using attention::LearnedPositionConfig, attention::SinusoidalPositionConfig;
  using AnyTok = TokenNet<float, attention::AnyPosition>;
  using AnyPix = PixelNet<float, attention::AnyPosition>;
  SUBCASE("token encoder, each scheme") {
    check_same(run_float<TokenNet<float, attention::NoPosition>>({.vocab = vocab, .dim = h}),
               run_float<AnyTok>({.vocab = vocab, .dim = h}));
    check_same(run_float<TokenNet<float, attention::SinusoidalPosition>>({.vocab = vocab, .dim = h}),
               run_float<AnyTok>({.vocab = vocab, .dim = h, .position = SinusoidalPositionConfig{}}));
    check_same(
        run_float<TokenNet<float, attention::LearnedPosition>>({.vocab = vocab, .dim = h, .position = {.max_len = 8}}),
        run_float<AnyTok>({.vocab = vocab, .dim = h, .position = LearnedPositionConfig{.max_len = 8}}));
  }
  SUBCASE("linear encoder, each scheme") {
    check_same(run_float<PixelNet<float, attention::NoPosition>>({.channels = 2, .dim = h}),
               run_float<AnyPix>({.channels = 2, .dim = h}));
    check_same(run_float<PixelNet<float, attention::SinusoidalPosition>>({.channels = 2, .dim = h}),
               run_float<AnyPix>({.channels = 2, .dim = h, .position = SinusoidalPositionConfig{}}));
    check_same(
        run_float<PixelNet<float, attention::LearnedPosition>>({.channels = 2, .dim = h, .position = {.max_len = 8}}),
        run_float<AnyPix>({.channels = 2, .dim = h, .position = LearnedPositionConfig{.max_len = 8}}));
  }
}

TEST_CASE("token model with learned positions: the table's shape and group; no gradient past the batch's length") {
  using Net = TokenNet<double, attention::LearnedPosition>;
  Net net(config<Net>({.vocab = vocab, .dim = h, .position = {.max_len = max_len}}));
  ParamStore<double> store;
  store.bind(net);
  Rng rng(3);
  net.init(rng);
  const auto* table = store.find("encoder.position.weight");
  REQUIRE(table != nullptr);
  CHECK(table->param->shape == Shape{max_len, h});
  CHECK(table->param->group == ParamGroup::no_decay);
  const Batch<double> batch(5);
  HostContext ctx;
  auto g = store.grads();
  for (index_t i = 0; i < g.numel(); ++i) g[i] = 0;
  Net::Saved s;
  net.forward(ctx, batch.inputs(), batch.targets(), s);
  net.backward(ctx, s, 1.0);
  double beyond = 0;  // positions past the batch's length get no gradient
  for (index_t i = l * h; i < max_len * h; ++i) beyond += std::abs(table->param->grad[i]);
  CHECK(beyond == 0.0);
  double within = 0;
  for (index_t i = 0; i < l * h; ++i) within += std::abs(table->param->grad[i]);
  CHECK(within > 0.0);
}

TEST_CASE("linear encoder with learned positions adds row l of the table at step l; bad settings are named") {
  using Plain = models::LinearEncoder<double>;
  using Enc = models::LinearEncoder<double, device::host, attention::LearnedPosition>;
  const index_t n_b = 2, n_l = 5, n_h = 3;
  Plain plain({.channels = 2, .dim = n_h});
  Enc learned({.channels = 2, .dim = n_h, .position = {.max_len = 8}});
  ParamStore<double> sp, sl;
  sp.bind(plain);
  sl.bind(learned);
  Rng r1(4), r2(4);
  plain.init(r1);
  learned.init(r2);  // the table draws on its own stream: the projection is the plain encoder's
  for (index_t i = 0; i < plain.linear.weight.value.numel(); ++i)
    REQUIRE(plain.linear.weight.value[i] == learned.linear.weight.value[i]);
  Tensor<double> values(Shape{n_b, n_l, 2}), y0(Shape{n_b, n_l, n_h}), y1(Shape{n_b, n_l, n_h});
  Rng rng(5);
  testing::fill_normal(values.view(), rng);
  HostContext ctx;
  Plain::Saved s0;
  Enc::Saved s1;
  plain.forward(ctx, {{}, values.view(), {}}, y0.view(), s0);
  learned.forward(ctx, {{}, values.view(), {}}, y1.view(), s1);
  for (index_t n = 0; n < n_b; ++n)
    for (index_t t = 0; t < n_l; ++t)
      for (index_t c = 0; c < n_h; ++c)
        CHECK(y1(n, t, c) == doctest::Approx(y0(n, t, c) + learned.position.weight.value(t, c)).epsilon(1e-14));
  Tensor<double> long_values(Shape{1, 9, 2}), long_y(Shape{1, 9, n_h});
  CHECK_THROWS_WITH_AS(learned.forward(ctx, {{}, long_values.view(), {}}, long_y.view(), s1),
                       doctest::Contains("tensor 'x' has length 9 > max_len 8"), Error);
  // The policy's width is the encoder's; another one is refused, as is a table without rows.
  CHECK_THROWS_WITH_AS(Enc({.channels = 1, .dim = n_h, .position = {.dim = 5, .max_len = 4}}),
                       doctest::Contains("LinearEncoder: position.dim = 5, expected 0 (the encoder's dim) or 3"),
                       Error);
  using LearnedTokens = models::TokenEncoder<double, device::host, attention::LearnedPosition>;
  CHECK_THROWS_WITH_AS(LearnedTokens({.vocab = 3, .dim = n_h}),
                       doctest::Contains("LearnedPosition needs positive dim and max_len, got dim = 3, max_len = 0"),
                       Error);
  CHECK_THROWS_WITH_AS(models::AnyPositionTokenEncoder<double>(
                           {.vocab = 3, .dim = n_h, .position = attention::SinusoidalPositionConfig{.dim = 4}}),
                       doctest::Contains("TokenEncoder: position.dim = 4, expected 0 (the encoder's dim) or 3"), Error);
}

TEST_CASE("linear encoder with sinusoidal positions adds sin/cos(t / 10000^(2i/H)) at step t, bit for bit in float") {
  // Written out here, independently of attention::sinusoid, which the policy calls.
  const index_t n_b = 2, n_l = 37, n_h = 6;
  models::LinearEncoder<float> plain({.channels = 1, .dim = n_h});
  models::LinearEncoder<float, device::host, attention::SinusoidalPosition> sinus({.channels = 1, .dim = n_h});
  models::AnyPositionLinearEncoder<float> any(
      {.channels = 1, .dim = n_h, .position = attention::SinusoidalPositionConfig{}});
  ParamStore<float> sp, ss, sa;
  sp.bind(plain);
  ss.bind(sinus);
  sa.bind(any);
  Rng r1(6), r2(6), r3(6);
  plain.init(r1);
  sinus.init(r2);
  any.init(r3);
  Tensor<float> values(Shape{n_b, n_l, 1}), y0(Shape{n_b, n_l, n_h}), y1(Shape{n_b, n_l, n_h}),
      y2(Shape{n_b, n_l, n_h});
  Rng rng(7);
  for (index_t i = 0; i < values.numel(); ++i) values[i] = float(rng.normal(0.0, 1.0));
  HostContext ctx;
  decltype(plain)::Saved s0;
  decltype(sinus)::Saved s1;
  decltype(any)::Saved s2;
  plain.forward(ctx, {{}, values.view(), {}}, y0.view(), s0);
  sinus.forward(ctx, {{}, values.view(), {}}, y1.view(), s1);
  any.forward(ctx, {{}, values.view(), {}}, y2.view(), s2);
  for (index_t n = 0; n < n_b; ++n)
    for (index_t t = 0; t < n_l; ++t)
      for (index_t i = 0; i < n_h; ++i) {
        const double freq = std::pow(10000.0, -double(i - i % 2) / double(n_h));
        const auto pe = float(i % 2 == 0 ? std::sin(double(t) * freq) : std::cos(double(t) * freq));
        CHECK(y1(n, t, i) == y0(n, t, i) + pe);
        CHECK(y2(n, t, i) == y1(n, t, i));
      }
}
