// train::step and train::apply_update: the update fit runs, callable on its own; the optimizer concept (a
// plain SGD drives the same step); AdamW's float32 masters for narrow storage.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <longseq/train/step.hpp>
#include <vector>

#include "train/toy.hpp"

using namespace longseq;
using doctest::Contains;

namespace {

using Cls = heads::ClassificationHead<float>;
using Net = testing::ToyNet<float, Cls>;

// A second optimizer, to show AdamW is not the only one: p -= lr * factor * g.
template <class T>
struct Sgd {
  using value_type = T;
  using device_type = device::host;
  ParamStore<T>* s;
  double lr;
  index_t t = 0;
  void step(double f) {
    auto v = s->values(), g = s->grads();
    for (index_t i = 0; i < v.numel(); ++i) v.data[i] = T(double(v.data[i]) - lr * f * double(g.data[i]));
    ++t;
  }
  void zero_grad() {
    auto g = s->grads();
    std::fill(g.data, g.data + g.numel(), T(0));
  }
  index_t steps() const { return t; }
  double base_lr() const { return lr; }
  ParamStore<T>& store() { return *s; }
};
static_assert(train::Optimizer<Sgd<float>>);
static_assert(train::Optimizer<train::AdamW<float>>);
static_assert(train::Optimizer<train::AdamW<bf16>>);
struct NotAnOptimizer {};
static_assert(!train::Optimizer<NotAnOptimizer>);

struct Vec {
  Param<float> w{Shape{6}, ParamGroup::weight}, b{Shape{3}, ParamGroup::no_decay};
  template <class F>
  void parameters(F&& f) {
    f("w", w);
    f("b", b);
  }
};

void fill_grads(Vec& m, float k) {
  for (index_t i = 0; i < 6; ++i) m.w.grad[i] = k * float(i + 1) - 2.0f;
  for (index_t i = 0; i < 3; ++i) m.b.grad[i] = 0.5f * k - float(i);
}

std::vector<float> flat(ParamStore<float>& s) {
  auto v = s.values();
  return {v.data, v.data + v.numel()};
}

struct Run {
  Net net{testing::toy_config<float, Cls>(8, {.dim = 8, .classes = 2})};
  ParamStore<float> store;
  train::AdamW<float> opt;
  Run() : opt((store.bind(net), store), {.lr = 3e-3, .weight_decay = 0.01}) {
    Rng rng(42);
    net.init(rng);
  }
};

}  // namespace

TEST_CASE("apply_update is the unscale, clip, check and step sequence, bit for bit") {
  for (double scale : {0.0, 1024.0}) {
    CAPTURE(scale);
    Vec a, b;
    ParamStore<float> sa, sb;
    sa.bind(a);
    sb.bind(b);
    for (index_t i = 0; i < 6; ++i) a.w.value[i] = b.w.value[i] = 0.1f * float(i);
    train::AdamW<float> oa(sa, {.lr = 1e-2}), ob(sb, {.lr = 1e-2});
    train::LossScaler la({.initial = scale}), lb({.initial = scale});
    for (int t = 0; t < 3; ++t) {
      const float k = float(la.scale()) * (1.0f + float(t));
      fill_grads(a, k);
      fill_grads(b, k);
      const auto r = train::apply_update(oa, la, 0.5, 0.75);
      // The sequence written out.
      if (lb.enabled()) train::scale_grads(sb, 1.0 / lb.scale());
      const double norm = train::clip_grad_norm(sb, 0.5);
      lb.update(true);
      ob.step(0.75);
      ob.zero_grad();
      CHECK(r.taken());
      CHECK(r.grad_norm == norm);
      const auto fa = flat(sa), fb = flat(sb);
      CHECK(std::memcmp(fa.data(), fb.data(), fa.size() * sizeof(float)) == 0);
      CHECK(sa.grads()[0] == 0.0f);
    }
    CHECK(oa.steps() == 3);
  }
}

TEST_CASE("apply_update: non-finite gradients are skipped under loss scaling, reported without it") {
  Vec m;
  ParamStore<float> s;
  s.bind(m);
  train::AdamW<float> opt(s, {.lr = 1e-2});
  fill_grads(m, 1.0f);
  m.w.grad[2] = INFINITY;
  const auto before = flat(s);
  train::LossScaler off;
  const auto r = train::apply_update(opt, off, 0.0, 1.0);
  CHECK(r.status == train::UpdateStatus::nonfinite);
  CHECK(train::first_nonfinite_grad(s) == "w");  // left in place for the caller to name
  CHECK(flat(s) == before);
  CHECK(opt.steps() == 0);

  train::LossScaler on({.initial = 256, .min_scale = 64});
  const auto r2 = train::apply_update(opt, on, 0.0, 1.0);
  CHECK(r2.status == train::UpdateStatus::skipped);
  CHECK(r2.loss_scale == 256);
  CHECK(on.scale() == 128);
  CHECK(on.skipped() == 1);
  CHECK(s.grads()[2] == 0.0f);
  CHECK(flat(s) == before);
  CHECK(opt.steps() == 0);
  m.w.grad[0] = NAN;
  CHECK(train::apply_update(opt, on, 0.0, 1.0).status == train::UpdateStatus::skipped);  // 128 -> 64
  m.w.grad[0] = NAN;
  CHECK(train::apply_update(opt, on, 0.0, 1.0).status == train::UpdateStatus::nonfinite);  // cannot go below 64
  CHECK(on.scale() == 64);
}

TEST_CASE("train::step from a loop of one's own trains the toy model, and any Optimizer drives it") {
  Run r;
  Context<device::host> ctx;
  Net::Saved saved;
  testing::ToyTask<float> task;
  train::LossScaler scaler;
  double first = 0, last = 0;
  for (index_t e = 0; e < 6; ++e)
    for (index_t i = 0; i < task.num_batches(train::Split::train, e); ++i) {
      task.load(train::Split::train, e, i);
      ctx.seed = std::uint64_t(e * 100 + i);
      const auto res = train::step(r.net, ctx, saved, r.opt, scaler, task.inputs(), task.targets(), {.clip = 1.0});
      CHECK(res.update.taken());
      if (e == 0 && i == 0) first = res.stats.loss;
      last = res.stats.loss;
    }
  CHECK(r.opt.steps() == 36);
  CHECK(last < first);

  // The same step, computed by hand, gives the same parameters bit for bit.
  Run a, b;
  Context<device::host> ca, cb;
  Net::Saved sa, sb;
  task.load(train::Split::train, 0, 0);
  ca.seed = cb.seed = 5;
  train::step(a.net, ca, sa, a.opt, scaler, task.inputs(), task.targets(), {.clip = 0.5, .lr_factor = 0.5});
  cb.training = true;
  b.net.forward(cb, task.inputs(), task.targets(), sb);
  b.net.backward(cb, sb, 1.0);
  train::clip_grad_norm(b.store, 0.5);
  b.opt.step(0.5);
  b.opt.zero_grad();
  const auto fa = flat(a.store), fb = flat(b.store);
  CHECK(std::memcmp(fa.data(), fb.data(), fa.size() * sizeof(float)) == 0);

  // Plain SGD through the same step.
  Run c;
  Sgd<float> sgd{&c.store, 0.05};
  Context<device::host> cc;
  Net::Saved sc;
  const auto before = flat(c.store);
  const auto res = train::step(c.net, cc, sc, sgd, scaler, task.inputs(), task.targets());
  CHECK(res.update.taken());
  CHECK(sgd.steps() == 1);
  CHECK(flat(c.store) != before);
}

TEST_CASE("train::step names a non-finite loss and a non-finite gradient") {
  Run r;
  Context<device::host> ctx;
  Net::Saved saved;
  testing::ToyTask<float> task;
  task.poison_at = 0;
  task.load(train::Split::train, 0, 0);
  train::LossScaler scaler;
  CHECK_THROWS_WITH_AS(train::step(r.net, ctx, saved, r.opt, scaler, task.inputs(), task.targets()),
                       Contains("non-finite loss"), Error);
  task.poison_at = -1;
  task.load(train::Split::train, 0, 0);
  r.net.backbone.layers[0].norm.weight.grad[0] = NAN;  // a stale NaN left in one gradient
  CHECK_THROWS_WITH_AS(train::step(r.net, ctx, saved, r.opt, scaler, task.inputs(), task.targets()),
                       Contains("non-finite gradient (first in 'backbone.layers.0.norm.weight')"), Error);
}

namespace {
struct P16 {
  Param<bf16> w{Shape{4}, ParamGroup::weight};
  template <class F>
  void parameters(F&& f) {
    f("w", w);
  }
};
}  // namespace

TEST_CASE("AdamW with bf16 storage keeps float32 masters: the masters follow the float optimizer exactly") {
  P16 m16;
  Vec m32;
  ParamStore<bf16> s16;
  ParamStore<float> s32;
  s16.bind(m16);
  s32.bind(m32);
  for (index_t i = 0; i < 4; ++i) {
    m16.w.value[i] = bf16(1.0f + float(i));
    m32.w.value[i] = 1.0f + float(i);
  }
  // A learning rate far below bf16's resolution at 1..4: without masters the stored values would never move.
  train::AdamW<bf16> o16(s16, {.lr = 1e-5, .weight_decay = 0.0});
  train::AdamW<float> o32(s32, {.lr = 1e-5, .weight_decay = 0.0});
  for (int t = 0; t < 600; ++t) {
    for (index_t i = 0; i < 4; ++i) {
      const float g = (i % 2 ? 0.5f : -0.25f);  // exact in bf16
      m16.w.grad[i] = bf16(g);
      m32.w.grad[i] = g;
    }
    o16.step();
    o32.step();
  }
  auto master = o16.masters();
  for (index_t i = 0; i < 4; ++i) {
    CHECK(master[i] == m32.w.value[i]);
    CHECK(float(m16.w.value[i]) == float(bf16(master[i])));
  }
  CHECK(float(m16.w.value[0]) != 1.0f);  // 600 * 1e-5 = 6e-3 is past half a bf16 step at 1 (2^-8)
}
