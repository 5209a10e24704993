#include <doctest/doctest.h>

#include <longseq/ops/dropout.hpp>

#include "ops/op_testing.hpp"

using namespace longseq;
using namespace longseq::ops;
using optest::random_tensor;

TEST_CASE("dropout: mask from Philox counters, same seed same mask, keep rate near 1 - p") {
  HostContext ctx;
  index_t n = 40001;  // not a multiple of 4, and large enough to run on several threads
  Tensor<float> x(Shape{n}, 1.0f), y1(Shape{n}), y2(Shape{n}), y3(Shape{n});
  double p = 0.3;
  dropout_forward<float>(ctx, x, y1, p, 42, 7);
  dropout_forward<float>(ctx, x, y2, p, 42, 7);
  dropout_forward<float>(ctx, x, y3, p, 42, 8);
  index_t kept = 0, differ = 0;
  float scale = float(1.0 / (1.0 - p));
  for (index_t i = 0; i < n; ++i) {
    REQUIRE(y1[i] == y2[i]);
    bool keep = dropout_keeps(42, 7, std::uint64_t(i), float(p));
    REQUIRE(y1[i] == (keep ? scale : 0.0f));
    // the documented definition, spelled out
    float u = Philox::to_unit(Philox::generate(42, 7, std::uint64_t(i / 4)).v[i % 4]);
    REQUIRE(keep == (u >= 0.3f));
    kept += keep;
    differ += y1[i] != y3[i];
  }
  double rate = double(kept) / double(n);
  CHECK(rate == doctest::Approx(0.7).epsilon(0.02));  // 0.014 is 6 standard deviations
  CHECK(differ > n / 4);                              // another stream gives another mask
  // the mask does not depend on the thread count
  ctx.threads = 1;
  dropout_forward<float>(ctx, x, y2, p, 42, 7);
  for (index_t i = 0; i < n; ++i) REQUIRE(y1[i] == y2[i]);
}

TEST_CASE("dropout backward regenerates the forward mask; p = 0 is the identity") {
  HostContext ctx;
  auto x = random_tensor<double>(Shape{3, 50}, 1);
  auto w = random_tensor<double>(x.shape(), 2);
  Tensor<double> y(x.shape()), dx(x.shape());
  auto num = optest::numeric_grad(x, [&] {
    dropout_forward<double>(ctx, x, y, 0.5, 9, 1);
    return optest::dot(w, y);
  });
  dropout_backward<double>(ctx, w, dx, 0.5, 9, 1);
  CHECK(optest::rel_err(dx, num) < 1e-9);
  dropout_forward<double>(ctx, x, y, 0.5, 9, 1);
  for (index_t i = 0; i < x.numel(); ++i) REQUIRE((y[i] == 0.0) == (dx[i] == 0.0));
  dropout_forward<double>(ctx, x, y, 0.0, 9, 1);
  for (index_t i = 0; i < x.numel(); ++i) REQUIRE(y[i] == x[i]);
  // in place
  Tensor<double> z = optest::cast<double>(x);
  dropout_forward<double>(ctx, z, z, 0.5, 9, 1);
  dropout_forward<double>(ctx, x, y, 0.5, 9, 1);
  for (index_t i = 0; i < x.numel(); ++i) REQUIRE(z[i] == y[i]);
}

TEST_CASE("dropout rejects p outside [0, 1) and mismatched shapes") {
  HostContext ctx;
  Tensor<float> x(Shape{4}), y(Shape{4}), y_bad(Shape{5});
  CHECK_THROWS_WITH_AS(dropout_forward<float>(ctx, x, y, 1.0, 0, 0),
                       doctest::Contains("dropout: probability p = 1 must lie in [0, 1)"), Error);
  CHECK_THROWS_WITH_AS(dropout_backward<float>(ctx, x, y, -0.1, 0, 0), doctest::Contains("p = -0.1"), Error);
  CHECK_THROWS_WITH_AS(dropout_forward<float>(ctx, x, y_bad, 0.1, 0, 0),
                       doctest::Contains("tensor 'y' has shape (5), expected (4) (the shape of 'x')"), Error);
}
