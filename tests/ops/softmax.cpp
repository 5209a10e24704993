#include <doctest/doctest.h>

#include <longseq/ops/softmax.hpp>

#include <cstdint>

#include "ops/op_testing.hpp"

using namespace longseq;
using namespace longseq::ops;
using optest::random_tensor;

TEST_CASE("softmax and log_softmax match the definition, stay finite for large logits") {
  HostContext ctx;
  auto x = random_tensor<double>(Shape{2, 3, 5}, 1, -3.0, 3.0);
  Tensor<double> y(x.shape()), ly(x.shape());
  softmax_forward<double>(ctx, x, y);
  log_softmax_forward<double>(ctx, x, ly);
  for (index_t r = 0; r < 6; ++r) {
    double s = 0;
    for (index_t c = 0; c < 5; ++c) s += std::exp(x[r * 5 + c]);
    for (index_t c = 0; c < 5; ++c) {
      CHECK(y[r * 5 + c] == doctest::Approx(std::exp(x[r * 5 + c]) / s).epsilon(1e-14));
      CHECK(ly[r * 5 + c] == doctest::Approx(x[r * 5 + c] - std::log(s)).epsilon(1e-14));
    }
  }
  Tensor<float> big(Shape{1, 3}), yb(Shape{1, 3});
  big[0] = 1000.f;
  big[1] = 999.f;
  big[2] = -1000.f;
  softmax_forward<float>(ctx, big, yb);
  CHECK(yb[0] == doctest::Approx(1 / (1 + std::exp(-1.0))).epsilon(1e-6));
  CHECK(yb[2] == 0.f);
  log_softmax_forward<float>(ctx, big, yb);
  CHECK(yb[1] == doctest::Approx(-1 - std::log1p(std::exp(-1.0))).epsilon(1e-6));
  // float agrees with double
  auto xf = optest::cast<float>(x);
  Tensor<float> yf(x.shape());
  softmax_forward<float>(ctx, xf, yf);
  CHECK(optest::rel_err(yf, y, y.numel()) < 1e-6);
}

TEST_CASE("softmax and log_softmax backwards match finite differences") {
  HostContext ctx;
  auto x = random_tensor<double>(Shape{3, 6}, 2, -2.0, 2.0);
  auto w = random_tensor<double>(x.shape(), 3);
  Tensor<double> y(x.shape()), dx(x.shape());
  auto num = optest::numeric_grad(x, [&] {
    softmax_forward<double>(ctx, x, y);
    return optest::dot(w, y);
  });
  softmax_forward<double>(ctx, x, y);
  softmax_backward<double>(ctx, y, w, dx);
  CHECK(optest::rel_err(dx, num) < 1e-8);
  auto numl = optest::numeric_grad(x, [&] {
    log_softmax_forward<double>(ctx, x, y);
    return optest::dot(w, y);
  });
  log_softmax_forward<double>(ctx, x, y);
  log_softmax_backward<double>(ctx, y, w, dx);
  CHECK(optest::rel_err(dx, numl) < 1e-8);
}

TEST_CASE("cross_entropy: mean over counted rows, ignore index, gradient by finite differences") {
  HostContext ctx;
  auto logits = random_tensor<double>(Shape{2, 3, 4}, 4, -2.0, 2.0);
  std::vector<std::int64_t> t = {0, 3, -100, 2, 1, -100};
  TensorView<const std::int64_t> targets(t.data(), Shape{2, 3});
  Tensor<double> lse(Shape{6});
  double loss = cross_entropy_forward<double>(ctx, logits, targets, lse.view(), std::int64_t(-100));
  double ref = 0;
  for (index_t r = 0; r < 6; ++r) {
    if (t[std::size_t(r)] < 0) continue;
    double s = 0;
    for (index_t c = 0; c < 4; ++c) s += std::exp(logits[r * 4 + c]);
    ref += std::log(s) - logits[r * 4 + t[std::size_t(r)]];
  }
  CHECK(loss == doctest::Approx(ref / 4).epsilon(1e-14));
  auto num = optest::numeric_grad(logits, [&] {
    return 2.5 * cross_entropy_forward<double>(ctx, logits, targets, lse.view(), std::int64_t(-100));
  });
  cross_entropy_forward<double>(ctx, logits, targets, lse.view(), std::int64_t(-100));
  Tensor<double> d(logits.shape(), 3.0);
  cross_entropy_backward<double>(ctx, logits, targets, lse, 2.5, d.view(), std::int64_t(-100));
  CHECK(optest::rel_err(d, num) < 1e-8);
  CHECK(d(0, 2, 1) == 0.0);  // ignored row

  std::vector<std::int32_t> all_ignored = {-1, -1};
  Tensor<float> lf(Shape{2, 3}), lsef(Shape{2});
  CHECK(cross_entropy_forward<float>(ctx, lf, TensorView<const std::int32_t>(all_ignored.data(), Shape{2}),
                                     lsef.view(), -1) == 0.0f);
}

TEST_CASE("softmax and cross_entropy errors name the tensors") {
  HostContext ctx;
  Tensor<float> x(Shape{2, 3}), y(Shape{3, 2});
  CHECK_THROWS_WITH_AS(softmax_forward<float>(ctx, x, y),
                       doctest::Contains("tensor 'y' has shape (3, 2), expected (2, 3) (the shape of 'x')"), Error);
  std::vector<std::int32_t> t = {0, 5};
  Tensor<float> lse(Shape{2});
  CHECK_THROWS_WITH_AS(cross_entropy_forward<float>(ctx, x, TensorView<const std::int32_t>(t.data(), Shape{2}),
                                                    lse.view()),
                       doctest::Contains("tensor 'targets' holds 5 at row 1, expected a class in [0, 3)"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy_forward<float>(ctx, x, TensorView<const std::int32_t>(t.data(), Shape{1}),
                                                    lse.view()),
                       doctest::Contains("tensor 'targets' has shape (1)"), Error);
}
