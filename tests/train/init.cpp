// train::redraw_normal: every parameter of a store redrawn from N(0, sigma), buffers kept, one seed one model.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include <longseq/train/init.hpp>

using namespace longseq;

namespace {
struct Parts {
  Param<double> w{Shape{40, 50}, ParamGroup::weight}, b{Shape{30}, ParamGroup::no_decay},
      a{Shape{20, 10}, ParamGroup::ssm}, dt{Shape{8}, ParamGroup::dt}, run{Shape{6}, ParamGroup::no_decay};
  Parts() { run.buffer = true; }
  template <class F>
  void parameters(F&& f) {
    f("encoder.weight", w);
    f("norm.bias", b);
    f("mixer.A", a);
    f("mixer.log_dt", dt);
    f("norm.running_var", run);
  }
};
void fill(Parts& p, double v) {
  for (auto* q : {&p.w, &p.b, &p.a, &p.dt, &p.run})
    for (index_t i = 0; i < q->shape.numel(); ++i) q->value.data[i] = v;
}
}  // namespace

TEST_CASE("redraw_normal draws every parameter of every group from N(0, sigma) and keeps buffers") {
  Parts m;
  ParamStore<double> store;
  store.bind(m);
  fill(m, 7.0);
  Rng rng(3, 11);
  const index_t n = train::redraw_normal(store, rng, 0.1);
  CHECK(n == 2000 + 30 + 200 + 8);
  for (index_t i = 0; i < 6; ++i) CHECK(m.run.value[i] == 7.0);  // running statistics are not parameters
  // Each tensor: nothing left of the old value, and the moments of N(0, 0.1).
  double s = 0, s2 = 0;
  index_t cnt = 0;
  for (auto* q : {&m.w, &m.b, &m.a, &m.dt})
    for (index_t i = 0; i < q->shape.numel(); ++i) {
      const double x = q->value.data[i];
      CHECK(std::abs(x) < 0.7);  // 7 sigma
      s += x;
      s2 += x * x;
      ++cnt;
    }
  const double mean = s / double(cnt), sd = std::sqrt(s2 / double(cnt) - mean * mean);
  CHECK(std::abs(mean) < 0.01);  // 4.5 standard errors at n = 2238
  CHECK(sd == doctest::Approx(0.1).epsilon(0.06));
  // Same seed and stream: the same model; another seed: another.
  Parts m2, m3;
  ParamStore<double> s2store, s3store;
  s2store.bind(m2);
  s3store.bind(m3);
  Rng r2(3, 11), r3(4, 11);
  train::redraw_normal(s2store, r2, 0.1);
  train::redraw_normal(s3store, r3, 0.1);
  CHECK(m2.w.value[17] == m.w.value[17]);
  CHECK(m2.dt.value[7] == m.dt.value[7]);
  CHECK(m3.w.value[17] != m.w.value[17]);
}

TEST_CASE("redraw_normal with a selection leaves the rest alone and checks sigma") {
  Parts m;
  ParamStore<double> store;
  store.bind(m);
  fill(m, 7.0);
  Rng rng(5);
  const index_t n = train::redraw_normal(store, rng, 0.1, [](std::string_view name) { return name.starts_with("mixer."); });
  CHECK(n == 208);
  CHECK(m.w.value[0] == 7.0);
  CHECK(m.b.value[0] == 7.0);
  CHECK(m.a.value[0] != 7.0);
  CHECK(m.dt.value[0] != 7.0);
  CHECK_THROWS_WITH_AS(train::redraw_normal(store, rng, 0.0), doctest::Contains("sigma = 0"), Error);
}
