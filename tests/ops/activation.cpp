#include <doctest/doctest.h>

#include <longseq/ops/activation.hpp>

#include <functional>
#include <string>

#include "ops/op_testing.hpp"

using namespace longseq;
using namespace longseq::ops;
using optest::random_tensor;

namespace {

struct Act {
  std::string name;
  std::function<void(HostContext&, TensorView<const double>, TensorView<double>)> fwd;
  std::function<void(HostContext&, TensorView<const double>, TensorView<const double>, TensorView<double>)> bwd;
  std::function<void(HostContext&, TensorView<const float>, TensorView<float>)> fwd_f;
  double (*ref)(double);
};

std::vector<Act> acts() {
  return {
      {"gelu_exact", [](auto& c, auto x, auto y) { gelu_forward<double>(c, x, y, Gelu::exact); },
       [](auto& c, auto x, auto dy, auto dx) { gelu_backward<double>(c, x, dy, dx, Gelu::exact); },
       [](auto& c, auto x, auto y) { gelu_forward<float>(c, x, y, Gelu::exact); },
       [](double v) { return 0.5 * v * std::erfc(-v / std::sqrt(2.0)); }},
      {"gelu_tanh", [](auto& c, auto x, auto y) { gelu_forward<double>(c, x, y, Gelu::tanh); },
       [](auto& c, auto x, auto dy, auto dx) { gelu_backward<double>(c, x, dy, dx, Gelu::tanh); },
       [](auto& c, auto x, auto y) { gelu_forward<float>(c, x, y, Gelu::tanh); },
       [](double v) { return 0.5 * v * (1 + std::tanh(std::sqrt(2 / 3.141592653589793) * (v + 0.044715 * v * v * v))); }},
      {"relu", [](auto& c, auto x, auto y) { relu_forward<double>(c, x, y); },
       [](auto& c, auto x, auto dy, auto dx) { relu_backward<double>(c, x, dy, dx); },
       [](auto& c, auto x, auto y) { relu_forward<float>(c, x, y); }, [](double v) { return v > 0 ? v : 0.0; }},
      {"silu", [](auto& c, auto x, auto y) { silu_forward<double>(c, x, y); },
       [](auto& c, auto x, auto dy, auto dx) { silu_backward<double>(c, x, dy, dx); },
       [](auto& c, auto x, auto y) { silu_forward<float>(c, x, y); }, [](double v) { return v / (1 + std::exp(-v)); }},
      {"sigmoid", [](auto& c, auto x, auto y) { sigmoid_forward<double>(c, x, y); },
       [](auto& c, auto x, auto dy, auto dx) { sigmoid_backward<double>(c, x, dy, dx); },
       [](auto& c, auto x, auto y) { sigmoid_forward<float>(c, x, y); }, [](double v) { return 1 / (1 + std::exp(-v)); }},
      {"tanh", [](auto& c, auto x, auto y) { tanh_forward<double>(c, x, y); },
       [](auto& c, auto x, auto dy, auto dx) { tanh_backward<double>(c, x, dy, dx); },
       [](auto& c, auto x, auto y) { tanh_forward<float>(c, x, y); }, [](double v) { return std::tanh(v); }},
  };
}

}  // namespace

TEST_CASE("pointwise activations: published formulas, finite-difference gradients, float vs double") {
  HostContext ctx;
  for (const auto& act : acts()) {
    CAPTURE(act.name);
    auto x = random_tensor<double>(Shape{3, 7}, 1, -4.0, 4.0);
    x[0] = 0.3;  // keep every point away from relu's kink
    Tensor<double> y(x.shape());
    act.fwd(ctx, x, y);
    for (index_t i = 0; i < x.numel(); ++i) CHECK(y[i] == doctest::Approx(act.ref(x[i])).epsilon(1e-14));
    auto w = random_tensor<double>(x.shape(), 2);
    auto num = optest::numeric_grad(x, [&] {
      act.fwd(ctx, x, y);
      return optest::dot(w, y);
    });
    Tensor<double> dx(x.shape(), 7.0);
    act.bwd(ctx, x, w, dx);
    CHECK(optest::rel_err(dx, num) < 1e-8);
    auto xf = optest::cast<float>(x);
    Tensor<float> yf(x.shape());
    act.fwd_f(ctx, xf, yf);
    act.fwd(ctx, x, y);
    CHECK(optest::rel_err(yf, y, y.numel()) < 1e-6);
  }
}

TEST_CASE("known values and saturation without NaN") {
  HostContext ctx;
  Tensor<double> x(Shape{4}), y(Shape{4});
  x[0] = 1.0;
  x[1] = -800.0;
  x[2] = 800.0;
  x[3] = 0.0;
  gelu_forward<double>(ctx, x, y);
  CHECK(y[0] == doctest::Approx(0.8413447460685429).epsilon(1e-15));
  CHECK(y[1] == 0.0);
  CHECK(y[2] == 800.0);
  gelu_forward<double>(ctx, x, y, Gelu::tanh);
  CHECK(y[0] == doctest::Approx(0.8411919906082768).epsilon(1e-15));
  sigmoid_forward<double>(ctx, x, y);
  CHECK(y[1] == 0.0);
  CHECK(y[2] == 1.0);
  CHECK(y[3] == 0.5);
  silu_forward<double>(ctx, x, y);
  CHECK(y[0] == doctest::Approx(0.7310585786300049).epsilon(1e-15));
  CHECK(y[1] == doctest::Approx(0.0));
  Tensor<double> dx(Shape{4}), ones(Shape{4}, 1.0);
  relu_backward<double>(ctx, x, ones, dx);
  CHECK(dx[3] == 0.0);  // relu'(0) = 0
  sigmoid_backward<double>(ctx, x, ones, dx);
  for (index_t i = 0; i < 4; ++i) CHECK(std::isfinite(dx[i]));
  // half storage computes in float
  Tensor<half> xh(Shape{2}), yh(Shape{2});
  xh[0] = half(1.0f);
  xh[1] = half(-2.0f);
  gelu_forward<half>(ctx, xh, yh);
  CHECK(float(yh[0]) == doctest::Approx(0.8413).epsilon(1e-3));
  CHECK(float(yh[1]) == doctest::Approx(-0.0455).epsilon(1e-2));
}

TEST_CASE("glu matches a direct evaluation and its gradient matches finite differences") {
  HostContext ctx;
  auto x = random_tensor<double>(Shape{2, 3, 8}, 3, -3.0, 3.0);
  Tensor<double> y(Shape{2, 3, 4});
  glu_forward<double>(ctx, x, y);
  for (index_t b = 0; b < 2; ++b)
    for (index_t l = 0; l < 3; ++l)
      for (index_t h = 0; h < 4; ++h)
        CHECK(y(b, l, h) == doctest::Approx(x(b, l, h) / (1 + std::exp(-x(b, l, h + 4)))).epsilon(1e-14));
  auto w = random_tensor<double>(y.shape(), 4);
  auto num = optest::numeric_grad(x, [&] {
    glu_forward<double>(ctx, x, y);
    return optest::dot(w, y);
  });
  Tensor<double> dx(x.shape());
  glu_backward<double>(ctx, x, w, dx);
  CHECK(optest::rel_err(dx, num) < 1e-8);
}

TEST_CASE("activation shape errors name the tensors") {
  HostContext ctx;
  Tensor<float> x(Shape{2, 5}), y(Shape{2, 4}), y2(Shape{2, 3});
  CHECK_THROWS_WITH_AS(gelu_forward<float>(ctx, x, y),
                       doctest::Contains("tensor 'y' has shape (2, 4), expected (2, 5) (the shape of 'x')"), Error);
  CHECK_THROWS_WITH_AS(glu_forward<float>(ctx, x, y2), doctest::Contains("glu: tensor 'x' has shape (2, 5), expected an even"),
                       Error);
  Tensor<float> x6(Shape{2, 6}), dy_bad(Shape{2, 2}), dx(Shape{2, 6});
  CHECK_THROWS_WITH_AS(glu_backward<float>(ctx, x6, dy_bad, dx),
                       doctest::Contains("tensor 'dy' has shape (2, 2), expected (2, 3)"), Error);
  Tensor<float> dy(Shape{2, 5}), dx_bad(Shape{5, 2});
  CHECK_THROWS_WITH_AS(silu_backward<float>(ctx, x, dy, dx_bad), doctest::Contains("tensor 'dx' has shape (5, 2)"), Error);
}
