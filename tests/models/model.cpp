// models::Model end to end: encoder -> residual stack -> norm -> head, checked by finite differences.
#include <doctest/doctest.h>

#include <longseq/heads/classification.hpp>
#include <longseq/heads/denoising.hpp>
#include <longseq/nn/batch_norm.hpp>
#include <longseq/nn/feed_forward.hpp>
#include <longseq/models/model.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>

#include "nn/grad_check.hpp"

using namespace longseq;

namespace {

template <class M>
void check_model(M& model, ParamStore<double>& store, const models::Inputs<double>& in, const heads::Targets<double>& t,
                 double tol = 1e-6) {
  HostContext ctx;
  typename M::Saved s;
  auto g = store.grads();
  for (index_t i = 0; i < g.numel(); ++i) g[i] = 0;
  model.forward(ctx, in, t, s);
  model.backward(ctx, s, 1.0);
  auto loss = [&] {
    typename M::Saved u;
    return model.forward(ctx, in, t, u).loss;
  };
  for (const auto& e : store.entries()) {
    if (e.name.find("running_") != std::string::npos) continue;  // statistics, not trained
    testing::compare_fd("d " + e.name, e.param->value, e.param->grad, loss, tol, 12);
  }
}

using FF = nn::FeedForward<double>;

}  // namespace

TEST_CASE("pixel model with a mask channel and a masked-denoising head: names and gradients") {
  using Block = nn::PreNormResidual<nn::LayerNorm<double>, FF>;
  using Enc = models::LinearEncoder<double, device::host, attention::SinusoidalPosition>;
  using Net = models::Model<Enc, nn::Stack<Block>, nn::LayerNorm<double>, heads::MaskedDenoisingHead<double>>;
  const index_t b = 2, l = 5, h = 4;
  Net::Config cfg{{.channels = 1, .dim = h, .mask_channel = true},
                  {.depth = 2, .block = {{.dim = h}, {.dim = h, .expand = 2}}},
                  {.dim = h},
                  {.dim = h, .classes = 0, .loss = heads::DenoiseLoss::l1}};
  Net net(cfg);
  ParamStore<double> store;
  store.bind(net);
  Rng rng(1);
  net.init(rng);
  CHECK(store.find("encoder.linear.weight")->param->shape == Shape{h, 2});
  CHECK(store.find("backbone.layers.1.mixer.linear2.bias") != nullptr);
  CHECK(store.find("norm.weight") != nullptr);
  CHECK(store.find("head.proj.weight")->param->shape == Shape{1, h});
  Tensor<double> values(Shape{b, l, 2}), target(Shape{b, l});
  Tensor<std::uint8_t> mask(Shape{b, l});
  for (index_t i = 0; i < b * l; ++i) {
    target[i] = rng.normal();
    mask[i] = i % 2;
    values[2 * i] = mask[i] ? 0.0 : target[i];
    values[2 * i + 1] = mask[i];
  }
  models::Inputs<double> in{{}, values.view(), {}};
  heads::Targets<double> t{{}, target.view(), mask.view(), {}};
  check_model(net, store, in, t);
  Tensor<double> wrong(Shape{b, l, 1});
  HostContext ctx;
  Net::Saved s;
  CHECK_THROWS_WITH_AS(net.forward(ctx, {{}, wrong.view(), {}}, t, s),
                       doctest::Contains("tensor 'values' has shape (2, 5, 1), expected (B, L, 2) including the mask"),
                       Error);
}

TEST_CASE("token model with BatchNorm post-norm blocks and a classification head: gradients") {
  using Block = nn::PostNormResidual<nn::BatchNorm<double>, FF>;
  using Net = models::Model<models::TokenEncoder<double>, nn::Stack<Block>, nn::LayerNorm<double>,
                            heads::ClassificationHead<double>>;
  const index_t b = 3, l = 4, h = 4;
  Net net({{.vocab = 6, .dim = h, .padding_idx = -1},
           {.depth = 2, .block = {{.dim = h}, {.dim = h, .expand = 1}}},
           {.dim = h},
           {.dim = h, .classes = 3, .pool = nn::PoolMode::mean}});
  ParamStore<double> store;
  store.bind(net);
  Rng rng(2);
  net.init(rng);
  Tensor<std::int32_t> ids(Shape{b, l}), len(Shape{b}), labels(Shape{b});
  for (index_t i = 0; i < b * l; ++i) ids[i] = std::int32_t(rng.below(6));
  for (index_t i = 0; i < b; ++i) { len[i] = std::int32_t(2 + i % 3); labels[i] = std::int32_t(i); }
  check_model(net, store, {ids.view(), {}, len.view()}, {labels.view(), {}, {}, {}});
  HostContext ctx;
  Net::Saved s;
  CHECK_THROWS_WITH_AS(net.forward(ctx, {{}, {}, {}}, {labels.view(), {}, {}, {}}, s),
                       doctest::Contains("Inputs: the batch has neither token ids nor values"), Error);
}
