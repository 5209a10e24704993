// The device update against the host one on the same parameters and gradients: AdamW's fused kernel (groups,
// SSM lr, decay, a running-statistics buffer left alone), bf16 storage with float32 masters, clipping, the
// finite check and dynamic loss scaling decided on the device.
#include <doctest/doctest.h>

#include <cmath>
#include <longseq/core/cuda/memory.cuh>
#include <longseq/train/adamw.hpp>
#include <longseq/train/step.hpp>
#include <vector>

// At file scope on purpose, as the trainers say it: the device update must compile there (CUB's device-wide
// algorithms would not: nvcc's stubs name their ::cuda::std types unqualified, ambiguous with longseq::cuda).
using namespace longseq;
using doctest::Contains;

namespace {

template <class T, class D>
struct Groups {
  Param<T, D> w{Shape{3, 5}, ParamGroup::weight}, b{Shape{5}, ParamGroup::no_decay}, a{Shape{7}, ParamGroup::ssm},
      run{Shape{2}, ParamGroup::no_decay};
  Groups() { run.buffer = true; }
  template <class F>
  void parameters(F&& f) {
    f("w", w);
    f("b", b);
    f("a", a);
    f("run", run);
  }
};

template <class T>
std::vector<T> host_of(TensorView<T, device::cuda> v) {
  std::vector<T> h(std::size_t(v.numel()));
  LONGSEQ_CUDA_CHECK(cudaMemcpy(h.data(), v.data, h.size() * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}
template <class T>
void set_device(TensorView<T, device::cuda> v, const std::vector<T>& h) {
  LONGSEQ_CUDA_CHECK(cudaMemcpy(v.data, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
}

// Same values in both stores; gradients g(t) = k * sin(i + t) (times `bad` at one entry when asked).
template <class T>
struct Pair {
  Groups<T, device::host> hm;
  Groups<T, device::cuda> dm;
  ParamStore<T> hs;
  ParamStore<T, device::cuda> ds;
  Pair() {
    hs.bind(hm);
    ds.bind(dm);
    auto v = hs.values();
    for (index_t i = 0; i < v.numel(); ++i) v.data[i] = T(float(std::cos(0.3 * double(i))));
    set_device(ds.values(), std::vector<T>(v.data, v.data + v.numel()));
  }
  void grads(int t, double k, double bad = 1.0) {
    auto g = hs.grads();
    for (const auto& e : hs.entries())
      for (index_t i = 0; i < e.param->shape.numel(); ++i)
        g.data[e.offset + i] = T(float(k * std::sin(double(e.offset + i + t))));
    g.data[3] = T(float(double(float(g.data[3])) * bad));
    set_device(ds.grads(), std::vector<T>(g.data, g.data + g.numel()));
  }
  double max_diff() {
    auto h = hs.values();
    auto d = host_of(ds.values());
    double err = 0;
    for (index_t i = 0; i < h.numel(); ++i)
      err = std::max(err, std::abs(double(float(h.data[i])) - double(float(d[std::size_t(i)]))));
    return err;
  }
};

const train::AdamWConfig cfg{.lr = 0.01, .beta1 = 0.9, .beta2 = 0.99, .weight_decay = 0.1, .ssm_lr = 0.002};

}  // namespace

TEST_CASE("device AdamW: the fused kernel matches the host loop per group; buffers are left alone") {
  Pair<float> p;
  train::AdamW<float> ho(p.hs, cfg);
  train::AdamW<float, device::cuda> dop(p.ds, cfg);
  const auto run_before = host_of(TensorView<float, device::cuda>(p.dm.run.value));
  for (int t = 0; t < 5; ++t) {
    p.grads(t, 0.5);
    ho.step(0.5 + 0.1 * t);
    dop.step(0.5 + 0.1 * t);
  }
  CHECK(dop.steps() == 5);
  CHECK(p.max_diff() < 1e-6);
  // Both skip buffers (running statistics), even given a gradient: the buffer keeps its start values.
  CHECK(host_of(TensorView<float, device::cuda>(p.dm.run.value)) == run_before);
  dop.zero_grad();
  for (float g : host_of(p.ds.grads())) CHECK(g == 0.0f);
}

TEST_CASE("device AdamW with bf16 storage: float32 masters match the host's") {
  Pair<bf16> p;
  train::AdamW<bf16> ho(p.hs, cfg);
  train::AdamW<bf16, device::cuda> dop(p.ds, cfg);
  for (int t = 0; t < 4; ++t) {
    p.grads(t, 0.25);
    ho.step();
    dop.step();
  }
  auto hm = ho.masters();
  auto dm = host_of(dop.masters());
  double err = 0;
  for (const auto& e : p.hs.entries()) {
    if (e.param->buffer) continue;
    for (index_t i = 0; i < e.param->shape.numel(); ++i)
      err = std::max(err, std::abs(double(hm[e.offset + i]) - double(dm[std::size_t(e.offset + i)])));
  }
  CHECK(err < 1e-6);
}

TEST_CASE("device update: norm, clipping, loss scaling and skips decided on the device match the host") {
  Pair<float> p;
  train::AdamW<float> ho(p.hs, cfg);
  train::AdamW<float, device::cuda> dop(p.ds, cfg);
  const train::LossScaleConfig ls{.initial = 1024, .window = 2, .min_scale = 256};
  train::LossScaler hsc(ls);
  train::DeviceLossScaler dsc(ls);
  //            good  good  (grow) inf   good  nan   good
  const double bad[] = {1, 1, INFINITY, 1, NAN, 1};
  for (int t = 0; t < 6; ++t) {
    CAPTURE(t);
    const double scale = hsc.scale();
    CHECK(dsc.scale() == scale);
    p.grads(t, 3.0 * scale, bad[t]);
    CHECK(train::global_grad_norm(p.ds) == doctest::Approx(train::global_grad_norm(p.hs)).epsilon(1e-12));
    const auto hr = train::apply_update(ho, hsc, 1.0, 1.0);
    train::apply_update(dop, dsc, 1.0, 1.0);
    const auto dr = dsc.last();
    CHECK(int(dr.status) == int(hr.status));
    CHECK(dr.loss_scale == hr.loss_scale);
    if (hr.taken()) CHECK(dr.grad_norm == doctest::Approx(hr.grad_norm).epsilon(1e-9));
    CHECK(p.max_diff() < 1e-6);
  }
  CHECK(dsc.skipped() == 2);
  CHECK(dsc.state().scale == hsc.state().scale);
  CHECK(dop.steps() == ho.steps());
}

TEST_CASE("device update: non-finite gradients without loss scaling stop at the next scale read, named") {
  Pair<float> p;
  train::AdamW<float, device::cuda> dop(p.ds, cfg);
  train::DeviceLossScaler off;
  p.grads(0, 1.0, NAN);
  const auto before = host_of(p.ds.values());
  train::apply_update(dop, off, 0.0, 1.0);
  CHECK(off.last().status == train::UpdateStatus::nonfinite);
  CHECK_THROWS_WITH_AS(off.scale(), Contains("non-finite gradient"), Error);
  CHECK(host_of(p.ds.values()) == before);  // no update taken
  CHECK(dop.steps() == 0);
  CHECK(train::first_nonfinite_grad(p.ds) == "w");  // the gradients were left in place
}
