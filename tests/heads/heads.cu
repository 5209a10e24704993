// GPU heads, losses, Embedding and Pool: the device policy against the host policy on the same parameters,
// features and targets: the loss statistics, the feature gradient and every parameter gradient.
#include <doctest/doctest.h>

#include <longseq/core/cuda/memory.cuh>
#include <longseq/heads/classification.hpp>
#include <longseq/heads/denoising.hpp>
#include <longseq/heads/retrieval.hpp>
#include <longseq/nn/embedding.hpp>

#include "nn/device_compare.hpp"

using namespace longseq;
using Dev = device::cuda;

static_assert(heads::assert_head<heads::ClassificationHead<float, Dev>, float, Dev>());
static_assert(heads::assert_head<heads::RegressionHead<float, Dev>, float, Dev>());
static_assert(heads::assert_head<heads::RetrievalHead<float, Dev>, float, Dev>());
static_assert(heads::assert_head<heads::MaskedDenoisingHead<float, Dev>, float, Dev>());
static_assert(heads::assert_head<heads::CausalLMHead<double, Dev>, double, Dev>());

namespace {

// Host targets and their device copies.
struct HostTargets {
  Tensor<std::int32_t> classes, lengths;
  Tensor<float> values;
  Tensor<std::uint8_t> mask;
};
// An absent (default) host tensor stays absent on the device.
template <class X>
Tensor<X, Dev> upload(const Tensor<X>& t) {
  return t.data() ? to_device(t) : Tensor<X, Dev>();
}
struct DevTargets {
  Tensor<std::int32_t, Dev> classes, lengths;
  Tensor<float, Dev> values;
  Tensor<std::uint8_t, Dev> mask;
  explicit DevTargets(const HostTargets& h)
      : classes(upload(h.classes)), lengths(upload(h.lengths)), values(upload(h.values)), mask(upload(h.mask)) {}
};
template <class D, class Src>
heads::Targets<float, D> view_of(const Src& t) {
  return {t.classes.view(), t.values.view(), t.mask.view(), t.lengths.view()};
}

// Builds HostHead and DevHead from make(tag) (the Config of each), runs both on the same random features
// x and targets, and compares the statistics, dx and the parameter gradients (which start nonzero).
template <template <class, class> class Head, class Make>
void compare_head(Make make, Shape xshape, const HostTargets& ht, double tol = 5e-5) {
  using HH = Head<float, device::host>;
  using DH = Head<float, Dev>;
  HH h(make.template operator()<typename HH::Config>());
  DH d(make.template operator()<typename DH::Config>());
  ParamStore<float> hs;
  ParamStore<float, Dev> ds;
  hs.bind(h);
  ds.bind(d);
  Rng rng(21);
  h.init(rng);
  testing::fill_uniform(hs.grads(), rng, 0.5);
  testing::copy_store(hs, ds);
  Tensor<float> x(xshape), dx(xshape);
  testing::fill_uniform(x.view(), rng, 2.0);
  const DevTargets dt(ht);
  HostContext hctx;
  Context<Dev> dctx;
  typename HH::Saved hsaved;
  typename DH::Saved dsaved;
  const heads::LossStats hst = h.forward(hctx, x.view(), view_of<device::host>(ht), hsaved);
  auto xd = to_device(x);
  Tensor<float, Dev> dxd(xshape);
  const heads::LossStats dst = d.forward(dctx, xd.view(), view_of<Dev>(dt), dsaved);
  h.backward(hctx, hsaved, dx.view(), 0.75);
  d.backward(dctx, dsaved, dxd.view(), 0.75);
  dctx.synchronize();
  INFO("loss host ", hst.loss, " device ", dst.loss);
  CHECK(dst.loss == doctest::Approx(hst.loss).epsilon(1e-5));
  CHECK(dst.count == hst.count);
  CHECK(dst.correct == hst.correct);
  CHECK(dst.abs_err == doctest::Approx(hst.abs_err).epsilon(1e-5));
  CHECK(dst.sq_err == doctest::Approx(hst.sq_err).epsilon(1e-5));
  CHECK(dst.target_sum == doctest::Approx(hst.target_sum).epsilon(1e-5));
  const double edx = testing::rel_error<float>(dxd.view(), dx.view());
  INFO("relative error of d features: ", edx);
  CHECK(edx < tol);
  testing::check_grads(hs, ds, tol);
}

HostTargets random_targets(index_t b, index_t l, index_t classes, Rng& rng, bool per_position, bool lengths) {
  HostTargets t;
  const index_t n = per_position ? b * l : b;
  t.classes = Tensor<std::int32_t>(per_position ? Shape{b, l} : Shape{b});
  t.values = Tensor<float>(per_position ? Shape{b, l} : Shape{b, 1});
  t.mask = Tensor<std::uint8_t>(Shape{b, l});
  for (index_t i = 0; i < n; ++i) {
    t.classes[i] = std::int32_t(rng.below(std::uint64_t(classes)));
    t.values[i] = float(rng.uniform(-1, 1));
  }
  for (index_t i = 0; i < b * l; ++i) t.mask[i] = rng.uniform(0, 1) < 0.4 ? 1 : 0;
  if (lengths) {
    t.lengths = Tensor<std::int32_t>(Shape{b});
    for (index_t i = 0; i < b; ++i) t.lengths[i] = std::int32_t(1 + (i * 7) % l);
  }
  return t;
}

}  // namespace

TEST_CASE("GPU classification head (mean, max, last pooling; linear and MLP decoders) matches the host") {
  Rng rng(1);
  const index_t b = 5, l = 37, h = 24, classes = 7;
  const HostTargets t = random_targets(b, l, classes, rng, false, true);
  for (nn::PoolMode mode : {nn::PoolMode::mean, nn::PoolMode::max, nn::PoolMode::last})
    for (index_t hidden : {index_t(0), index_t(16)}) {
      INFO("pool ", nn::pool_name(mode), ", hidden ", hidden);
      compare_head<heads::ClassificationHead>(
          [&]<class C>() { return C{.dim = h, .classes = classes, .pool = mode, .hidden = hidden}; }, Shape{b, l, h}, t);
    }
}

TEST_CASE("GPU regression head (MSE) matches the host") {
  Rng rng(2);
  const index_t b = 6, l = 19, h = 16;
  const HostTargets t = random_targets(b, l, 2, rng, false, false);
  compare_head<heads::RegressionHead>([&]<class C>() { return C{.dim = h, .outputs = 1}; }, Shape{b, l, h}, t);
}

TEST_CASE("GPU retrieval head matches the host") {
  Rng rng(3);
  const index_t pairs = 4, l = 29, h = 16;
  HostTargets t = random_targets(pairs, l, 2, rng, false, false);
  t.lengths = Tensor<std::int32_t>(Shape{2 * pairs});
  for (index_t i = 0; i < 2 * pairs; ++i) t.lengths[i] = std::int32_t(3 + (i * 5) % (l - 3));
  compare_head<heads::RetrievalHead>([&]<class C>() { return C{.dim = h, .classes = 2}; }, Shape{2 * pairs, l, h}, t);
}

TEST_CASE("GPU denoising heads (masked CE and L1, causal CE) and their losses match the host") {
  Rng rng(4);
  const index_t b = 3, l = 41, h = 16, vocab = 33;
  const HostTargets t = random_targets(b, l, vocab, rng, true, true);
  compare_head<heads::MaskedDenoisingHead>(
      [&]<class C>() { return C{.dim = h, .classes = vocab, .loss = heads::DenoiseLoss::ce}; }, Shape{b, l, h}, t);
  compare_head<heads::MaskedDenoisingHead>(
      [&]<class C>() { return C{.dim = h, .classes = 0, .loss = heads::DenoiseLoss::l1}; }, Shape{b, l, h}, t);
  compare_head<heads::CausalLMHead>(
      [&]<class C>() { return C{.dim = h, .classes = vocab, .loss = heads::DenoiseLoss::ce}; }, Shape{b, l, h}, t);
}

TEST_CASE("GPU embedding: lookup and a scatter-add backward identical to the host, padding row skipped") {
  using HE = nn::Embedding<float>;
  using DE = nn::Embedding<float, Dev>;
  const index_t vocab = 11, h = 40, b = 4, l = 300;  // many repeats of each id
  HE he({vocab, h, 2, 1.0});
  DE de({vocab, h, 2, 1.0});
  ParamStore<float> hs;
  ParamStore<float, Dev> ds;
  hs.bind(he);
  ds.bind(de);
  Rng rng(5);
  he.init(rng);
  testing::fill_uniform(hs.grads(), rng, 0.5);
  testing::copy_store(hs, ds);
  Tensor<std::int32_t> ids(Shape{b, l});
  for (index_t i = 0; i < b * l; ++i) ids[i] = std::int32_t(rng.below(vocab));
  Tensor<float> y(Shape{b, l, h}), dy(Shape{b, l, h});
  testing::fill_uniform(dy.view(), rng);
  HostContext hctx;
  Context<Dev> dctx;
  HE::Saved hsaved;
  DE::Saved dsaved;
  he.forward(hctx, ids.view(), y.view(), hsaved);
  he.backward(hctx, hsaved, dy.view());
  auto idsd = to_device(ids);
  auto dyd = to_device(dy);
  Tensor<float, Dev> yd(Shape{b, l, h});
  de.forward(dctx, idsd.view(), yd.view(), dsaved);
  de.backward(dctx, dsaved, dyd.view());
  dctx.synchronize();
  CHECK(testing::rel_error<float>(yd.view(), y.view()) == 0.0);
  // The same additions in the same order: bit for bit.
  CHECK(testing::rel_error<float>(ds.grads(), hs.grads()) == 0.0);
}
