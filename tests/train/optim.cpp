// AdamW against PyTorch's update written out by hand, parameter groups, schedules and clipping.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <string>

#include <longseq/train/adamw.hpp>
#include <longseq/train/clip.hpp>
#include <longseq/train/schedule.hpp>

using namespace longseq;

namespace {
struct ThreeGroups {
  Param<double> w{Shape{2}, ParamGroup::weight}, b{Shape{1}, ParamGroup::no_decay}, a{Shape{2}, ParamGroup::ssm};
  template <class F>
  void parameters(F&& f) {
    f("w", w);
    f("b", b);
    f("a", a);
  }
};
}  // namespace

TEST_CASE("AdamW matches torch.optim.AdamW's update per group over three steps") {
  ThreeGroups m;
  ParamStore<double> store;
  store.bind(m);
  const double init[] = {0.5, -1.0, 2.0, 0.3, -0.7};
  Param<double>* ps[] = {&m.w, &m.w, &m.b, &m.a, &m.a};
  const index_t idx[] = {0, 1, 0, 0, 1};
  for (int k = 0; k < 5; ++k) ps[k]->value[idx[k]] = init[k];
  train::AdamWConfig cfg{.lr = 0.01, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.1, .ssm_lr = 0.001,
                         .ssm_weight_decay = 0.0};
  train::AdamW<double> opt(store, cfg);
  // Reference written out as torch.optim.AdamW (decoupled decay, bias corrections, eps outside sqrt).
  double p[5], mm[5] = {}, vv[5] = {};
  for (int k = 0; k < 5; ++k) p[k] = init[k];
  const double lr[] = {0.01, 0.01, 0.01, 0.001, 0.001}, wd[] = {0.1, 0.1, 0.0, 0.0, 0.0};
  const double scales[] = {1.0, 0.5, 0.25};
  for (int t = 1; t <= 3; ++t) {
    for (int k = 0; k < 5; ++k) ps[k]->grad[idx[k]] = std::sin(1.0 + k * 0.7 + t) * (k + 1);
    opt.step(scales[t - 1]);
    for (int k = 0; k < 5; ++k) {
      const double g = std::sin(1.0 + k * 0.7 + t) * (k + 1), a = lr[k] * scales[t - 1];
      p[k] *= 1 - a * wd[k];
      mm[k] = 0.9 * mm[k] + 0.1 * g;
      vv[k] = 0.99 * vv[k] + 0.01 * g * g;
      const double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.99, t);
      p[k] -= a / bc1 * mm[k] / (std::sqrt(vv[k]) / std::sqrt(bc2) + 1e-8);
    }
    opt.zero_grad();
  }
  for (int k = 0; k < 5; ++k) CHECK(ps[k]->value[idx[k]] == doctest::Approx(p[k]).epsilon(1e-14));
  CHECK(opt.steps() == 3);
  CHECK(m.w.grad[0] == 0.0);
  // First step by hand for the decayed weight: p1 = p0 (1 - lr wd) - lr sign(g) (|m_hat| = |g|, v_hat = g^2).
  ThreeGroups m2;
  ParamStore<double> s2;
  s2.bind(m2);
  m2.w.value[0] = 1.0;
  m2.w.grad[0] = 3.0;
  train::AdamW<double> o2(s2, {.lr = 0.1, .weight_decay = 0.5});
  o2.step();
  CHECK(m2.w.value[0] == doctest::Approx(1.0 * (1 - 0.05) - 0.1 * 3.0 / (3.0 + 1e-8)).epsilon(1e-14));
  CHECK(o2.group_lr(ParamGroup::ssm) == 0.1);  // ssm_lr < 0: the global lr
  CHECK(o2.group_decay(ParamGroup::ssm) == 0.0);
  CHECK(o2.group_decay(ParamGroup::no_decay) == 0.0);
  CHECK_THROWS_WITH_AS(train::AdamW<double>(s2, {.lr = 0.1, .beta1 = 1.0}), doctest::Contains("AdamW: invalid"), Error);
}

namespace {
struct FourGroups {
  Param<double> w{Shape{1}, ParamGroup::weight}, b{Shape{1}, ParamGroup::no_decay}, a{Shape{1}, ParamGroup::ssm},
      dt{Shape{1}, ParamGroup::dt};
  template <class F>
  void parameters(F&& f) {
    f("w", w);
    f("b", b);
    f("a", a);
    f("dt", dt);
  }
};
// One step from p = 1 with g = 0 isolates the decay: the Adam term is 0, so p1 = 1 - lr wd.
std::array<double, 4> decay_only_step(const train::AdamWConfig& cfg) {
  FourGroups m;
  ParamStore<double> s;
  s.bind(m);
  for (auto* p : {&m.w, &m.b, &m.a, &m.dt}) p->value[0] = 1.0;
  train::AdamW<double> o(s, cfg);
  o.step();
  return {m.w.value[0], m.b.value[0], m.a.value[0], m.dt.value[0]};
}
}  // namespace

TEST_CASE("AdamW: dt trains at the global lr without decay; biases and norms decay only when asked") {
  // Defaults: the reference's dt (lr: {dt: null}) -> global lr, no decay; no_decay stays undecayed.
  FourGroups m;
  ParamStore<double> s;
  s.bind(m);
  train::AdamW<double> o(s, {.lr = 0.01, .weight_decay = 0.1, .ssm_lr = 0.001});
  CHECK(o.group_lr(ParamGroup::dt) == 0.01);
  CHECK(o.group_decay(ParamGroup::dt) == 0.0);
  CHECK(o.group_lr(ParamGroup::ssm) == 0.001);
  CHECK(o.group_decay(ParamGroup::no_decay) == 0.0);
  CHECK(std::string(group_name(ParamGroup::dt)) == "dt");
  // A step moves dt by the global lr: with one gradient sign, |dp| = lr (Adam's first step).
  m.dt.value[0] = 0.5;
  m.a.value[0] = 0.5;
  m.dt.grad[0] = 2.0;
  m.a.grad[0] = 2.0;
  o.step();
  CHECK(m.dt.value[0] == doctest::Approx(0.5 - 0.01).epsilon(1e-9));  // eps 1e-8 in the denominator
  CHECK(m.a.value[0] == doctest::Approx(0.5 - 0.001).epsilon(1e-9));
  // The old behaviour (dt with the SSM dynamics) is one option away.
  train::AdamW<double> old(s, {.lr = 0.01, .ssm_lr = 0.001, .dt_lr = 0.001});
  CHECK(old.group_lr(ParamGroup::dt) == 0.001);

  const auto d0 = decay_only_step({.lr = 0.1, .weight_decay = 0.5});
  CHECK(d0[0] == doctest::Approx(0.95).epsilon(1e-14));
  CHECK(d0[1] == 1.0);
  CHECK(d0[2] == 1.0);
  CHECK(d0[3] == 1.0);
  // The reference decays biases and norm scales at the global decay; SSM dynamics and dt stay undecayed.
  const auto d1 = decay_only_step({.lr = 0.1, .weight_decay = 0.5, .no_decay_weight_decay = 0.5});
  CHECK(d1[0] == doctest::Approx(0.95).epsilon(1e-14));
  CHECK(d1[1] == doctest::Approx(0.95).epsilon(1e-14));
  CHECK(d1[2] == 1.0);
  CHECK(d1[3] == 1.0);
  const auto d2 = decay_only_step({.lr = 0.1, .weight_decay = 0.0, .dt_lr = 0.2, .dt_weight_decay = 0.25});
  CHECK(d2[3] == doctest::Approx(1 - 0.2 * 0.25).epsilon(1e-14));
  CHECK_THROWS_WITH_AS(decay_only_step({.no_decay_weight_decay = -1}), doctest::Contains("no_decay_weight_decay=-1"),
                       Error);
}

TEST_CASE("schedules: linear warmup then constant or cosine") {
  train::Schedule c{train::Schedule::Kind::constant, 4, 0, 0};
  CHECK(c.factor(0) == 0.25);
  CHECK(c.factor(3) == 1.0);
  CHECK(c.factor(100) == 1.0);
  train::Schedule k{train::Schedule::Kind::cosine, 2, 12, 0.0};
  CHECK(k.factor(0) == 0.5);
  CHECK(k.factor(2) == doctest::Approx(1.0));
  CHECK(k.factor(7) == doctest::Approx(0.5));  // halfway through the decay
  CHECK(k.factor(12) == doctest::Approx(0.0));
  CHECK(k.factor(50) == doctest::Approx(0.0));
  train::Schedule f{train::Schedule::Kind::cosine, 0, 10, 0.1};
  CHECK(f.factor(10) == doctest::Approx(0.1));
  CHECK(f.factor(5) == doctest::Approx(0.55));
  CHECK_THROWS_WITH_AS(train::Schedule::parse("linear"), doctest::Contains("unknown schedule 'linear'"), Error);
}

TEST_CASE("global-norm clipping scales all gradients together and reports non-finite ones") {
  ThreeGroups m;
  ParamStore<double> store;
  store.bind(m);
  m.w.grad[0] = 3;
  m.w.grad[1] = 0;
  m.b.grad[0] = 4;
  CHECK(train::global_grad_norm(store) == doctest::Approx(5.0));
  CHECK(train::clip_grad_norm(store, 10.0) == doctest::Approx(5.0));
  CHECK(m.w.grad[0] == 3.0);  // below the limit: untouched
  CHECK(train::clip_grad_norm(store, 1.0) == doctest::Approx(5.0));
  CHECK(m.w.grad[0] == doctest::Approx(3.0 / (5.0 + 1e-6)));
  CHECK(m.b.grad[0] == doctest::Approx(4.0 / (5.0 + 1e-6)));
  CHECK(train::global_grad_norm(store) == doctest::Approx(1.0).epsilon(1e-6));
  CHECK(train::first_nonfinite_grad(store).empty());
  m.a.grad[1] = INFINITY;
  CHECK(train::first_nonfinite_grad(store) == "a");
  CHECK(std::isinf(train::clip_grad_norm(store, 1.0)));
}
