// Positions in the encoders' position slot: learned tables (checkpoint names, finite-difference gradients
// through a whole model, the table added row by row, the errors of a bad configuration or a long input) and
// the fixed sinusoidal code.
#include <doctest/doctest.h>

#include <cmath>

#include <longseq/heads/classification.hpp>
#include <longseq/models/model.hpp>
#include <longseq/nn/feed_forward.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>

#include "nn/grad_check.hpp"

using namespace longseq;

TEST_CASE("token model with learned positions: the table's name, group and finite-difference gradients") {
  using Block = nn::PreNormResidual<nn::LayerNorm<double>, nn::FeedForward<double>>;
  using Net = models::Model<models::TokenEncoder<double>, nn::Stack<Block>, nn::LayerNorm<double>,
                            heads::ClassificationHead<double>>;
  const index_t b = 3, l = 4, h = 4, max_len = 6;
  Net net({{.vocab = 7, .dim = h, .padding_idx = -1, .learned_positions = max_len},
           {.depth = 2, .block = {{.dim = h}, {.dim = h, .expand = 2}}},
           {.dim = h},
           {.dim = h, .classes = 3, .pool = nn::PoolMode::mean}});
  ParamStore<double> store;
  store.bind(net);
  Rng rng(3);
  net.init(rng);
  const auto* table = store.find("encoder.position.weight");
  REQUIRE(table != nullptr);
  CHECK(table->param->shape == Shape{max_len, h});
  CHECK(table->param->group == ParamGroup::no_decay);
  Tensor<std::int32_t> ids(Shape{b, l}), len(Shape{b}), labels(Shape{b});
  for (index_t i = 0; i < b * l; ++i) ids[i] = std::int32_t(rng.below(7));
  for (index_t i = 0; i < b; ++i) {
    len[i] = std::int32_t(2 + i % 3);
    labels[i] = std::int32_t(i);
  }
  const models::Inputs<double> in{ids.view(), {}, len.view()};
  const heads::Targets<double> t{labels.view(), {}, {}, {}};
  HostContext ctx;
  auto g = store.grads();
  for (index_t i = 0; i < g.numel(); ++i) g[i] = 0;
  Net::Saved s;
  net.forward(ctx, in, t, s);
  net.backward(ctx, s, 1.0);
  auto loss = [&] {
    Net::Saved u;
    return net.forward(ctx, in, t, u).loss;
  };
  for (const auto& e : store.entries()) testing::compare_fd("d " + e.name, e.param->value, e.param->grad, loss, 1e-6, 24);
  double beyond = 0;  // positions past the batch's length get no gradient
  for (index_t i = l * h; i < max_len * h; ++i) beyond += std::abs(table->param->grad[i]);
  CHECK(beyond == 0.0);
  double within = 0;
  for (index_t i = 0; i < l * h; ++i) within += std::abs(table->param->grad[i]);
  CHECK(within > 0.0);
}

TEST_CASE("linear encoder with learned positions adds row l of the table at step l; bad settings are named") {
  using Enc = models::LinearEncoder<double>;
  const index_t b = 2, l = 5, h = 3;
  Enc plain({.channels = 2, .dim = h});
  Enc learned({.channels = 2, .dim = h, .learned_positions = 8});
  ParamStore<double> sp, sl;
  sp.bind(plain);
  sl.bind(learned);
  Rng r1(4), r2(4);
  plain.init(r1);
  learned.init(r2);  // the table draws on its own stream: the projection is the plain encoder's
  for (index_t i = 0; i < plain.linear.weight.value.numel(); ++i)
    REQUIRE(plain.linear.weight.value[i] == learned.linear.weight.value[i]);
  Tensor<double> values(Shape{b, l, 2}), y0(Shape{b, l, h}), y1(Shape{b, l, h});
  Rng rng(5);
  testing::fill_normal(values.view(), rng);
  HostContext ctx;
  Enc::Saved s0, s1;
  plain.forward(ctx, {{}, values.view(), {}}, y0.view(), s0);
  learned.forward(ctx, {{}, values.view(), {}}, y1.view(), s1);
  for (index_t n = 0; n < b; ++n)
    for (index_t t = 0; t < l; ++t)
      for (index_t c = 0; c < h; ++c)
        CHECK(y1(n, t, c) == doctest::Approx(y0(n, t, c) + learned.position->weight.value(t, c)).epsilon(1e-14));
  Tensor<double> long_values(Shape{1, 9, 2}), long_y(Shape{1, 9, h});
  CHECK_THROWS_WITH_AS(learned.forward(ctx, {{}, long_values.view(), {}}, long_y.view(), s1),
                       doctest::Contains("tensor 'x' has length 9 > max_len 8"), Error);
  CHECK_THROWS_WITH_AS(Enc({.channels = 1, .dim = h, .sinusoidal = true, .learned_positions = 4}),
                       doctest::Contains("LinearEncoder: sinusoidal = true and learned_positions = 4"), Error);
  CHECK_THROWS_WITH_AS(models::TokenEncoder<double>({.vocab = 3, .dim = h, .learned_positions = -1}),
                       doctest::Contains("TokenEncoder: learned_positions = -1, expected >= 0"), Error);
}

TEST_CASE("linear encoder with sinusoidal positions adds sin/cos(t / 10000^(2i/H)) at step t, bit for bit in float") {
  // Written out here, independently of attention::SinusoidalPosition, which the encoders call.
  using Enc = models::LinearEncoder<float>;
  const index_t b = 2, l = 37, h = 6;
  Enc plain({.channels = 1, .dim = h});
  Enc sinus({.channels = 1, .dim = h, .sinusoidal = true});
  ParamStore<float> sp, ss;
  sp.bind(plain);
  ss.bind(sinus);
  Rng r1(6), r2(6);
  plain.init(r1);
  sinus.init(r2);
  Tensor<float> values(Shape{b, l, 1}), y0(Shape{b, l, h}), y1(Shape{b, l, h});
  Rng rng(7);
  for (index_t i = 0; i < values.numel(); ++i) values[i] = float(rng.normal(0.0, 1.0));
  HostContext ctx;
  Enc::Saved s0, s1;
  plain.forward(ctx, {{}, values.view(), {}}, y0.view(), s0);
  sinus.forward(ctx, {{}, values.view(), {}}, y1.view(), s1);
  for (index_t n = 0; n < b; ++n)
    for (index_t t = 0; t < l; ++t)
      for (index_t i = 0; i < h; ++i) {
        const double freq = std::pow(10000.0, -double(i - i % 2) / double(h));
        const auto pe = float(i % 2 == 0 ? std::sin(double(t) * freq) : std::cos(double(t) * freq));
        CHECK(y1(n, t, i) == y0(n, t, i) + pe);
      }
}
