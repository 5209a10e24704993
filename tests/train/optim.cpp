// AdamW against PyTorch's update written out by hand, parameter groups, schedules and clipping.
#include <doctest/doctest.h>

#include <cmath>

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
