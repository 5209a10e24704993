// Recurrent mode: stepping a causal diagonal layer reproduces its convolution output.
#include <doctest/doctest.h>

#include <longseq/ssm/dlr.hpp>
#include <longseq/ssm/dss.hpp>
#include <longseq/ssm/recurrent.hpp>
#include <longseq/ssm/s4d.hpp>

#include "grad_check.hpp"

using namespace longseq;
using namespace longseq::ssm;

namespace {

// Steps a causal layer through a sequence and compares with its convolution-mode forward.
template <class K>
double step_vs_conv(typename K::Config kc, index_t B, index_t L, std::uint64_t seed) {
  using T = typename K::value_type;
  SSMConv<K, Causal> layer({.kernel = kc});
  ParamStore<T> store;
  store.bind(layer);
  Rng rng(seed);
  layer.init(rng);
  HostContext ctx;
  ctx.training = false;
  index_t H = layer.width();
  auto xv = test::random_vec(B * L * H, seed + 1);
  Tensor<T> x(Shape{B, L, H}), y(Shape{B, L, H});
  for (index_t i = 0; i < x.numel(); ++i) x[i] = T(xv[std::size_t(i)]);
  typename SSMConv<K, Causal>::Saved s;
  layer.forward(ctx, x.view(), y.view(), s);
  Recurrence<T> rec(layer.kernel, L);
  auto st = rec.initial_state(B);
  Tensor<T> xt(Shape{B, H}), yt(Shape{B, H});
  double err = 0;
  for (index_t l = 0; l < L; ++l) {
    for (index_t b = 0; b < B; ++b)
      for (index_t h = 0; h < H; ++h) xt(b, h) = x(b, l, h);
    ssm_conv_step(ctx, layer, rec, st, xt.view(), yt.view());
    for (index_t b = 0; b < B; ++b)
      for (index_t h = 0; h < H; ++h) err = std::max(err, double(std::abs(yt(b, h) - y(b, l, h))));
  }
  return err;
}

}  // namespace

TEST_CASE("stepping the recurrence reproduces the convolution output") {
  CHECK(step_vs_conv<S4D<double>>({.H = 3, .N = 8}, 2, 40, 1) < 1e-12);
  CHECK(step_vs_conv<S4D<double, Bilinear>>({.H = 2, .N = 6, .init = S4DInit::inv}, 2, 33, 2) < 1e-12);
  CHECK(step_vs_conv<DLR<double>>({.H = 2, .N = 16}, 1, 50, 3) < 1e-12);
  CHECK(step_vs_conv<DSS<double>>({.H = 2, .N = 8}, 2, 30, 4) < 1e-12);
  CHECK(step_vs_conv<DSS<double, DSSVariant::softmax>>({.H = 2, .N = 8}, 1, 30, 5) < 1e-12);
  CHECK(step_vs_conv<S4D<float>>({.H = 4, .N = 16}, 2, 64, 6) < 2e-4);
}

TEST_CASE("recurrence rejects bidirectional kernels and mismatched states") {
  S4D<double> k({.H = 2, .N = 4, .channels = 2});
  ParamStore<double> store;
  store.bind(k);
  Rng rng(1);
  k.init(rng);
  Recurrence<double> rec(k, 8);
  auto st = rec.initial_state(1);
  Tensor<double> u(Shape{1, 2}), y(Shape{1, 2});
  CHECK_THROWS_WITH_AS(rec.step(st, u.view(), y.view()), doctest::Contains("only unidirectional"), Error);
  S4D<double> k1({.H = 2, .N = 4});
  store.bind(k1);
  k1.init(rng);
  Recurrence<double> r1(k1, 8);
  auto s1 = r1.initial_state(1);
  Tensor<double> u3(Shape{1, 3});
  CHECK_THROWS_WITH_AS(r1.step(s1, u3.view(), y.view()),
                       doctest::Contains("tensor 'u' has shape (1, 3), expected (1, 2)"), Error);
}
