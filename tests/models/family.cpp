// models::Family: dtype and device written once; Model takes both from its parts and names a part that
// disagrees. A token model with sinusoidal positions and a causal head, and a pair model with the
// retrieval head, written through a Family and checked by finite differences.
#include <doctest/doctest.h>

#include <longseq/models/family.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>

#include "nn/grad_check.hpp"

using namespace longseq;

namespace {

using F = models::Family<double>;
using Block = nn::PreNormResidual<F::LayerNorm, F::FeedForward>;

// The members are the <T, D> layers; the model's T and D come from its parts.
static_assert(std::is_same_v<F::LayerNorm, nn::LayerNorm<double, device::host>>);
static_assert(std::is_same_v<F::ClassificationHead, heads::ClassificationHead<double, device::host>>);
static_assert(std::is_same_v<F::Of<nn::Linear>, nn::Linear<double, device::host>>);
static_assert(std::is_same_v<F::TokenEncoder, models::TokenEncoder<double, device::host, attention::NoPosition>>);
static_assert(std::is_same_v<F::LinearEncoderWith<attention::LearnedPosition>,
                             models::LinearEncoder<double, device::host, attention::LearnedPosition>>);
static_assert(std::is_same_v<F::AnyPositionTokenEncoder, models::AnyPositionTokenEncoder<double>>);
using Cls = F::Model<F::TokenEncoder, nn::Stack<Block>, F::ClassificationHead>;
static_assert(std::is_same_v<Cls::value_type, double> && std::is_same_v<Cls::device_type, device::host>);
static_assert(std::is_same_v<Cls, models::Model<models::TokenEncoder<double>, nn::Stack<Block>, nn::LayerNorm<double>,
                                                heads::ClassificationHead<double>>>);

// What Model's first checks see (naming the type is enough: a Model of these parts would not compile).
using G = models::Family<double, device::cuda>;
static_assert(models::parts_agree<F::TokenEncoder, nn::Stack<Block>, F::LayerNorm, F::CausalLMHead>);
static_assert(!models::parts_agree<F::TokenEncoder, nn::Stack<Block>, F::LayerNorm, G::ClassificationHead>);
static_assert(!models::parts_agree<F::TokenEncoder, nn::Stack<Block>, G::LayerNorm, F::ClassificationHead>);
static_assert(!models::parts_agree<G::TokenEncoder, nn::Stack<Block>, F::LayerNorm, F::ClassificationHead>);
static_assert(
    !models::parts_agree<F::TokenEncoder, nn::Stack<Block>, F::LayerNorm, models::Family<float>::ClassificationHead>);

// skip_lead: leading elements of the embedding table left out (its padding row gets no gradient by design).
template <class M>
void check_model(M& model, ParamStore<double>& store, const F::Inputs& in, const F::Targets& t, index_t skip_lead = 0,
                 double tol = 1e-6) {
  HostContext ctx;
  typename M::Saved s;
  auto g = store.grads();
  for (index_t i = 0; i < g.numel(); ++i) g[i] = 0;
  model.forward(ctx, in, t, s);
  model.backward(ctx, s, 0.5);
  auto loss = [&] {
    typename M::Saved u;
    return 0.5 * model.forward(ctx, in, t, u).loss;
  };
  for (const auto& e : store.entries()) {
    auto v = e.param->value, g = e.param->grad;
    if (e.name == "encoder.embedding.weight") {
      v = TensorView<double>(v.data + skip_lead, Shape{v.numel() - skip_lead});
      g = TensorView<double>(g.data + skip_lead, Shape{g.numel() - skip_lead});
    }
    testing::compare_fd("d " + e.name, v, g, loss, tol, 12);
  }
}

}  // namespace

TEST_CASE("Family: token encoder with sinusoidal positions and a causal LM head, gradients") {
  using Net = F::Model<F::TokenEncoderWith<attention::SinusoidalPosition>, nn::Stack<Block>, F::CausalLMHead>;
  const index_t b = 2, l = 6, h = 4, vocab = 7;
  Net net({{.vocab = vocab, .dim = h, .padding_idx = 0},
           {.depth = 1, .block = {{.dim = h}, {.dim = h, .expand = 2}}},
           {.dim = h},
           {.dim = h, .classes = vocab}});
  ParamStore<double> store;
  store.bind(net);
  Rng rng(3);
  net.init(rng);
  Tensor<std::int32_t> ids(Shape{b, l}), len(Shape{b});
  for (index_t i = 0; i < b * l; ++i) ids[i] = std::int32_t(rng.below(vocab));
  ids[3] = 0;  // the padding id occurs
  len[0] = 6;
  len[1] = 4;
  check_model(net, store, {ids.view(), {}, len.view()}, {ids.view(), {}, {}, {}}, /*skip_lead=*/h);
  // The padding row (id 0) gets no gradient.
  const auto* emb = store.find("encoder.embedding.weight");
  for (index_t k = 0; k < h; ++k) CHECK(emb->param->grad[k] == 0.0);
}

TEST_CASE("Family: retrieval pairs through a linear encoder, gradients") {
  using Net = F::Model<F::AnyPositionLinearEncoder, nn::Stack<Block>, F::RetrievalHead>;
  const index_t pairs = 2, l = 5, h = 4;
  Net net({{.channels = 3, .dim = h, .position = attention::SinusoidalPositionConfig{}},
           {.depth = 1, .block = {{.dim = h}, {.dim = h, .expand = 1}}},
           {.dim = h},
           {.dim = h, .classes = 2, .hidden = 3}});
  ParamStore<double> store;
  store.bind(net);
  Rng rng(4);
  net.init(rng);
  Tensor<double> values(Shape{2 * pairs, l, 3});
  Tensor<std::int32_t> len(Shape{2 * pairs}), labels(Shape{pairs});
  testing::fill_normal(values.view(), rng);
  for (index_t i = 0; i < 2 * pairs; ++i) len[i] = std::int32_t(2 + i % 4);
  labels[0] = 1;
  labels[1] = 0;
  check_model(net, store, {{}, values.view(), len.view()}, {labels.view(), {}, {}, {}});
}
