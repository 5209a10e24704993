// A whole models::Model on the GPU, written once through models::Family: the device policy against the host
// policy on the same parameters and batch: the loss, the features, and every parameter gradient.
#include <doctest/doctest.h>

#include <longseq/core/cuda/memory.cuh>
#include <longseq/models/family.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>

#include "nn/device_compare.hpp"

using namespace longseq;
using Dev = device::cuda;

namespace {

template <class F, template <class> class Pick>
struct Net {
  using Block = nn::PreNormResidual<typename F::LayerNorm, typename F::FeedForward>;
  using type = typename F::template Model<typename Pick<F>::Encoder, nn::Stack<Block>, typename Pick<F>::Head>;
};

template <class X>
Tensor<X, Dev> upload(const Tensor<X>& t) {
  return t.data() ? to_device(t) : Tensor<X, Dev>();
}

// Runs the host and device nets (built by make<Config>()) on the same batch and compares them.
template <template <class> class Pick, class Make>
void compare_model(Make make, const Tensor<std::int32_t>& ids, const Tensor<float>& values,
                   const Tensor<std::int32_t>& lengths, const Tensor<std::int32_t>& classes,
                   const Tensor<float>& targets, const Tensor<std::uint8_t>& mask, double tol = 2e-4) {
  using HN = typename Net<models::Family<float>, Pick>::type;
  using DN = typename Net<models::Family<float, Dev>, Pick>::type;
  static_assert(std::is_same_v<typename DN::device_type, Dev>);
  HN h(make.template operator()<typename HN::Config>());
  DN d(make.template operator()<typename DN::Config>());
  ParamStore<float> hs;
  ParamStore<float, Dev> ds;
  hs.bind(h);
  ds.bind(d);
  Rng rng(8);
  h.init(rng);
  testing::fill_uniform(hs.grads(), rng, 0.5);
  testing::copy_store(hs, ds);
  auto idsd = upload(ids), lend = upload(lengths), clsd = upload(classes);
  auto vald = upload(values), tgtd = upload(targets);
  auto maskd = upload(mask);
  HostContext hctx;
  Context<Dev> dctx;
  hctx.seed = dctx.seed = 3;
  typename HN::Saved hsaved;
  typename DN::Saved dsaved;
  const auto hst = h.forward(hctx, {ids.view(), values.view(), lengths.view()},
                             {classes.view(), targets.view(), mask.view(), {}}, hsaved);
  const auto dst = d.forward(dctx, {idsd.view(), vald.view(), lend.view()},
                             {clsd.view(), tgtd.view(), maskd.view(), {}}, dsaved);
  h.backward(hctx, hsaved, 1.5);
  d.backward(dctx, dsaved, 1.5);
  dctx.synchronize();
  INFO("loss host ", hst.loss, " device ", dst.loss);
  CHECK(dst.loss == doctest::Approx(hst.loss).epsilon(1e-5));
  CHECK(dst.count == hst.count);
  const double ef = testing::rel_error<float>(dsaved.h2.view(), hsaved.h2.view());
  INFO("relative error of the features: ", ef);
  CHECK(ef < tol);
  testing::check_grads(hs, ds, tol);
}

template <class F>
struct TokenClassifier {  // sinusoidal positions, a static policy
  using Encoder = typename F::template TokenEncoderWith<attention::SinusoidalPosition>;
  using Head = typename F::ClassificationHead;
};
template <class F>
struct AnyPositionTokenClassifier {  // positions chosen at run time, as the trainers do
  using Encoder = typename F::AnyPositionTokenEncoder;
  using Head = typename F::ClassificationHead;
};
template <class F>
struct PixelDenoiser {
  using Encoder = typename F::LinearEncoder;
  using Head = typename F::MaskedDenoisingHead;
};

}  // namespace

TEST_CASE("GPU Model: token encoder (sinusoidal, padding) -> pre-norm blocks -> classification head") {
  const index_t b = 4, l = 33, h = 32, vocab = 13;
  Rng rng(1);
  Tensor<std::int32_t> ids(Shape{b, l}), len(Shape{b}), labels(Shape{b});
  for (index_t i = 0; i < b * l; ++i) ids[i] = std::int32_t(rng.below(vocab));
  for (index_t i = 0; i < b; ++i) {
    len[i] = std::int32_t(l - 6 * i);
    labels[i] = std::int32_t(i % 3);
  }
  compare_model<TokenClassifier>(
      [&]<class C>() {
        C c;
        c.encoder = {.vocab = vocab, .dim = h, .padding_idx = 0};
        c.backbone.depth = 2;
        c.backbone.block.norm = {.dim = h};
        c.backbone.block.mixer = {.dim = h, .expand = 2};
        c.norm = {.dim = h};
        c.head = {.dim = h, .classes = 3, .pool = nn::PoolMode::mean, .hidden = 16};
        return c;
      },
      ids, Tensor<float>(), len, labels, Tensor<float>(), Tensor<std::uint8_t>());
}

TEST_CASE("GPU Model: linear encoder with a mask channel -> pre-norm blocks -> masked L1 denoising head") {
  const index_t b = 3, l = 40, h = 32;
  Rng rng(2);
  Tensor<float> values(Shape{b, l, 2}), target(Shape{b, l});
  Tensor<std::uint8_t> mask(Shape{b, l});
  for (index_t i = 0; i < b * l; ++i) {
    target[i] = float(rng.normal());
    mask[i] = rng.uniform(0, 1) < 0.3 ? 1 : 0;
    values[2 * i] = mask[i] ? 0.0f : target[i];
    values[2 * i + 1] = mask[i];
  }
  compare_model<PixelDenoiser>(
      [&]<class C>() {
        C c;
        c.encoder = {.channels = 1, .dim = h, .mask_channel = true};
        c.backbone.depth = 2;
        c.backbone.block.norm = {.dim = h};
        c.backbone.block.mixer = {.dim = h, .expand = 2};
        c.norm = {.dim = h};
        c.head = {.dim = h, .classes = 0, .loss = heads::DenoiseLoss::l1};
        return c;
      },
      Tensor<std::int32_t>(), values, Tensor<std::int32_t>(), Tensor<std::int32_t>(), target, mask);
}

TEST_CASE("GPU Model: token encoder with learned positions -> pre-norm blocks -> classification head") {
  const index_t b = 3, l = 21, h = 32, vocab = 11;
  Rng rng(4);
  Tensor<std::int32_t> ids(Shape{b, l}), len(Shape{b}), labels(Shape{b});
  for (index_t i = 0; i < b * l; ++i) ids[i] = std::int32_t(rng.below(vocab));
  for (index_t i = 0; i < b; ++i) {
    len[i] = std::int32_t(l - 5 * i);
    labels[i] = std::int32_t(i % 3);
  }
  compare_model<AnyPositionTokenClassifier>(
      [&]<class C>() {
        C c;
        c.encoder = {.vocab = vocab, .dim = h, .padding_idx = 0,
                     .position = attention::LearnedPositionConfig{.max_len = l + 7}};
        c.backbone.depth = 2;
        c.backbone.block.norm = {.dim = h};
        c.backbone.block.mixer = {.dim = h, .expand = 2};
        c.norm = {.dim = h};
        c.head = {.dim = h, .classes = 3, .pool = nn::PoolMode::mean, .hidden = 0};
        return c;
      },
      ids, Tensor<float>(), len, labels, Tensor<float>(), Tensor<std::uint8_t>());
}
