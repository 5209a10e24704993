// SPT and downstream heads and their losses: reference values, finite-difference gradients, bad inputs.
#include <doctest/doctest.h>

#include <longseq/heads/classification.hpp>
#include <longseq/heads/denoising.hpp>
#include <longseq/heads/losses.hpp>
#include <longseq/heads/retrieval.hpp>

#include "nn/grad_check.hpp"

using namespace longseq;
using testing::compare_fd;
using testing::fill_normal;

namespace {

// Checks d(scale * loss)/d features and every parameter gradient of a head against central differences.
template <class Hd>
void check_head(Hd& head, ParamStore<double>& store, Tensor<double>& x, const heads::Targets<double>& t,
                double scale = 0.7, double tol = 1e-6) {
  HostContext ctx;
  typename Hd::Saved s;
  auto g = store.grads();
  for (index_t i = 0; i < g.numel(); ++i) g[i] = 0;
  head.forward(ctx, x.view(), t, s);
  Tensor<double> dx(x.shape());
  head.backward(ctx, s, dx.view(), scale);
  auto loss = [&] {
    typename Hd::Saved u;
    return scale * head.forward(ctx, x.view(), t, u).loss;
  };
  compare_fd("d features", x.view(), dx.view(), loss, tol);
  for (const auto& e : store.entries()) compare_fd("d " + e.name, e.param->value, e.param->grad, loss, tol);
}

}  // namespace

TEST_CASE("cross-entropy: value against log-softmax by hand, ignore index, gradient, bad targets") {
  HostContext ctx;
  Tensor<double> z(Shape{3, 4});
  const double raw[] = {1, 2, 3, 4, -1, 0, 0.5, 2, 3, 3, 3, 3};
  for (int i = 0; i < 12; ++i) z[i] = raw[i];
  Tensor<std::int32_t> y(Shape{3});
  y[0] = 3;
  y[1] = heads::ignore_index;
  y[2] = 1;
  heads::CrossEntropy<double>::Saved s;
  auto st = heads::CrossEntropy<double>::forward(ctx, z.view(), y.view(), s);
  const double l0 = -(4 - std::log(std::exp(1) + std::exp(2) + std::exp(3) + std::exp(4)));
  const double l2 = std::log(4.0);
  CHECK(st.loss == doctest::Approx((l0 + l2) / 2).epsilon(1e-14));
  CHECK(st.count == 2);
  CHECK(st.correct == 1);  // row 0 correct; row 2 ties resolve to class 0
  Tensor<double> dz(Shape{3, 4});
  heads::CrossEntropy<double>::backward(ctx, s, dz.view(), 2.0);
  for (index_t k = 0; k < 4; ++k) CHECK(dz(1, k) == 0.0);
  auto loss = [&] {
    heads::CrossEntropy<double>::Saved t;
    return 2.0 * heads::CrossEntropy<double>::forward(ctx, z.view(), y.view(), t).loss;
  };
  compare_fd("d logits", z.view(), dz.view(), loss, 1e-7);
  y[2] = 4;
  CHECK_THROWS_WITH_AS(heads::CrossEntropy<double>::forward(ctx, z.view(), y.view(), s),
                       doctest::Contains("tensor 'target' holds 4 at row 2, expected a class in [0, 4)"), Error);
}

TEST_CASE("masked L1 and MSE: values and gradients") {
  HostContext ctx;
  Tensor<double> p(Shape{4}), t(Shape{4});
  Tensor<std::uint8_t> m(Shape{4});
  const double pv[] = {0.5, -1.0, 2.0, 0.25}, tv[] = {0.0, 1.0, 1.5, 3.0};
  const std::uint8_t mv[] = {1, 0, 1, 1};
  for (int i = 0; i < 4; ++i) { p[i] = pv[i]; t[i] = tv[i]; m[i] = mv[i]; }
  heads::MaskedL1<double>::Saved s;
  auto st = heads::MaskedL1<double>::forward(ctx, p.view(), t.view(), m.view(), s);
  CHECK(st.loss == doctest::Approx((0.5 + 0.5 + 2.75) / 3).epsilon(1e-14));
  Tensor<double> dp(Shape{4});
  heads::MaskedL1<double>::backward(ctx, s, dp.view());
  CHECK(dp[0] == doctest::Approx(1.0 / 3));
  CHECK(dp[1] == 0.0);
  CHECK(dp[3] == doctest::Approx(-1.0 / 3));
  heads::MeanSquaredError<double>::Saved q;
  auto sq = heads::MeanSquaredError<double>::forward(ctx, p.view(), t.view(), q);
  CHECK(sq.loss == doctest::Approx((0.25 + 4 + 0.25 + 7.5625) / 4).epsilon(1e-14));
  heads::MeanSquaredError<double>::backward(ctx, q, dp.view(), 1.0);
  auto loss = [&] {
    heads::MeanSquaredError<double>::Saved u;
    return heads::MeanSquaredError<double>::forward(ctx, p.view(), t.view(), u).loss;
  };
  compare_fd("d pred (mse)", p.view(), dp.view(), loss, 1e-8);
  Tensor<std::uint8_t> m3(Shape{3});
  CHECK_THROWS_WITH_AS(heads::MaskedL1<double>::forward(ctx, p.view(), t.view(), m3.view(), s),
                       doctest::Contains("must have the same number of elements"), Error);
}

TEST_CASE("masked denoising head: loss only on masked positions (CE over 256 intensities and L1)") {
  const index_t b = 2, l = 6, h = 4;
  Rng rng(5);
  Tensor<double> x(Shape{b, l, h});
  fill_normal(x.view(), rng);
  Tensor<std::int32_t> cls(Shape{b, l}), len(Shape{b});
  Tensor<double> val(Shape{b, l});
  Tensor<std::uint8_t> mask(Shape{b, l});
  for (index_t i = 0; i < b * l; ++i) {
    cls[i] = std::int32_t(rng.below(256));
    val[i] = (double(cls[i]) / 255.0 - 0.5) / 0.5;
    mask[i] = (i % 3 == 0) ? 1 : 0;
  }
  len[0] = 6;
  len[1] = 3;  // the masked position 9 (batch 1, pos 3) is padding and must not count
  heads::Targets<double> t{cls.view(), val.view(), mask.view(), len.view()};
  HostContext ctx;
  SUBCASE("cross-entropy") {
    heads::MaskedDenoisingHead<double> head({.dim = h, .classes = 256, .loss = heads::DenoiseLoss::ce});
    ParamStore<double> store;
    store.bind(head);
    head.init(rng);
    heads::MaskedDenoisingHead<double>::Saved s;
    auto st = head.forward(ctx, x.view(), t, s);
    CHECK(st.count == 3);  // positions 0, 3 of batch 0 and 0 of batch 1
    // Changing an unmasked target leaves the loss unchanged.
    cls[1] = (cls[1] + 7) % 256;
    CHECK(head.forward(ctx, x.view(), t, s).loss == st.loss);
    cls[0] = (cls[0] + 7) % 256;
    CHECK(head.forward(ctx, x.view(), t, s).loss != st.loss);
    check_head(head, store, x, t);
  }
  SUBCASE("L1 on the normalized value") {
    heads::MaskedDenoisingHead<double> head({.dim = h, .classes = 0, .loss = heads::DenoiseLoss::l1});
    ParamStore<double> store;
    store.bind(head);
    head.init(rng);
    CHECK(head.proj.weight.shape == Shape{1, h});
    heads::MaskedDenoisingHead<double>::Saved s;
    auto st = head.forward(ctx, x.view(), t, s);
    CHECK(st.count == 3);
    double want = 0;
    for (index_t i : {0, 3, 6}) want += std::abs(s.out[i] - val[i]);
    CHECK(st.loss == doctest::Approx(want / 3).epsilon(1e-13));
    check_head(head, store, x, t);
  }
  heads::MaskedDenoisingHead<double> head({.dim = h, .classes = 256});
  ParamStore<double> store;
  store.bind(head);
  heads::MaskedDenoisingHead<double>::Saved s;
  Tensor<std::uint8_t> bad(Shape{b, l + 1});
  heads::Targets<double> tb{cls.view(), val.view(), bad.view(), {}};
  CHECK_THROWS_WITH_AS(head.forward(ctx, x.view(), tb, s),
                       doctest::Contains("tensor 'mask' has shape (2, 7), expected (2, 6)"), Error);
}

TEST_CASE("causal LM head: position t predicts token t+1, last valid position ignored") {
  const index_t b = 2, l = 5, h = 3, v = 7;
  Rng rng(9);
  Tensor<double> x(Shape{b, l, h});
  fill_normal(x.view(), rng);
  Tensor<std::int32_t> cls(Shape{b, l}), len(Shape{b});
  for (index_t i = 0; i < b * l; ++i) cls[i] = std::int32_t(rng.below(v));
  len[0] = 5;
  len[1] = 2;
  heads::Targets<double> t{cls.view(), {}, {}, len.view()};
  heads::CausalLMHead<double> head({.dim = h, .classes = v});
  ParamStore<double> store;
  store.bind(head);
  head.init(rng);
  HostContext ctx;
  heads::CausalLMHead<double>::Saved s;
  auto st = head.forward(ctx, x.view(), t, s);
  CHECK(st.count == 4 + 1);
  CHECK(s.target_ids[0] == cls[1]);
  CHECK(s.target_ids[4] == heads::ignore_index);
  CHECK(s.target_ids[5] == cls[6]);
  CHECK(s.target_ids[6] == heads::ignore_index);
  // Reference: mean of -log softmax at the shifted targets.
  double want = 0;
  for (index_t i = 0; i < b * l; ++i) {
    if (s.target_ids[i] == heads::ignore_index) continue;
    double mx = -1e300, sum = 0;
    for (index_t k = 0; k < v; ++k) mx = std::max(mx, s.out[i * v + k]);
    for (index_t k = 0; k < v; ++k) sum += std::exp(s.out[i * v + k] - mx);
    want += -(s.out[i * v + s.target_ids[i]] - mx - std::log(sum));
  }
  CHECK(st.loss == doctest::Approx(want / 5).epsilon(1e-13));
  check_head(head, store, x, t);
}

TEST_CASE("classification and regression heads: pooled decoders with gradients") {
  const index_t b = 3, l = 4, h = 5;
  Rng rng(13);
  Tensor<double> x(Shape{b, l, h});
  fill_normal(x.view(), rng);
  Tensor<std::int32_t> labels(Shape{b}), len(Shape{b});
  for (index_t i = 0; i < b; ++i) { labels[i] = std::int32_t(i % 3); len[i] = std::int32_t(2 + i % 3); }
  for (auto mode : {nn::PoolMode::mean, nn::PoolMode::max, nn::PoolMode::last})
    for (index_t hidden : {0, 6}) {
      CAPTURE(nn::pool_name(mode));
      CAPTURE(hidden);
      heads::ClassificationHead<double> head({.dim = h, .classes = 3, .pool = mode, .hidden = hidden});
      ParamStore<double> store;
      store.bind(head);
      head.init(rng);
      check_head(head, store, x, {labels.view(), {}, {}, len.view()});
    }
  heads::RegressionHead<double> reg({.dim = h, .outputs = 2});
  ParamStore<double> store;
  store.bind(reg);
  reg.init(rng);
  Tensor<double> y(Shape{b, 2});
  fill_normal(y.view(), rng);
  check_head(reg, store, x, {{}, y.view(), {}, len.view()});
  HostContext ctx;
  heads::ClassificationHead<double> head({.dim = h, .classes = 3});
  ParamStore<double> s2;
  s2.bind(head);
  heads::ClassificationHead<double>::Saved sv;
  Tensor<std::int32_t> wrong(Shape{b + 1});
  CHECK_THROWS_WITH_AS(head.forward(ctx, x.view(), {wrong.view(), {}, {}, {}}, sv),
                       doctest::Contains("tensor 'labels' has shape (4), expected (3)"), Error);
}

TEST_CASE("retrieval head: [u, v, u - v, u * v] features and gradients") {
  const index_t b = 2, l = 4, h = 3;
  Rng rng(17);
  Tensor<double> x(Shape{2 * b, l, h});
  fill_normal(x.view(), rng);
  Tensor<std::int32_t> labels(Shape{b}), len(Shape{2 * b});
  labels[0] = 1;
  labels[1] = 0;
  for (index_t i = 0; i < 2 * b; ++i) len[i] = std::int32_t(1 + (i + 1) % l);
  heads::RetrievalHead<double> head({.dim = h, .classes = 2});
  ParamStore<double> store;
  store.bind(head);
  head.init(rng);
  HostContext ctx;
  heads::RetrievalHead<double>::Saved s;
  head.forward(ctx, x.view(), {labels.view(), {}, {}, len.view()}, s);
  // Feature layout for pair 1: u = pooled doc 1, v = pooled doc 3.
  for (index_t k = 0; k < h; ++k) {
    const double u = s.pooled(1, k), v = s.pooled(3, k);
    CHECK(s.feats(1, k) == u);
    CHECK(s.feats(1, h + k) == v);
    CHECK(s.feats(1, 2 * h + k) == doctest::Approx(u - v));
    CHECK(s.feats(1, 3 * h + k) == doctest::Approx(u * v));
  }
  check_head(head, store, x, {labels.view(), {}, {}, len.view()});
  Tensor<double> odd(Shape{3, l, h});
  CHECK_THROWS_WITH_AS(head.forward(ctx, odd.view(), {labels.view(), {}, {}, {}}, s),
                       doctest::Contains("expected an even batch"), Error);
}
