// Test helpers: finite-difference checks of kernel parameterizations and layers in double precision.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <longseq/core/parameters.hpp>
#include <longseq/core/rng.hpp>
#include <string>
#include <vector>

namespace longseq::test {

inline std::vector<double> random_vec(index_t n, std::uint64_t seed, double sigma = 1.0) {
  Rng r(seed, 99);
  std::vector<double> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = r.normal(0.0, sigma);
  return v;
}

// Compares the analytic gradient in every parameter of `store` with central differences of `loss`.
// Returns the number of mismatches (each reported with its parameter name and index).
inline int check_param_grads(ParamStore<double>& store, const std::function<double()>& loss, double eps = 1e-6,
                             double rtol = 1e-6, index_t max_per_param = 64) {
  int bad = 0;
  double scale = 0;
  for (auto& e : store.entries())
    for (index_t i = 0; i < e.param->shape.numel(); ++i) scale = std::max(scale, std::abs(e.param->grad.data[i]));
  for (auto& e : store.entries()) {
    index_t n = e.param->shape.numel();
    index_t step = std::max<index_t>(1, n / max_per_param);
    for (index_t i = 0; i < n; i += step) {
      double& v = e.param->value.data[i];
      double keep = v;
      v = keep + eps;
      double lp = loss();
      v = keep - eps;
      double lm = loss();
      v = keep;
      double num = (lp - lm) / (2 * eps), ana = e.param->grad.data[i];
      if (std::abs(num - ana) > rtol * (std::abs(num) + scale) + 1e-12) {
        ++bad;
        MESSAGE("grad mismatch in '", e.name, "'[", i, "]: analytic ", ana, ", numeric ", num);
      }
    }
  }
  return bad;
}

}  // namespace longseq::test
