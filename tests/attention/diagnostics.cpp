#include <doctest/doctest.h>

#include <cmath>
#include <type_traits>
#include <vector>

#include <longseq/attention/diagnostics.hpp>

#include "../nn/grad_check.hpp"

using namespace longseq;
using attention::AttentionLocality;

namespace {

// P (B, heads, L, L) filled row by row by f(b, h, i, j).
template <class F>
Tensor<double> probs(index_t B, index_t H, index_t L, F&& f) {
  Tensor<double> P(Shape{B, H, L, L});
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h)
      for (index_t i = 0; i < L; ++i)
        for (index_t j = 0; j < L; ++j) P(b, h, i, j) = f(b, h, i, j);
  return P;
}

// softmax(P) V for one head, compared with the layer's saved attention output o.
template <class T, class Pos>
double max_pv_error(const attention::MultiHeadAttention<T, device::host, Pos>& m,
                    const typename attention::MultiHeadAttention<T, device::host, Pos>::Saved& s, const Tensor<double>& P) {
  const index_t B = s.q.size(0), L = s.q.size(1), H = m.cfg.heads, dh = m.head_dim, dim = m.cfg.dim;
  double worst = 0;
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h)
      for (index_t i = 0; i < L; ++i)
        for (index_t c = 0; c < dh; ++c) {
          double acc = 0;
          for (index_t j = 0; j < L; ++j) acc += P(b, h, i, j) * double(s.v.data()[(b * L + j) * dim + h * dh + c]);
          worst = std::max(worst, std::abs(acc - double(s.o.data()[(b * L + i) * dim + h * dh + c])));
        }
  return worst;
}

}  // namespace

TEST_CASE("attention locality: uniform, identity and band attention by hand") {
  // L = 4. Uniform: sum_ij |i - j| = 20, so the distance is 20 / 16 = (L^2 - 1) / (3 L) = 1.25; the
  // keys within |i - j| <= 1 number 2, 3, 3, 2 (share 10 / 16). Identity: distance 0, every share 1.
  // Band |i - j| <= 1 (uniform over those keys): distances 1/2, 2/3, 2/3, 1/2 -> 7/12; its |i - j| = 0
  // shares 1/2, 1/3, 1/3, 1/2 -> 5/12.
  const index_t L = 4;
  auto P = probs(1, 3, L, [&](index_t, index_t h, index_t i, index_t j) {
    if (h == 0) return 1.0 / double(L);
    if (h == 1) return i == j ? 1.0 : 0.0;
    const index_t n = (i > 0) + 1 + (i + 1 < L);
    return std::abs(i - j) <= 1 ? 1.0 / double(n) : 0.0;
  });
  AttentionLocality loc(3, {0, 1, 3});
  loc.add(P.view());
  CHECK(loc.inputs() == 1);
  const auto r = loc.result();
  CHECK(r[0].mean_distance == doctest::Approx(1.25).epsilon(1e-15));
  CHECK(r[0].mean_distance == doctest::Approx(attention::uniform_mean_distance(L)).epsilon(1e-15));
  CHECK(r[0].window_share[0] == doctest::Approx(0.25));
  CHECK(r[0].window_share[1] == doctest::Approx(10.0 / 16));
  CHECK(r[0].window_share[2] == doctest::Approx(1.0));
  CHECK(r[1].mean_distance == 0.0);
  for (double w : r[1].window_share) CHECK(w == doctest::Approx(1.0));
  CHECK(r[2].mean_distance == doctest::Approx(7.0 / 12));
  CHECK(r[2].window_share[0] == doctest::Approx(5.0 / 12));
  CHECK(r[2].window_share[1] == doctest::Approx(1.0));
  for (const auto& h : r) CHECK(h.padding_share == 0.0);
}

TEST_CASE("attention locality: previous-token attention and the mean over inputs") {
  // Input 0 looks one step back (query 0 at itself): distance (L - 1) / L, share within 0: 1 / L.
  // Input 1 is uniform: (L^2 - 1) / (3 L). The result is the mean of the two inputs.
  const index_t L = 5;
  auto P = probs(2, 1, L, [&](index_t b, index_t, index_t i, index_t j) {
    if (b == 1) return 1.0 / double(L);
    return j == std::max<index_t>(0, i - 1) ? 1.0 : 0.0;
  });
  AttentionLocality loc(1, {0, 1});
  loc.add(P.view());
  const auto r = loc.result();
  CHECK(loc.inputs() == 2);
  CHECK(r[0].mean_distance == doctest::Approx(0.5 * (0.8 + attention::uniform_mean_distance(L))));
  CHECK(r[0].window_share[0] == doctest::Approx(0.5 * (0.2 + 0.2)));
  CHECK(r[0].window_share[1] == doctest::Approx(0.5 * (1.0 + 13.0 / 25)));
}

TEST_CASE("attention locality: lengths and key padding skip padded queries and count mass on padded keys") {
  // Input 0: length 4, uniform (distance 1.25, share within 0: 1/4). Input 1: length 2; its real queries
  // are uniform over its 2 real keys (distance 1/2, share 1/2); its padded queries put all mass on key 0
  // far away, which must not count. Input 2: length 0, skipped.
  const index_t L = 4;
  auto P = probs(3, 1, L, [&](index_t b, index_t, index_t i, index_t j) {
    if (b == 0) return 0.25;
    if (b == 1) return i < 2 ? (j < 2 ? 0.5 : 0.0) : (j == 0 ? 1.0 : 0.0);
    return j == 0 ? 1.0 : 0.0;
  });
  std::vector<std::int32_t> len{4, 2, 0};
  TensorView<const std::int32_t> lv(len.data(), Shape{3});
  AttentionLocality loc(1, {0});
  loc.add(P.view(), lv);
  CHECK(loc.inputs() == 2);
  auto r = loc.result();
  CHECK(r[0].mean_distance == doctest::Approx((1.25 + 0.5) / 2));
  CHECK(r[0].window_share[0] == doctest::Approx((0.25 + 0.5) / 2));
  CHECK(r[0].padding_share == 0.0);

  // The same lengths as a key padding mask give the same numbers.
  Tensor<std::uint8_t> pad(Shape{3, L}, std::uint8_t(0));
  for (index_t b = 0; b < 3; ++b)
    for (index_t l = len[std::size_t(b)]; l < L; ++l) pad(b, l) = 1;
  AttentionLocality by_mask(1, {0});
  by_mask.add_padded(P.view(), pad.view());
  CHECK(by_mask.inputs() == 2);
  CHECK(by_mask.result()[0].mean_distance == r[0].mean_distance);
  CHECK(by_mask.result()[0].window_share[0] == r[0].window_share[0]);

  // A layer that attends to padding: input 1 uniform over all 4 keys puts half its mass there; the
  // distance is measured as the model spends its mass (rows 0, 1: 1.5 and 1).
  auto Q = probs(2, 1, L, [&](index_t, index_t, index_t, index_t) { return 0.25; });
  AttentionLocality spread(1, {0});
  spread.add(Q.view(), TensorView<const std::int32_t>(len.data(), Shape{2}));
  r = spread.result();
  CHECK(r[0].padding_share == doctest::Approx((0.0 + 0.5) / 2));
  CHECK(r[0].mean_distance == doctest::Approx((1.25 + 1.25) / 2));
}

TEST_CASE("attention locality: bad inputs name what is wrong") {
  auto P = probs(2, 2, 3, [](index_t, index_t, index_t, index_t) { return 1.0 / 3; });
  AttentionLocality loc(2, {1});
  std::vector<std::int32_t> len{3, 4};
  CHECK_THROWS_WITH(loc.add(P.view(), TensorView<const std::int32_t>(len.data(), Shape{2})),
                    doctest::Contains("'lengths' holds 4"));
  CHECK_THROWS_WITH(loc.add(P.view(), TensorView<const std::int32_t>(len.data(), Shape{1})),
                    doctest::Contains("'lengths' has shape"));
  AttentionLocality three(3, {1});
  CHECK_THROWS_WITH(three.add(P.view()), doctest::Contains("tensor 'P' has shape"));
  CHECK_THROWS_WITH(AttentionLocality(2, {1, -1}), doctest::Contains("'windows' holds -1"));
  CHECK_THROWS_WITH(AttentionLocality(0), doctest::Contains("heads = 0"));
  CHECK_THROWS_WITH(attention::uniform_mean_distance(0), doctest::Contains("length 0"));
  CHECK(loc.inputs() == 0);
  for (const auto& h : loc.result()) CHECK(h.mean_distance == 0.0);
}

TEST_CASE("attention_probabilities: the layer's own softmax, under its masks, padding and rotary positions") {
  HostContext ctx;
  ctx.training = false;
  auto run = [&]<class Pos>(std::type_identity<Pos>, typename attention::MultiHeadAttention<double, device::host, Pos>::Config c,
                            bool padding) {
    using M = attention::MultiHeadAttention<double, device::host, Pos>;
    const index_t B = 2, L = 9;
    M m(c);
    ParamStore<double> store;
    store.bind(m);
    Rng rng(3);
    m.init(rng);
    Tensor<double> x(Shape{B, L, c.dim});
    testing::fill_normal(x.view(), rng);
    Tensor<std::uint8_t> pad(Shape{B, L}, std::uint8_t(0));
    for (index_t l = 6; l < L; ++l) pad(1, l) = 1;
    if (padding) m.set_key_padding(pad.view());
    Tensor<double> y(x.shape());
    typename M::Saved s;
    m.forward(ctx, x.view(), y.view(), s);
    const Tensor<double> P = attention::attention_probabilities(ctx, m, s);
    CHECK(P.shape() == Shape({B, c.heads, L, L}));
    // P v is the layer's attention output, rows sum to one, and hidden keys get nothing.
    CHECK(max_pv_error(m, s, P) < 1e-12);
    const auto mask = m.mask_spec();
    for (index_t b = 0; b < B; ++b)
      for (index_t h = 0; h < c.heads; ++h)
        for (index_t i = 0; i < L; ++i) {
          double sum = 0;
          for (index_t j = 0; j < L; ++j) {
            sum += P(b, h, i, j);
            if (!mask.allowed(i, j) || (padding && pad(b, j))) CHECK(P(b, h, i, j) == 0.0);
          }
          CHECK(sum == doctest::Approx(1.0).epsilon(1e-13));
        }
    // One block at a time gives what the whole tensor gives.
    AttentionLocality whole(c.heads, {0, 2}), streamed(c.heads, {0, 2});
    whole.add(P.view());
    streamed.add(ctx, m, s);
    if (padding) {
      AttentionLocality masked(c.heads, {0, 2});
      masked.add_padded(P.view(), pad.view());
      CHECK(masked.result()[0].mean_distance == doctest::Approx(streamed.result()[0].mean_distance).epsilon(1e-14));
    } else {
      for (index_t h = 0; h < c.heads; ++h) {
        CHECK(whole.result()[std::size_t(h)].mean_distance ==
              doctest::Approx(streamed.result()[std::size_t(h)].mean_distance).epsilon(1e-14));
        CHECK(whole.result()[std::size_t(h)].window_share[1] ==
              doctest::Approx(streamed.result()[std::size_t(h)].window_share[1]).epsilon(1e-14));
      }
    }
  };
  using attention::NoRotation;
  using attention::Rotary;
  for (bool padding : {false, true}) {
    CAPTURE(padding);
    run(std::type_identity<NoRotation>{}, {.dim = 8, .heads = 2}, padding);
    run(std::type_identity<NoRotation>{}, {.dim = 8, .heads = 2, .causal = true}, padding);
    run(std::type_identity<NoRotation>{}, {.dim = 6, .heads = 3, .window = 3, .look_back = 1, .look_forward = 0}, padding);
    run(std::type_identity<Rotary>{}, {.dim = 8, .heads = 2, .block = 4}, padding);
  }
}

TEST_CASE("attention_probabilities: zero queries attend uniformly, full and causal") {
  // With q = 0 every score is 0, so each query spreads its mass evenly over the keys it may see: the
  // full layer has the uniform distance (L^2 - 1) / (3 L); the causal one (L - 1) / 4 (row i: i / 2).
  HostContext ctx;
  ctx.training = false;
  const index_t B = 2, L = 7;
  for (bool causal : {false, true}) {
    attention::MultiHeadAttention<double> m({.dim = 4, .heads = 2, .causal = causal});
    ParamStore<double> store;
    store.bind(m);
    Rng rng(5);
    m.init(rng);
    for (index_t k = 0; k < m.q_proj.weight.value.numel(); ++k) m.q_proj.weight.value[k] = 0;
    for (index_t k = 0; k < m.q_proj.bias.value.numel(); ++k) m.q_proj.bias.value[k] = 0;
    Tensor<double> x(Shape{B, L, 4}), y(Shape{B, L, 4});
    testing::fill_normal(x.view(), rng);
    decltype(m)::Saved s;
    m.forward(ctx, x.view(), y.view(), s);
    AttentionLocality loc(2, {0});
    loc.add(ctx, m, s);
    const double want = causal ? double(L - 1) / 4 : attention::uniform_mean_distance(L);
    const double share0 = causal ? [&] {
      double a = 0;
      for (index_t i = 0; i < L; ++i) a += 1.0 / double(i + 1);
      return a / double(L);
    }() : 1.0 / double(L);
    for (const auto& h : loc.result()) {
      CHECK(h.mean_distance == doctest::Approx(want).epsilon(1e-12));
      CHECK(h.window_share[0] == doctest::Approx(share0).epsilon(1e-12));
    }
  }
}

TEST_CASE("attention locality of a Transformer encoder layer, float storage, with lengths") {
  HostContext ctx;
  ctx.training = false;
  using Layer = attention::TransformerEncoderLayer<float, true>;
  Layer layer({.dim = 8, .heads = 2, .ff_hidden = 16});
  ParamStore<float> store;
  store.bind(layer);
  Rng rng(9);
  layer.init(rng);
  const index_t B = 3, L = 10;
  Tensor<float> x(Shape{B, L, 8}), y(Shape{B, L, 8});
  for (index_t k = 0; k < x.numel(); ++k) x[k] = float(std::sin(0.37 * double(k)));
  Layer::Saved s;
  layer.forward(ctx, x.view(), y.view(), s);
  const Tensor<double> P = attention::attention_probabilities(ctx, layer.attn.mixer, s.attn.mixer);
  CHECK(max_pv_error(layer.attn.mixer, s.attn.mixer, P) < 2e-6);  // the float forward's rounding
  std::vector<std::int32_t> len{10, 4, 7};
  TensorView<const std::int32_t> lv(len.data(), Shape{B});
  AttentionLocality a(2, {1, 3}), b(2, {1, 3});
  a.add(ctx, layer, s, lv);
  b.add(P.view(), lv);
  CHECK(a.inputs() == 3);
  for (std::size_t h = 0; h < 2; ++h) {
    const auto ra = a.result()[h], rb = b.result()[h];
    CHECK(ra.mean_distance == doctest::Approx(rb.mean_distance).epsilon(1e-14));
    CHECK(ra.padding_share == doctest::Approx(rb.padding_share).epsilon(1e-14));
    CHECK(ra.padding_share > 0);  // no key padding was set, so padded keys get some mass
    CHECK(ra.mean_distance > 0);
    CHECK(ra.mean_distance < double(L));
    CHECK(ra.window_share[0] <= ra.window_share[1]);
    CHECK(ra.window_share[1] <= 1.0 + 1e-12);
  }
  // A Saved struct without a forward is refused.
  Layer::Saved empty;
  AttentionLocality c(2);
  CHECK_THROWS_WITH(c.add(ctx, layer, empty), doctest::Contains("holds no forward"));
}
