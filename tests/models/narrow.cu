// Whole models with half and bf16 storage on the GPU (token and linear encoders with sinusoidal positions,
// embedding with padding, pooling, the classification, retrieval and denoising heads; float accumulation in
// every op; an S4D model's non-kernel parts in bf16 with its kernel and FFTs in float) against the host float
// model on the same parameters (rounded to the narrow type) and batch.
// Tolerances, relative to each tensor's largest magnitude: bf16 (8 significant bits) 6e-2 on features and
// gradients, 2e-2 on the loss; half (11 bits) 1e-2 and 4e-3.
#include <doctest/doctest.h>

#include <vector>

#include <longseq/core/cuda/memory.cuh>
#include <longseq/models/family.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/ssm/ssm_conv.hpp>

using namespace longseq;
using Dev = device::cuda;

namespace {

template <class N>
struct Tolerance;
template <>
struct Tolerance<longseq::bf16> {
  static constexpr double values = 6e-2, loss = 2e-2;
};
template <>
struct Tolerance<longseq::half> {
  static constexpr double values = 1e-2, loss = 4e-3;
};

// The residual block: a pick's own Block, else LayerNorm + FeedForward.
template <class F, class P>
struct block_of {
  using type = nn::PreNormResidual<typename F::LayerNorm, typename F::FeedForward>;
};
template <class F, class P>
  requires requires { typename P::Block; }
struct block_of<F, P> {
  using type = typename P::Block;
};

template <class F, template <class> class Pick>
struct Net {
  using Block = typename block_of<F, Pick<F>>::type;
  using type = typename F::template Model<typename Pick<F>::Encoder, nn::Stack<Block>, typename Pick<F>::Head>;
};

// A float host buffer rounded to N in place, and the same values as N into dst on the device.
template <class N>
void narrow_into(TensorView<float> host, TensorView<N, Dev> dst) {
  std::vector<N> v(std::size_t(host.numel()));
  for (index_t i = 0; i < host.numel(); ++i) {
    v[std::size_t(i)] = N(host[i]);
    host[i] = float(v[std::size_t(i)]);
  }
  copy_to_device<N>(TensorView<const N>(v.data(), host.shape), dst);
}
template <class N>
Tensor<N, Dev> narrow_copy(TensorView<float> host) {
  if (!host.data) return {};
  Tensor<N, Dev> d(host.shape);
  narrow_into<N>(host, d.view());
  return d;
}
template <class X>
Tensor<X, Dev> upload(const Tensor<X>& t) {
  return t.data() ? to_device(t) : Tensor<X, Dev>();
}

// max |dev - host| / max(1e-3, max |host|); NaN or inf gives infinity.
template <class N>
double rel_error(TensorView<const N, Dev> dev, TensorView<const float> host) {
  REQUIRE(dev.shape == host.shape);
  const Tensor<N> got = to_host(dev);
  double scale = 1e-3, err = 0;
  for (index_t i = 0; i < host.numel(); ++i) scale = std::max(scale, std::abs(double(host[i])));
  for (index_t i = 0; i < host.numel(); ++i) {
    const double d = std::abs(double(float(got[i])) - double(host[i]));
    if (!(d <= err)) err = std::isfinite(d) ? d : INFINITY;
  }
  return err / scale;
}

template <class N, template <class> class Pick, class Make>
void compare_narrow(Make make, const Tensor<std::int32_t>& ids, TensorView<float> values,
                    const Tensor<std::int32_t>& lengths, const Tensor<std::int32_t>& classes, TensorView<float> targets,
                    const Tensor<std::uint8_t>& mask) {
  using HN = typename Net<models::Family<float>, Pick>::type;
  using DN = typename Net<models::Family<N, Dev>, Pick>::type;
  static_assert(std::is_same_v<typename DN::value_type, N>);
  HN h(make.template operator()<typename HN::Config>());
  DN d(make.template operator()<typename DN::Config>());
  ParamStore<float> hs;
  ParamStore<N, Dev> ds;
  hs.bind(h);
  ds.bind(d);
  REQUIRE(hs.entries().size() == ds.entries().size());
  for (std::size_t i = 0; i < hs.entries().size(); ++i) REQUIRE(hs.entries()[i].offset == ds.entries()[i].offset);
  Rng rng(8);
  h.init(rng);
  narrow_into<N>(hs.values(), ds.values());  // the host now holds the rounded values
  auto vald = narrow_copy<N>(values), tgtd = narrow_copy<N>(targets);
  auto idsd = upload(ids), lend = upload(lengths), clsd = upload(classes);
  auto maskd = upload(mask);
  HostContext hctx;
  Context<Dev> dctx;
  hctx.training = dctx.training = false;
  typename HN::Saved hsaved;
  typename DN::Saved dsaved;
  const auto hst = h.forward(hctx, {ids.view(), values, lengths.view()}, {classes.view(), targets, mask.view(), {}},
                             hsaved);
  heads::BatchStats<Dev> out;
  d.forward(dctx, {idsd.view(), vald.view(), lend.view()}, {clsd.view(), tgtd.view(), maskd.view(), {}}, dsaved, out);
  h.backward(hctx, hsaved, 1.5);
  d.backward(dctx, dsaved, 1.5);
  const heads::LossStats dst = out.read(dctx);
  INFO("loss host ", hst.loss, " device ", dst.loss);
  CHECK(dst.loss == doctest::Approx(hst.loss).epsilon(Tolerance<N>::loss));
  CHECK(dst.count == hst.count);
  const double ef = rel_error<N>(dsaved.h2.view(), hsaved.h2.view());
  INFO("relative error of the features: ", ef);
  CHECK(ef < Tolerance<N>::values);
  for (std::size_t i = 0; i < hs.entries().size(); ++i) {
    const auto& he = hs.entries()[i];
    const double e = rel_error<N>(ds.entries()[i].param->grad, he.param->grad);
    INFO("gradient of '", he.name, "': relative error ", e);
    CHECK(e < Tolerance<N>::values);
  }
}

template <class F>
struct TokenClassifier {  // sinusoidal positions
  using Encoder = typename F::template TokenEncoderWith<attention::SinusoidalPosition>;
  using Head = typename F::ClassificationHead;
};
template <class F>
struct TokenRetrieval {
  using Encoder = typename F::TokenEncoder;
  using Head = typename F::RetrievalHead;
};
template <class F>
struct PixelDenoiser {  // sinusoidal positions chosen at run time, as the trainers do
  using Encoder = typename F::AnyPositionLinearEncoder;
  using Head = typename F::MaskedDenoisingHead;
};

template <class F>
struct S4DClassifier {
  using Encoder = typename F::LinearEncoder;
  using Head = typename F::ClassificationHead;
  using Block = nn::PreNormResidual<
      typename F::LayerNorm,
      ssm::SSMConv<ssm::S4D<typename F::value_type>, ssm::Bidirectional, typename F::device_type>>;
};

}  // namespace

TEST_CASE("GPU narrow Model: an S4D classifier in bf16 (kernel and FFTs in float) tracks the host float model") {
  const index_t b = 3, l = 64, h = 16;
  Rng rng(6);
  Tensor<float> values(Shape{b, l, 1});
  Tensor<std::int32_t> labels(Shape{b});
  for (index_t i = 0; i < b * l; ++i) values[i] = float(rng.normal());
  for (index_t i = 0; i < b; ++i) labels[i] = std::int32_t(i % 2);
  compare_narrow<longseq::bf16, S4DClassifier>(
      [&]<class C>() {
        C c;
        c.encoder = {.channels = 1, .dim = h};
        c.backbone.depth = 2;
        c.backbone.block.norm = {.dim = h};
        c.backbone.block.mixer = {.kernel = {.H = h, .N = 16}};
        c.norm = {.dim = h};
        c.head = {.dim = h, .classes = 2, .pool = nn::PoolMode::mean};
        return c;
      },
      Tensor<std::int32_t>(), values.view(), Tensor<std::int32_t>(), labels, {}, Tensor<std::uint8_t>());
}

TEST_CASE_TEMPLATE("GPU narrow Model: token encoder -> blocks -> classification (max and mean pooling)", N,
                   longseq::bf16, longseq::half) {
  const index_t b = 4, l = 33, h = 32, vocab = 13;
  Rng rng(1);
  Tensor<std::int32_t> ids(Shape{b, l}), len(Shape{b}), labels(Shape{b});
  for (index_t i = 0; i < b * l; ++i) ids[i] = std::int32_t(rng.below(vocab));
  for (index_t i = 0; i < b; ++i) {
    len[i] = std::int32_t(l - 6 * i);
    labels[i] = std::int32_t(i % 3);
  }
  for (auto pool : {nn::PoolMode::mean, nn::PoolMode::max}) {
    CAPTURE(nn::pool_name(pool));
    compare_narrow<N, TokenClassifier>(
        [&]<class C>() {
          C c;
          c.encoder = {.vocab = vocab, .dim = h, .padding_idx = 0};
          c.backbone.depth = 2;
          c.backbone.block.norm = {.dim = h};
          c.backbone.block.mixer = {.dim = h, .expand = 2};
          c.norm = {.dim = h};
          c.head = {.dim = h, .classes = 3, .pool = pool, .hidden = 16};
          return c;
        },
        ids, {}, len, labels, {}, Tensor<std::uint8_t>());
  }
}

TEST_CASE_TEMPLATE("GPU narrow Model: token encoder -> blocks -> retrieval head", N, longseq::bf16,
                   longseq::half) {
  const index_t pairs = 3, l = 24, h = 32, vocab = 11;
  Rng rng(4);
  Tensor<std::int32_t> ids(Shape{2 * pairs, l}), len(Shape{2 * pairs}), labels(Shape{pairs});
  for (index_t i = 0; i < 2 * pairs * l; ++i) ids[i] = std::int32_t(1 + rng.below(vocab - 1));
  for (index_t i = 0; i < 2 * pairs; ++i) len[i] = std::int32_t(l - 3 * i);
  for (index_t i = 0; i < pairs; ++i) labels[i] = std::int32_t(i % 2);
  compare_narrow<N, TokenRetrieval>(
      [&]<class C>() {
        C c;
        c.encoder = {.vocab = vocab, .dim = h, .padding_idx = 0};
        c.backbone.depth = 1;
        c.backbone.block.norm = {.dim = h};
        c.backbone.block.mixer = {.dim = h, .expand = 2};
        c.norm = {.dim = h};
        c.head = {.dim = h, .classes = 2};
        return c;
      },
      ids, {}, len, labels, {}, Tensor<std::uint8_t>());
}

TEST_CASE_TEMPLATE("GPU narrow Model: linear encoder with a mask channel -> blocks -> masked L1 denoising", N,
                   longseq::bf16, longseq::half) {
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
  compare_narrow<N, PixelDenoiser>(
      [&]<class C>() {
        C c;
        c.encoder = {.channels = 1, .dim = h, .mask_channel = true,
                     .position = attention::SinusoidalPositionConfig{}};
        c.backbone.depth = 2;
        c.backbone.block.norm = {.dim = h};
        c.backbone.block.mixer = {.dim = h, .expand = 2};
        c.norm = {.dim = h};
        c.head = {.dim = h, .classes = 0, .loss = heads::DenoiseLoss::l1};
        return c;
      },
      Tensor<std::int32_t>(), values.view(), Tensor<std::int32_t>(), Tensor<std::int32_t>(), target.view(), mask);
}
