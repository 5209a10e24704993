// Checkpoints through the device-generic code path on the host policy: bf16 storage keeps its float32
// masters and moments, so a resumed update is bit for bit the uninterrupted one; a float file loads into
// bf16 storage; BatchStage on the host hands the model the task's own views.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>

#include "train/checkpoint_state.hpp"
#include "train/toy.hpp"
#include "temp_root.hpp"

using namespace longseq;
using testing::TwoParams;

namespace {
std::string temp_file(const std::string& name) {
  auto dir = testtmp::dir("ckpt_generic");
  return (dir / name).string();
}
template <class T>
void set_host(TensorView<T> dst, const std::vector<T>& src) {
  std::copy(src.begin(), src.end(), dst.data);
}
// Three updates of AdamW on fixed gradients (a different gradient per update).
template <class T>
void train_steps(ParamStore<T>& store, train::AdamW<T>& opt, int from, int n) {
  for (int k = from; k < from + n; ++k) {
    set_host(store.grads(), testing::pattern<T>(store.grads().numel(), 10.0 + k));
    opt.step(1.0 - 0.1 * k);
  }
}
// One parameter "w" of a given shape.
struct OneParam {
  Param<float> w;
  explicit OneParam(Shape s) : w(s) {}
  template <class F>
  void parameters(F&& f) {
    f("w", w);
  }
};
}  // namespace

TEST_CASE("checkpoint: bf16 storage resumes with its float32 masters and moments, bit for bit") {
  const train::AdamWConfig oc{.lr = 1e-2, .weight_decay = 0.05, .ssm_lr = 3e-3};
  TwoParams<bf16> a;
  ParamStore<bf16> sa;
  sa.bind(a);
  set_host(sa.values(), testing::pattern<bf16>(sa.values().numel(), 0.0));
  train::AdamW<bf16> oa(sa, oc);
  train_steps(sa, oa, 0, 3);
  const std::string path = temp_file("bf16.safetensors");
  train::TrainState st;
  st.step = 3;
  train::save_checkpoint(path, sa, &oa, st);

  // The masters carry bits the rounded values lack, so restoring them is what makes the resume exact.
  bool finer = false;
  for (const auto& e : sa.entries())
    for (index_t i = 0; i < e.param->shape.numel(); ++i)
      finer = finer || float(e.param->value.data[i]) != oa.master(e).data[i];
  CHECK(finer);
  const auto file = interop::Safetensors::load(path);
  CHECK(file.record("optim.master.w").dtype == DType::f32);
  CHECK(file.record("optim.exp_avg.w").dtype == DType::f32);
  CHECK(file.record("model.w").dtype == DType::bf16);

  TwoParams<bf16> b;
  ParamStore<bf16> sb;
  sb.bind(b);
  train::AdamW<bf16> ob(sb, oc);
  train::TrainState back;
  train::load_checkpoint(path, sb, &ob, &back);
  CHECK(back.step == 3);
  CHECK(testing::optimizer_state(sb, ob) == testing::optimizer_state(sa, oa));
  train_steps(sa, oa, 3, 2);
  train_steps(sb, ob, 3, 2);
  CHECK(testing::optimizer_state(sb, ob) == testing::optimizer_state(sa, oa));

  // Without the masters (a reload from the rounded values) the next updates differ: the check above can fail.
  TwoParams<bf16> c;
  ParamStore<bf16> sc;
  sc.bind(c);
  train::AdamW<bf16> oc2(sc, oc);
  train::load_checkpoint(path, sc, &oc2, nullptr);
  oc2.reload_masters();
  train_steps(sc, oc2, 3, 2);
  CHECK(testing::optimizer_state(sc, oc2) != testing::optimizer_state(sa, oa));
}

TEST_CASE("checkpoint: a float run's file loads into bf16 storage; masters come from the loaded values") {
  TwoParams<float> a;
  ParamStore<float> sa;
  sa.bind(a);
  set_host(sa.values(), testing::pattern<float>(sa.values().numel(), 1.0));
  train::AdamW<float> oa(sa, {});
  train_steps(sa, oa, 0, 2);
  const std::string path = temp_file("f32.safetensors");
  train::save_checkpoint(path, sa, &oa, train::TrainState{});

  TwoParams<bf16> b;
  ParamStore<bf16> sb;
  sb.bind(b);
  train::AdamW<bf16> ob(sb, {});
  train::load_checkpoint(path, sb, &ob, nullptr);
  CHECK(ob.steps() == 2);
  ob.sync_masters();
  for (const auto& e : sb.entries()) {
    const auto* f = sa.find(e.name);
    for (index_t i = 0; i < e.param->shape.numel(); ++i) {
      CHECK(e.param->value.data[i].bits == bf16(f->param->value.data[i]).bits);
      CHECK(ob.master(e).data[i] == float(e.param->value.data[i]));
      CHECK(ob.exp_avg(e).data[i] == oa.exp_avg(*f).data[i]);  // moments stay float32 either way
    }
  }
}

TEST_CASE("BatchStage on the host: the task's own views, its token count and shard flag") {
  testing::ToyTask<float> task;
  train::BatchStage<float, device::host> stage;
  HostContext ctx;
  const auto& b = stage.get(ctx, task, {train::Split::val, 0, 1});
  CHECK(b.inputs.values.data == task.values.data());
  CHECK(b.targets.classes.data == task.labels.data());
  CHECK(b.tokens == task.batch * task.length);
  CHECK(!b.empty);
  stage.prefetch(ctx, task, {train::Split::val, 0, 0});  // nothing to overlap with on the host: no load
  CHECK(b.inputs.values.data == task.values.data());
  CHECK(task.labels[0] == task.y[std::size_t(task.base(train::Split::val) + task.batch)]);
}

TEST_CASE("copy_parameters: by name between stores, a missing or reshaped parameter named") {
  TwoParams<float> a, b;
  ParamStore<float> sa, sb;
  sa.bind(a);
  sb.bind(b);
  set_host(sa.values(), testing::pattern<float>(sa.values().numel(), 2.0));
  train::copy_parameters(sa, sb);
  for (const auto& e : sb.entries())  // the entries, not the padding between them
    CHECK(testing::bytes_of(e.param->value) == testing::bytes_of(sa.find(e.name)->param->value));
  OneParam o(Shape{5, 4});
  ParamStore<float> so;
  so.bind(o);
  CHECK_THROWS_WITH_AS(train::copy_parameters(sa, so), doctest::Contains("parameter 'w' has shape"), Error);
  OneParam w(Shape{5, 3});
  ParamStore<float> sw;
  sw.bind(w);
  CHECK_THROWS_WITH_AS(train::copy_parameters(sw, sa), doctest::Contains("lacks parameter 'b'"), Error);
  CHECK_THROWS_WITH_AS(train::copy_parameters(sa, sw), doctest::Contains("has 3 parameters, the destination 1"), Error);
}

TEST_CASE("copy_parameters: between storage types each value is rounded once (float to bf16, half and double)") {
  TwoParams<float> a;
  ParamStore<float> sa;
  sa.bind(a);
  set_host(sa.values(), testing::pattern<float>(sa.values().numel(), 3.0));
  auto check = [&]<class T>(std::type_identity<T>) {
    TwoParams<T> b;
    ParamStore<T> sb;
    sb.bind(b);
    train::copy_parameters(sa, sb);
    for (const auto& e : sb.entries()) {
      const auto& src = sa.find(e.name)->param->value;
      for (index_t i = 0; i < src.numel(); ++i) {
        const T expected(src.data[i]);
        CHECK(std::memcmp(&e.param->value.data[i], &expected, sizeof(T)) == 0);
      }
    }
  };
  check(std::type_identity<bf16>{});
  check(std::type_identity<half>{});
  check(std::type_identity<double>{});
  TwoParams<double> d;
  ParamStore<double> sd;
  sd.bind(d);
  train::copy_parameters(sa, sd);
  const auto before = testing::bytes_of(sa.values());
  train::copy_parameters(sd, sa);  // float -> double -> float is exact
  CHECK(testing::bytes_of(sa.values()) == before);
  OneParam o(Shape{5, 3});
  ParamStore<float> so;
  so.bind(o);
  TwoParams<bf16> n;
  ParamStore<bf16> sn;
  sn.bind(n);
  CHECK_THROWS_WITH_AS(train::copy_parameters(so, sn), doctest::Contains("lacks parameter 'b'"), Error);
  OneParam wide(Shape{5, 4});
  ParamStore<float> sw;
  sw.bind(wide);
  CHECK_THROWS_WITH_AS(train::copy_parameters(sw, sn), doctest::Contains("parameter 'w' has shape"), Error);
}
