#include <doctest/doctest.h>

#include <longseq/ops/activation.hpp>
#include <longseq/ops/fast_math.hpp>

#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include <longseq/core/rng.hpp>

using namespace longseq;

namespace {

constexpr float inf = std::numeric_limits<float>::infinity();
constexpr float qnan = std::numeric_limits<float>::quiet_NaN();

// Dense grid over [lo, hi] plus random points, so both the regular spacing and arbitrary bit patterns show up.
std::vector<float> points(float lo, float hi, int n, std::uint64_t seed) {
  std::vector<float> x;
  for (int i = 0; i <= n; ++i) x.push_back(lo + (hi - lo) * float(i) / float(n));
  Rng rng(seed);
  for (int i = 0; i < n / 4; ++i) x.push_back(float(rng.uniform(lo, hi)));
  return x;
}

// The same loop the activations run, so the vectorized code path is the one tested.
template <class F>
std::vector<float> map_values(const std::vector<float>& x, F f) {
  std::vector<float> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = f(x[i]);
  return y;
}

}  // namespace

TEST_CASE("fast::erf is within 2e-7 of erf, exact at the tails and the special values") {
  auto x = points(-6.0f, 6.0f, 200000, 1);
  auto y = map_values(x, [](float v) { return ops::fast::erf(v); });
  double worst = 0, worst_rel = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    double want = std::erf(double(x[i]));
    worst = std::max(worst, std::abs(double(y[i]) - want));
    if (std::abs(x[i]) < 1 && x[i] != 0) worst_rel = std::max(worst_rel, std::abs(double(y[i]) / want - 1));
  }
  CHECK(worst < 2e-7);
  CHECK(worst_rel < 3e-7);
  // Tiny arguments keep full relative precision (erf(x) ~ 2x/sqrt(pi)).
  for (float v : {1e-30f, -3e-20f, 1e-10f, 1e-5f, std::numeric_limits<float>::denorm_min()})
    CHECK(double(ops::fast::erf(v)) == doctest::Approx(std::erf(double(v))).epsilon(2e-7));
  // Beyond |x| ~ 3.9, erf rounds to +-1 in float.
  for (float v : {4.0f, 4.5f, 10.0f, 1e3f, 1e30f, std::numeric_limits<float>::max()}) {
    CHECK(ops::fast::erf(v) == 1.0f);
    CHECK(ops::fast::erf(-v) == -1.0f);
  }
  CHECK(ops::fast::erf(inf) == 1.0f);
  CHECK(ops::fast::erf(-inf) == -1.0f);
  CHECK(std::isnan(ops::fast::erf(qnan)));
  CHECK(std::isnan(ops::fast::erf(-qnan)));
  CHECK(ops::fast::erf(0.0f) == 0.0f);
  CHECK(std::signbit(ops::fast::erf(-0.0f)));
  // The double overload is the library function.
  for (double v : {-2.5, -0.3, 0.0, 0.7, 3.0}) CHECK(ops::fast::erf(v) == std::erf(v));
}

TEST_CASE("fast::exp is within 2.5 ulp of exp over the normal range; overflow, underflow and NaN") {
  auto x = points(-86.0f, 88.72f, 400000, 2);
  auto y = map_values(x, [](float v) { return ops::fast::exp(v); });
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    double want = std::exp(double(x[i]));
    worst = std::max(worst, std::abs(double(y[i]) / want - 1));
  }
  CHECK(worst < 2.5 * std::numeric_limits<float>::epsilon() / 2);
  // Exact where the result is a power of two or one.
  CHECK(ops::fast::exp(0.0f) == 1.0f);
  CHECK(ops::fast::exp(-0.0f) == 1.0f);
  // The last finite results and the overflow to +inf.
  CHECK(std::isfinite(ops::fast::exp(88.72283f)));
  CHECK(double(ops::fast::exp(88.72283f)) == doctest::Approx(std::exp(double(88.72283f))).epsilon(3e-7));
  for (float v : {88.7229f, 89.0f, 100.0f, 1e10f, inf}) CHECK(ops::fast::exp(v) == inf);
  // Below -86 (exp < 4.5e-38) the result is 0, an absolute error under 4.5e-38.
  for (float v : {-86.5f, -87.5f, -100.0f, -1e10f, -inf}) CHECK(ops::fast::exp(v) == 0.0f);
  CHECK(std::isnan(ops::fast::exp(qnan)));
  CHECK(std::isnan(ops::fast::exp(-qnan)));
  for (double v : {-700.0, -1.5, 0.0, 2.0, 700.0}) CHECK(ops::fast::exp(v) == std::exp(v));
}

TEST_CASE("fast::sigmoid is within 1e-7 of the logistic function everywhere, saturating at the ends") {
  auto x = points(-120.0f, 120.0f, 200000, 3);
  auto y = map_values(x, [](float v) { return ops::fast::sigmoid(v); });
  double worst = 0, worst_rel = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    double want = 1 / (1 + std::exp(-double(x[i])));
    worst = std::max(worst, std::abs(double(y[i]) - want));
    if (want > 1e-30) worst_rel = std::max(worst_rel, std::abs(double(y[i]) / want - 1));
  }
  CHECK(worst < 1e-7);
  CHECK(worst_rel < 5e-7);
  CHECK(ops::fast::sigmoid(inf) == 1.0f);
  CHECK(ops::fast::sigmoid(-inf) == 0.0f);
  CHECK(ops::fast::sigmoid(0.0f) == 0.5f);
  CHECK(std::isnan(ops::fast::sigmoid(qnan)));
  CHECK(ops::fast::sigmoid(-800.0) == doctest::Approx(std::exp(-800.0)).epsilon(1e-12));
  CHECK(ops::fast::sigmoid(3.0) == 1 / (1 + std::exp(-3.0)));
}

TEST_CASE("fast::erf_gauss gives erf within 2e-7 and exp(-x*x) within 3 ulp, with one exp") {
  auto x = points(-7.0f, 7.0f, 200000, 4);
  for (float v : {0.0f, -0.0f, 1.0f, -1.0f, 4.0f, 1e-20f, 30.0f, 1e20f, inf, -inf}) x.push_back(v);
  std::vector<float> e(x.size()), g(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) ops::fast::erf_gauss(x[i], e[i], g[i]);
  double worst = 0, worst_g = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    // gauss is exp of the float product -x*x (its rounding is the caller's, as with exp(-x * x)).
    double v = double(x[i]), want_g = std::exp(-double(x[i] * x[i]));
    worst = std::max(worst, std::abs(double(e[i]) - std::erf(v)));
    if (want_g > 1e-37) worst_g = std::max(worst_g, std::abs(double(g[i]) / want_g - 1));
    else CHECK(g[i] < 5e-38f);
  }
  CHECK(worst < 2e-7);
  CHECK(worst_g < 3 * std::numeric_limits<float>::epsilon());
  float eq, gq;
  ops::fast::erf_gauss(qnan, eq, gq);
  CHECK(std::isnan(eq));
  CHECK(std::isnan(gq));
  ops::fast::erf_gauss(-inf, eq, gq);
  CHECK(eq == -1.0f);
  CHECK(gq == 0.0f);
  double ed, gd;
  ops::fast::erf_gauss(0.8, ed, gd);
  CHECK(ed == std::erf(0.8));
  CHECK(gd == std::exp(-0.64));
}

TEST_CASE("float GELU and its gradient through the fast functions match the double formulas") {
  HostContext ctx;
  Tensor<float> x(Shape{4, 1000}), y(x.shape()), dx(x.shape()), ones(x.shape(), 1.0f);
  for (index_t i = 0; i < x.numel(); ++i) x[i] = -10.0f + 20.0f * float(i) / float(x.numel());
  ops::gelu_forward<float>(ctx, x, y.view());
  ops::gelu_backward<float>(ctx, x, ones, dx.view());
  double worst = 0, worst_d = 0;
  for (index_t i = 0; i < x.numel(); ++i) {
    double v = x[i];
    double want = 0.5 * v * std::erfc(-v / std::sqrt(2.0));
    double want_d = 0.5 * std::erfc(-v / std::sqrt(2.0)) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * std::numbers::pi);
    worst = std::max(worst, std::abs(y[i] - want) / std::max(1.0, std::abs(want)));
    worst_d = std::max(worst_d, std::abs(dx[i] - want_d));
  }
  CHECK(worst < 5e-7);
  CHECK(worst_d < 5e-7);
}
