#include <doctest/doctest.h>

#include <longseq/ops/norm.hpp>

#include "ops/op_testing.hpp"

using namespace longseq;
using namespace longseq::ops;
using optest::random_tensor;

TEST_CASE("layernorm matches the definition; float agrees with double") {
  HostContext ctx;
  auto x = random_tensor<double>(Shape{2, 3, 8}, 1, -2.0, 3.0);
  auto g = random_tensor<double>(Shape{8}, 2), b = random_tensor<double>(Shape{8}, 3);
  Tensor<double> y(x.shape()), mean(Shape{6}), rstd(Shape{2, 3});
  layernorm_forward<double>(ctx, x, g, b, y, mean, rstd, 1e-5);
  for (index_t r = 0; r < 6; ++r) {
    double m = 0, v = 0;
    for (index_t h = 0; h < 8; ++h) m += x[r * 8 + h] / 8;
    for (index_t h = 0; h < 8; ++h) v += (x[r * 8 + h] - m) * (x[r * 8 + h] - m) / 8;
    CHECK(mean[r] == doctest::Approx(m).epsilon(1e-14));
    CHECK(rstd[r] == doctest::Approx(1 / std::sqrt(v + 1e-5)).epsilon(1e-14));
    for (index_t h = 0; h < 8; ++h)
      CHECK(y[r * 8 + h] == doctest::Approx((x[r * 8 + h] - m) / std::sqrt(v + 1e-5) * g[h] + b[h]).epsilon(1e-13));
  }
  auto xf = optest::cast<float>(x), gf = optest::cast<float>(g), bf = optest::cast<float>(b);
  Tensor<float> yf(x.shape()), mf(Shape{6}), rf(Shape{6});
  layernorm_forward<float>(ctx, xf, gf, bf, yf, mf, rf, 1e-5f);
  CHECK(optest::rel_err(yf, y, y.numel()) < 1e-5);
  // bf16 storage saves float statistics
  auto xb = optest::cast<bf16>(x), gb = optest::cast<bf16>(g), bb = optest::cast<bf16>(b);
  Tensor<bf16> yb(x.shape());
  layernorm_forward<bf16>(ctx, xb, gb, bb, yb, mf, rf, 1e-5f);
  CHECK(optest::rel_err(yb, y, y.numel()) < 5e-2);
}

TEST_CASE("layernorm backward matches finite differences; dgamma/dbeta accumulate") {
  HostContext ctx;
  auto x = random_tensor<double>(Shape{5, 6}, 4, -2.0, 2.0);
  auto g = random_tensor<double>(Shape{6}, 5), b = random_tensor<double>(Shape{6}, 6);
  auto w = random_tensor<double>(x.shape(), 7);
  Tensor<double> y(x.shape()), mean(Shape{5}), rstd(Shape{5});
  auto loss = [&] {
    layernorm_forward<double>(ctx, x, g, b, y, mean, rstd, 1e-5);
    return optest::dot(w, y);
  };
  auto nx = optest::numeric_grad(x, loss), ng = optest::numeric_grad(g, loss), nb = optest::numeric_grad(b, loss);
  loss();
  Tensor<double> dx(x.shape()), dg(Shape{6}, 1.0), db(Shape{6}, -2.0);
  layernorm_backward<double>(ctx, x, g, mean, rstd, w, dx, dg, db);
  CHECK(optest::rel_err(dx, nx) < 1e-7);
  for (index_t h = 0; h < 6; ++h) {
    dg[h] -= 1.0;
    db[h] += 2.0;
  }
  CHECK(optest::rel_err(dg, ng) < 1e-7);
  CHECK(optest::rel_err(db, nb) < 1e-7);
}

TEST_CASE("rmsnorm matches the definition and finite differences") {
  HostContext ctx;
  auto x = random_tensor<double>(Shape{4, 7}, 8, -2.0, 2.0);
  auto g = random_tensor<double>(Shape{7}, 9);
  auto w = random_tensor<double>(x.shape(), 10);
  Tensor<double> y(x.shape()), rstd(Shape{4});
  rmsnorm_forward<double>(ctx, x, g, y, rstd, 1e-6);
  double ss = 0;
  for (index_t h = 0; h < 7; ++h) ss += x(3, h) * x(3, h) / 7;
  CHECK(y(3, 2) == doctest::Approx(x(3, 2) / std::sqrt(ss + 1e-6) * g[2]).epsilon(1e-14));
  auto loss = [&] {
    rmsnorm_forward<double>(ctx, x, g, y, rstd, 1e-6);
    return optest::dot(w, y);
  };
  auto nx = optest::numeric_grad(x, loss), ng = optest::numeric_grad(g, loss);
  loss();
  Tensor<double> dx(x.shape()), dg(Shape{7}, 0.25);
  rmsnorm_backward<double>(ctx, x, g, rstd, w, dx, dg);
  CHECK(optest::rel_err(dx, nx) < 1e-7);
  for (index_t h = 0; h < 7; ++h) dg[h] -= 0.25;
  CHECK(optest::rel_err(dg, ng) < 1e-7);
}

TEST_CASE("norm parameter gradients do not depend on the thread count") {
  HostContext ctx;
  auto x = random_tensor<float>(Shape{300, 128}, 11), g = random_tensor<float>(Shape{128}, 12);
  auto b = random_tensor<float>(Shape{128}, 13), dy = random_tensor<float>(x.shape(), 14);
  Tensor<float> y(x.shape()), mean(Shape{300}), rstd(Shape{300}), dx(x.shape());
  layernorm_forward<float>(ctx, x, g, b, y, mean, rstd, 1e-5f);
  Tensor<float> dg1(Shape{128}), db1(Shape{128}), dg2(Shape{128}), db2(Shape{128});
  ctx.threads = 1;
  layernorm_backward<float>(ctx, x, g, mean, rstd, dy, dx, dg1, db1);
  ctx.threads = 2;
  layernorm_backward<float>(ctx, x, g, mean, rstd, dy, dx, dg2, db2);
  for (index_t h = 0; h < 128; ++h) {
    REQUIRE(dg1[h] == dg2[h]);
    REQUIRE(db1[h] == db2[h]);
  }
}

TEST_CASE("norm errors name the tensors") {
  HostContext ctx;
  Tensor<float> x(Shape{4, 8}), y(Shape{4, 8}), g(Shape{8}), b(Shape{8}), m(Shape{4}), r(Shape{4});
  Tensor<float> g_bad(Shape{7}), m_bad(Shape{3});
  CHECK_THROWS_WITH_AS(layernorm_forward<float>(ctx, x, g_bad, b, y, m, r, 1e-5f),
                       doctest::Contains("tensor 'gamma' has shape (7), expected (8)"), Error);
  CHECK_THROWS_WITH_AS(layernorm_forward<float>(ctx, x, g, b, y, m_bad, r, 1e-5f),
                       doctest::Contains("tensor 'mean' has shape (3) (3 elements), expected one value per row of 'x' (4)"),
                       Error);
  CHECK_THROWS_WITH_AS(layernorm_forward<float>(ctx, x, g, b, y, m, r, -1.0f), doctest::Contains("eps -1"), Error);
  Tensor<float> dx_bad(Shape{8, 4});
  CHECK_THROWS_WITH_AS(rmsnorm_backward<float>(ctx, x, g, r, y, dx_bad, g),
                       doctest::Contains("tensor 'dx' has shape (8, 4), expected (4, 8)"), Error);
}
