#include <doctest/doctest.h>

#include <longseq/ops/elementwise.hpp>

#include <algorithm>

#include "ops/op_testing.hpp"

using namespace longseq;
using namespace longseq::ops;
using optest::random_tensor;

TEST_CASE("fill, copy with conversion and strided source, add, add_inplace, axpy, scale, mul") {
  HostContext ctx;
  Tensor<float> y(Shape{2, 3});
  fill<float>(ctx, y, 2.5f);
  for (index_t i = 0; i < 6; ++i) CHECK(y[i] == 2.5f);

  auto x = random_tensor<double>(Shape{2, 3}, 1);
  copy<float>(ctx, TensorView<const double>(x.view()), y.view());
  for (index_t i = 0; i < 6; ++i) CHECK(y[i] == float(x[i]));
  Tensor<bf16> yb(Shape{2, 3});
  copy<bf16>(ctx, TensorView<const float>(y.view()), yb.view());
  CHECK(float(yb[4]) == doctest::Approx(y[4]).epsilon(1e-2));
  // A permuted view (the transpose of x) copied into contiguous storage.
  TensorView<const double> xt(x.data(), Shape{3, 2}, Shape{1, 3});
  Tensor<double> t(Shape{3, 2});
  copy<double>(ctx, xt, t.view());
  CHECK(t(2, 1) == x(1, 2));
  CHECK(t(0, 1) == x(1, 0));

  auto a = random_tensor<double>(Shape{4, 5}, 2), b = random_tensor<double>(Shape{4, 5}, 3);
  Tensor<double> s(Shape{4, 5}), m(Shape{4, 5});
  add<double>(ctx, a, b, s);
  mul<double>(ctx, a, b, m);
  for (index_t i = 0; i < 20; ++i) {
    CHECK(s[i] == a[i] + b[i]);
    CHECK(m[i] == a[i] * b[i]);
  }
  add_inplace<double>(ctx, s, a);
  axpy<double>(ctx, -2.0, a, s);
  scale<double>(ctx, s, 3.0);
  for (index_t i = 0; i < 20; ++i) CHECK(s[i] == doctest::Approx(3 * b[i]).epsilon(1e-14));

  Tensor<double> bias(Shape{5});
  for (index_t h = 0; h < 5; ++h) bias[h] = double(h);
  Tensor<double> z(Shape{4, 5});
  add_bias<double>(ctx, z, bias);
  CHECK(z(3, 4) == 4.0);
  CHECK(z(0, 2) == 2.0);
}

TEST_CASE("mul backward matches finite differences") {
  HostContext ctx;
  auto a = random_tensor<double>(Shape{3, 4}, 4), b = random_tensor<double>(Shape{3, 4}, 5);
  auto w = random_tensor<double>(Shape{3, 4}, 6);
  Tensor<double> y(Shape{3, 4}), da(Shape{3, 4}), db(Shape{3, 4});
  auto loss = [&] {
    mul<double>(ctx, a, b, y);
    return optest::dot(w, y);
  };
  auto na = optest::numeric_grad(a, loss), nb = optest::numeric_grad(b, loss);
  mul_backward<double>(ctx, a, b, w, da, db);
  CHECK(optest::rel_err(da, na) < 1e-9);
  CHECK(optest::rel_err(db, nb) < 1e-9);
}

TEST_CASE("transpose12 swaps L and H, round-trips, and is its own backward") {
  HostContext ctx;
  for (Shape s : {Shape{2, 3, 5}, Shape{1, 70, 33}, Shape{3, 1, 40}}) {
    auto x = random_tensor<float>(s, 7);
    Tensor<float> y(Shape{s[0], s[2], s[1]}), back(s);
    transpose12<float>(ctx, x, y);
    for (index_t b = 0; b < s[0]; ++b)
      for (index_t l = 0; l < s[1]; ++l)
        for (index_t h = 0; h < s[2]; ++h) REQUIRE(y(b, h, l) == x(b, l, h));
    transpose12<float>(ctx, y, back);
    for (index_t i = 0; i < x.numel(); ++i) REQUIRE(back[i] == x[i]);
  }
  // <w, T(x)> = <T^-1(w), x>: the backward of a transpose is the inverse transpose.
  auto x = random_tensor<double>(Shape{2, 3, 4}, 8), w = random_tensor<double>(Shape{2, 4, 3}, 9);
  Tensor<double> y(Shape{2, 4, 3}), dx(Shape{2, 3, 4});
  auto num = optest::numeric_grad(x, [&] {
    transpose12<double>(ctx, x, y);
    return optest::dot(w, y);
  });
  transpose12<double>(ctx, w, dx);
  CHECK(optest::rel_err(dx, num) < 1e-9);
}

TEST_CASE("transpose12 matches the naive loop across tile edges, on one thread and several") {
  // Extents below, at and across the 32-wide tiles, both directions, and enough work to run threaded.
  for (Shape s : {Shape{3, 65, 97}, Shape{2, 32, 31}, Shape{5, 33, 1}, Shape{16, 257, 33}}) {
    CAPTURE(s);
    auto x = random_tensor<float>(s, 11);
    Tensor<float> y(Shape{s[0], s[2], s[1]}), back(s);
    for (int threads : {1, 2}) {
      HostContext ctx;
      ctx.threads = threads;
      transpose12<float>(ctx, x, y);
      bool same = true;
      for (index_t b = 0; b < s[0]; ++b)
        for (index_t l = 0; l < s[1]; ++l)
          for (index_t h = 0; h < s[2]; ++h) same = same && y(b, h, l) == x(b, l, h);
      CHECK(same);
      transpose12<float>(ctx, y, back);
      CHECK(std::equal(x.data(), x.data() + x.numel(), back.data()));
    }
  }
}

TEST_CASE("elementwise errors name the tensors") {
  HostContext ctx;
  Tensor<float> a(Shape{2, 3}), b(Shape{3, 2}), y(Shape{2, 3});
  CHECK_THROWS_WITH_AS(add<float>(ctx, a, b, y), doctest::Contains("tensor 'b' has shape (3, 2), expected (2, 3) (the shape of 'a')"),
                       Error);
  Tensor<float> t(Shape{2, 2, 3});
  CHECK_THROWS_WITH_AS(transpose12<float>(ctx, t, t), doctest::Contains("tensor 'y' has shape (2, 2, 3), expected (2, 3, 2)"),
                       Error);
  CHECK_THROWS_WITH_AS(transpose12<float>(ctx, a, y), doctest::Contains("tensor 'x' has rank 2"), Error);
  Tensor<float> bias(Shape{2});
  CHECK_THROWS_WITH_AS(add_bias<float>(ctx, y, bias), doctest::Contains("tensor 'bias' has shape (2), expected (3)"), Error);
  TensorView<float> strided(y.data(), Shape{2, 2}, Shape{3, 1});
  CHECK_THROWS_WITH_AS(scale<float>(ctx, strided, 2.f), doctest::Contains("tensor 'y' with shape (2, 2) must be contiguous"),
                       Error);
}
