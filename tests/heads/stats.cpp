// Statistics left in a BatchStats (what train::fit uses so a device loss is not read back per batch): every
// head's BatchStats forward gives bit for bit the LossStats of its returning forward and the same gradients,
// and the backward divides by the count kept with the batch's statistics.
#include <doctest/doctest.h>

#include <cstring>

#include <longseq/heads/classification.hpp>
#include <longseq/heads/denoising.hpp>
#include <longseq/heads/joint.hpp>
#include <longseq/heads/retrieval.hpp>

#include "nn/grad_check.hpp"

using namespace longseq;
using testing::compare_fd;
using testing::fill_normal;

namespace {

bool same_bits(const heads::LossStats& a, const heads::LossStats& b) {
  double va[heads::stat_slots], vb[heads::stat_slots];
  heads::to_slots(a, va);
  heads::to_slots(b, vb);
  return std::memcmp(va, vb, sizeof va) == 0;
}

// The returning forward and backward, then the BatchStats forward and backward on fresh Saved objects: the
// same statistics, input and parameter gradients bit for bit; `out` is a BatchStats of the caller's.
template <class Hd>
void check_same(Hd& head, ParamStore<double>& store, Tensor<double>& x, const heads::Targets<double>& t) {
  HostContext ctx;
  auto g = store.grads();
  for (index_t i = 0; i < g.numel(); ++i) g[i] = 0;
  typename Hd::Saved a;
  const heads::LossStats want = head.forward(ctx, x.view(), t, a);
  Tensor<double> dxa(x.shape());
  head.backward(ctx, a, dxa.view(), 0.3);
  const std::vector<double> ga(g.data, g.data + g.numel());
  for (index_t i = 0; i < g.numel(); ++i) g[i] = 0;

  typename Hd::Saved b;
  heads::BatchStats<device::host> out;
  const auto reads = heads::stats_reads().load();
  head.forward(ctx, x.view(), t, b, out);
  CHECK(heads::stats_reads().load() == reads);  // nothing read on the way
  CHECK(want.count > 0);
  CHECK(same_bits(out.read(ctx), want));
  Tensor<double> dxb(x.shape());
  head.backward(ctx, b, dxb.view(), 0.3);
  CHECK(std::memcmp(dxa.data(), dxb.data(), sizeof(double) * std::size_t(x.numel())) == 0);
  CHECK(std::memcmp(ga.data(), g.data, sizeof(double) * ga.size()) == 0);
}

}  // namespace

TEST_CASE("BatchStats forward: every head gives its LossStats and gradients bit for bit, without a read") {
  const index_t b = 3, l = 5, h = 4;
  Rng rng(29);
  Tensor<double> x(Shape{b, l, h}), x2(Shape{2 * b, l, h}), values(Shape{b, l}), y(Shape{b, 2});
  fill_normal(x.view(), rng);
  fill_normal(x2.view(), rng);
  fill_normal(values.view(), rng);
  fill_normal(y.view(), rng);
  Tensor<std::int32_t> labels(Shape{b}), len(Shape{b}), len2(Shape{2 * b}), tokens(Shape{b, l});
  Tensor<std::uint8_t> mask(Shape{b, l});
  for (index_t i = 0; i < b; ++i) {
    labels[i] = std::int32_t(i % 2);
    len[i] = std::int32_t(2 + i % 3);
    for (index_t p = 0; p < l; ++p) {
      tokens(i, p) = std::int32_t((i * 7 + p * 3) % 6);
      mask(i, p) = (i + p) % 2;
    }
  }
  for (index_t i = 0; i < 2 * b; ++i) len2[i] = std::int32_t(1 + i % l);
  auto bound = [&](auto& head) {
    ParamStore<double> store;
    store.bind(head);
    head.init(rng);
    return store;
  };
  SUBCASE("classification, MLP decoder") {
    heads::ClassificationHead<double> head({.dim = h, .classes = 2, .hidden = 3});
    auto store = bound(head);
    check_same(head, store, x, {labels.view(), {}, {}, len.view()});
  }
  SUBCASE("regression") {
    heads::RegressionHead<double> head({.dim = h, .outputs = 2});
    auto store = bound(head);
    check_same(head, store, x, {{}, y.view(), {}, len.view()});
  }
  SUBCASE("retrieval") {
    heads::RetrievalHead<double> head({.dim = h, .classes = 2});
    auto store = bound(head);
    check_same(head, store, x2, {labels.view(), {}, {}, len2.view()});
  }
  SUBCASE("masked denoising, CE and L1") {
    heads::MaskedDenoisingHead<double> ce({.dim = h, .classes = 6});
    auto s1 = bound(ce);
    check_same(ce, s1, x, {tokens.view(), {}, mask.view(), {}});
    heads::MaskedDenoisingHead<double> l1({.dim = h, .loss = heads::DenoiseLoss::l1});
    auto s2 = bound(l1);
    check_same(l1, s2, x, {{}, values.view(), mask.view(), {}});
  }
  SUBCASE("causal LM") {
    heads::CausalLMHead<double> head({.dim = h, .classes = 6});
    auto store = bound(head);
    check_same(head, store, x, {tokens.view(), {}, {}, len.view()});
  }
  SUBCASE("joint: either term") {
    heads::JointHead<heads::ClassificationHead<double>, heads::MaskedDenoisingHead<double>> head(
        {{.dim = h, .classes = 2}, {.dim = h, .loss = heads::DenoiseLoss::l1}});
    auto store = bound(head);
    check_same(head, store, x, {labels.view(), {}, {}, {}});
    check_same(head, store, x, {{}, values.view(), mask.view(), {}});
  }
}

TEST_CASE("BatchStats forward: the backward divides by the count kept with the batch (finite differences)") {
  HostContext ctx;
  Rng rng(31);
  Tensor<double> p(Shape{6}), t(Shape{6});
  fill_normal(p.view(), rng);
  fill_normal(t.view(), rng);
  Tensor<std::uint8_t> m(Shape{6});
  for (index_t i = 0; i < 6; ++i) m[i] = i % 3 != 1;
  using L1 = heads::MaskedL1<double>;
  L1::Saved s;
  heads::BatchStats<device::host> out;
  L1::forward(ctx, p.view(), t.view(), m.view(), s, out);
  CHECK(out.value.count == 4);
  out.value.count = 1e9;  // the caller's copy may change; the backward reads the loss's own
  Tensor<double> dp(Shape{6});
  L1::backward(ctx, s, dp.view(), 1.5);
  auto loss = [&] {
    L1::Saved u;
    heads::BatchStats<device::host> o;
    L1::forward(ctx, p.view(), t.view(), m.view(), u, o);
    return 1.5 * o.value.loss;
  };
  compare_fd("d pred", p.view(), dp.view(), loss, 1e-7);
  CHECK(dp[1] == 0.0);
}
