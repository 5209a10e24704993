#include <doctest/doctest.h>

#include <longseq/ops/reduce.hpp>

#include <cstdint>

#include "ops/op_testing.hpp"

using namespace longseq;
using namespace longseq::ops;
using optest::random_tensor;

TEST_CASE("sum_rows writes or accumulates the column sums, independent of thread count") {
  HostContext ctx;
  auto x = random_tensor<double>(Shape{3, 4, 5}, 1);
  Tensor<double> y(Shape{5}, 10.0);
  sum_rows<double>(ctx, x, y);
  for (index_t h = 0; h < 5; ++h) {
    double s = 0;
    for (index_t r = 0; r < 12; ++r) s += x[r * 5 + h];
    CHECK(y[h] == doctest::Approx(s).epsilon(1e-14));
  }
  Tensor<double> acc(Shape{5}, 1.0);
  sum_rows<double>(ctx, x, acc, true);
  for (index_t h = 0; h < 5; ++h) CHECK(acc[h] == doctest::Approx(y[h] + 1.0).epsilon(1e-14));

  auto big = random_tensor<float>(Shape{1000, 64}, 2);
  Tensor<float> s1(Shape{64}), s2(Shape{64});
  ctx.threads = 1;
  sum_rows<float>(ctx, big, s1);
  ctx.threads = 2;
  sum_rows<float>(ctx, big, s2);
  for (index_t h = 0; h < 64; ++h) REQUIRE(s1[h] == s2[h]);
}

TEST_CASE("mean and max over an axis, with argmax, and their backwards") {
  HostContext ctx;
  auto x = random_tensor<double>(Shape{2, 5, 3}, 3);
  for (int axis : {0, 1, 2, -1}) {
    CAPTURE(axis);
    int a = axis < 0 ? 2 : axis;
    Shape ys;
    for (int i = 0; i < 3; ++i)
      if (i != a) ys.dims[ys.rank++] = x.shape()[i];
    Tensor<double> y(ys), mx(ys);
    Tensor<std::int64_t> arg(ys);
    mean_forward<double>(ctx, x, y, axis);
    max_forward<double>(ctx, x, mx, arg.view(), axis);
    // direct evaluation at one output element (the last one)
    index_t n = x.shape()[a];
    double s = 0, best = -1e300;
    std::int64_t bi = -1;
    for (index_t j = 0; j < n; ++j) {
      index_t idx[3] = {x.shape()[0] - 1, x.shape()[1] - 1, x.shape()[2] - 1};
      idx[a] = j;
      double v = x(idx[0], idx[1], idx[2]);
      s += v;
      if (v > best) { best = v; bi = j; }
    }
    CHECK(y[y.numel() - 1] == doctest::Approx(s / double(n)).epsilon(1e-14));
    CHECK(mx[mx.numel() - 1] == best);
    CHECK(arg[arg.numel() - 1] == bi);

    auto w = random_tensor<double>(ys, 4);
    auto num = optest::numeric_grad(x, [&] {
      mean_forward<double>(ctx, x, y, axis);
      return optest::dot(w, y);
    });
    Tensor<double> dx(x.shape());
    mean_backward<double>(ctx, w, dx, axis);
    CHECK(optest::rel_err(dx, num) < 1e-9);
    auto numx = optest::numeric_grad(x, [&] {
      max_forward<double>(ctx, x, mx, arg.view(), axis);
      return optest::dot(w, mx);
    });
    max_forward<double>(ctx, x, mx, arg.view(), axis);
    max_backward<double>(ctx, arg, w, dx, axis);
    CHECK(optest::rel_err(dx, numx) < 1e-9);
  }
  // keepdim-shaped outputs are accepted; ties pick the first index
  Tensor<float> t(Shape{2, 3}, 1.0f), m(Shape{2, 1});
  Tensor<std::int64_t> arg(Shape{2, 1});
  max_forward<float>(ctx, t, m, arg.view(), 1);
  CHECK(arg[0] == 0);
  CHECK(arg[1] == 0);
}

TEST_CASE("reduce errors name the tensors") {
  HostContext ctx;
  Tensor<float> x(Shape{4, 3}), y(Shape{4}), bad(Shape{2});
  CHECK_THROWS_WITH_AS(sum_rows<float>(ctx, x, y), doctest::Contains("tensor 'y' has shape (4), expected (3)"), Error);
  CHECK_THROWS_WITH_AS(mean_forward<float>(ctx, x, bad, 1),
                       doctest::Contains("tensor 'y' has shape (2), expected (4) or (4, 1)"), Error);
  CHECK_THROWS_WITH_AS(mean_forward<float>(ctx, x, y, 2), doctest::Contains("axis 2 is out of range for tensor 'x'"), Error);
  Tensor<std::int64_t> arg(Shape{4}, std::int64_t(7));
  Tensor<float> dx(Shape{4, 3});
  CHECK_THROWS_WITH_AS(max_backward<float>(ctx, arg, y, dx, 1),
                       doctest::Contains("tensor 'argmax' holds 7 at element 0, expected an index in [0, 3)"), Error);
}
