// DLR against the reference layer's settings: the "omega" initialization's ranges and variances and the
// parameter groups that give each tensor the reference's learning rate.
#include <doctest/doctest.h>

#include <cmath>
#include <longseq/ssm/dlr.hpp>
#include <longseq/ssm/ssm_conv.hpp>
#include <map>
#include <numbers>
#include <string>

using namespace longseq;
using namespace longseq::ssm;

TEST_CASE("DLR initializes as the reference layer: decay rates over [1e-4, 0.1], W parts with deviation 1/N") {
  const DLRConfig defaults{};
  CHECK(defaults.dt_min == 1e-4);  // the reference layer's defaults: its LRA runs never override them
  CHECK(defaults.dt_max == 0.1);
  const index_t H = 8, N = 512;
  DLR<double> k({.H = H, .N = N, .channels = 2});
  ParamStore<double> store;
  store.bind(k);
  Rng rng(21);
  k.init(rng);
  // Re Lambda = -dt / 2 = -Lambda_r^2, dt log-uniform: log dt has mean (log dt_min + log dt_max) / 2 and
  // standard deviation (log dt_max - log dt_min) / sqrt(12).
  double lo = 1e9, hi = 0, mean_log = 0;
  for (index_t n = 0; n < N; ++n) {
    const double dt = 2 * k.Lambda_r.value[n] * k.Lambda_r.value[n];
    lo = std::min(lo, dt);
    hi = std::max(hi, dt);
    mean_log += std::log(dt) / double(N);
    CHECK(k.Lambda_theta.value[n] == doctest::Approx(2 * std::numbers::pi * double(n) / double(N)));
  }
  const double width = std::log(0.1) - std::log(1e-4);
  CHECK(lo >= 1e-4 * (1 - 1e-12));
  CHECK(hi <= 0.1 * (1 + 1e-12));
  CHECK(hi > 0.05);  // the whole range is used, not [1e-4, 1e-3]
  CHECK(std::abs(mean_log - 0.5 * (std::log(1e-4) + std::log(0.1))) < 4 * width / std::sqrt(12.0 * double(N)));
  // W: (C, H, N, 2) real and imaginary parts, each N(0, 1/N^2).
  const index_t n = k.W.value.numel();
  double ss = 0, sum = 0;
  for (index_t i = 0; i < n; ++i) {
    sum += k.W.value[i];
    ss += k.W.value[i] * k.W.value[i];
  }
  const double sd = std::sqrt(ss / double(n)) * double(N);
  CHECK(sd == doctest::Approx(1.0).epsilon(4 / std::sqrt(2.0 * double(n))));  // sampling error of a deviation
  CHECK(std::abs(sum / double(n)) * double(N) < 4 / std::sqrt(double(n)));
}

TEST_CASE("DLR parameter groups follow the reference's learning rates") {
  // The reference trains Lambda's imaginary part and W at the layer rate (the `ssm` group) and the real part at
  // the global rate without decay (the `dt` group); SSMConv's D and output projection are ordinary weights.
  SSMConv<DLR<float>, Bidirectional> layer({.kernel = {.H = 4, .N = 8}});
  std::map<std::string, ParamGroup> groups;
  layer.parameters([&](std::string_view name, Param<float>& p) { groups[std::string(name)] = p.group; });
  const std::map<std::string, ParamGroup> want{{"kernel.Lambda_r", ParamGroup::dt},
                                               {"kernel.Lambda_theta", ParamGroup::ssm},
                                               {"kernel.W", ParamGroup::ssm},
                                               {"D", ParamGroup::weight},
                                               {"out.weight", ParamGroup::weight},
                                               {"out.bias", ParamGroup::no_decay}};
  for (const auto& [name, g] : want) {
    INFO(name);
    REQUIRE(groups.count(name) == 1);
    CHECK(group_name(groups[name]) == std::string(group_name(g)));
  }
  CHECK(groups.size() == want.size());
}
