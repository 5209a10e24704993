#include <doctest/doctest.h>

#include <longseq/attention/kv_cache.hpp>

#include "../nn/grad_check.hpp"

using namespace longseq;

namespace {
template <class Pos>
void check_decode_matches_full(typename attention::MultiHeadAttention<double, device::host, Pos>::Config cfg,
                               index_t chunk) {
  using M = attention::MultiHeadAttention<double, device::host, Pos>;
  M m(cfg);
  ParamStore<double> store;
  store.bind(m);
  Rng rng(8);
  m.init(rng);
  const index_t B = 2, L = 9;
  Tensor<double> x(Shape{B, L, cfg.dim}), y(x.shape()), ys(x.shape());
  testing::fill_normal(x.view(), rng);
  HostContext ctx;
  typename M::Saved s;
  m.forward(ctx, x.view(), y.view(), s);
  attention::KVCache<double> cache(B, L, cfg.dim);
  attention::DecodeScratch<double> scratch;
  for (index_t l0 = 0; l0 < L; l0 += chunk) {
    const index_t n = std::min(chunk, L - l0);
    Tensor<double> xs(Shape{B, n, cfg.dim}), out(Shape{B, n, cfg.dim});
    for (index_t b = 0; b < B; ++b)
      for (index_t l = 0; l < n; ++l)
        for (index_t c = 0; c < cfg.dim; ++c) xs(b, l, c) = x(b, l0 + l, c);
    attention::decode_step(m, ctx, cache, xs.view(), out.view(), scratch);
    for (index_t b = 0; b < B; ++b)
      for (index_t l = 0; l < n; ++l)
        for (index_t c = 0; c < cfg.dim; ++c) ys(b, l0 + l, c) = out(b, l, c);
  }
  CHECK(cache.len == L);
  double worst = 0;
  for (index_t i = 0; i < y.numel(); ++i) worst = std::max(worst, std::abs(y[i] - ys[i]));
  CHECK(worst < 1e-12);
}
}  // namespace

TEST_CASE("KV-cache decoding equals the full causal forward") {
  for (index_t chunk : {1, 2, 4}) {
    CAPTURE(chunk);
    check_decode_matches_full<attention::NoRotation>({.dim = 6, .heads = 2, .causal = true, .block = 2}, chunk);
    check_decode_matches_full<attention::Rotary>(
        {.dim = 8, .heads = 2, .causal = true, .position = {.fraction = 0.5}, .block = 3}, chunk);
    check_decode_matches_full<attention::NoRotation>(
        {.dim = 4, .heads = 1, .causal = true, .window = 3, .look_back = 1, .block = 2}, chunk);
  }
}

TEST_CASE("KV-cache decoding rejects bidirectional layers and overflow") {
  attention::MultiHeadAttention<double> bi({.dim = 4, .heads = 2});
  attention::MultiHeadAttention<double> ca({.dim = 4, .heads = 2, .causal = true});
  ParamStore<double> s1, s2;
  s1.bind(bi);
  s2.bind(ca);
  attention::KVCache<double> cache(1, 2, 4);
  attention::DecodeScratch<double> scratch;
  HostContext ctx;
  Tensor<double> x(Shape{1, 3, 4}, 0.5), y(Shape{1, 3, 4});
  CHECK_THROWS_WITH_AS(attention::decode_step(bi, ctx, cache, x.view(), y.view(), scratch),
                       doctest::Contains("decode_step needs a causal attention layer"), Error);
  CHECK_THROWS_WITH_AS(attention::decode_step(ca, ctx, cache, x.view(), y.view(), scratch),
                       doctest::Contains("cache of capacity 2 holds 0 positions, cannot append 3"), Error);
  Tensor<double> x2(Shape{2, 1, 4}), y2(Shape{2, 1, 4});
  CHECK_THROWS_WITH_AS(attention::decode_step(ca, ctx, cache, x2.view(), y2.view(), scratch),
                       doctest::Contains("tensor 'x' has shape (2, 1, 4), expected (1, n, 4)"), Error);
}
