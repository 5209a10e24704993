// Data-parallel throughput of a small MLP (samples/s vs ranks). Skipped in the test run; measure with
//   mpirun -np R test_distributed --no-skip --test-case="throughput*"
// for several R at a fixed global batch.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include <longseq/nn/linear.hpp>
#include <longseq/ops/activation.hpp>
#include <longseq/train/adamw.hpp>

#include <longseq/train/distributed_mpi.hpp>

using namespace longseq;

namespace {
struct Wide {
  nn::Linear<float> l1{{.in = 256, .out = 1024}};
  nn::Linear<float> l2{{.in = 1024, .out = 256}};
  template <class F>
  void parameters(F&& f) {
    auto f1 = prefixed("l1", f);
    l1.parameters(f1);
    auto f2 = prefixed("l2", f);
    l2.parameters(f2);
  }
};
}  // namespace

TEST_CASE("throughput: samples/s of data-parallel MLP training" * doctest::skip()) {
  train::MpiCommunicator comm({.timeout_s = 120});  // own communicator: its buckets point into this test's store
  constexpr index_t batch = 512, steps = 20, warmup = 3;
  Wide m;
  ParamStore<float> store;
  store.bind(m);
  Rng rng(3);
  m.l1.init(rng);
  m.l2.init(rng);
  train::broadcast_parameters(comm, store);
  train::AdamW<float> opt(store, {.lr = 1e-3});
  comm.attach_gradients(store);
  const index_t l2_offset = store.find("l2.weight")->offset;
  HostContext ctx;
  const train::Shard sh = train::shard(batch, comm);
  const index_t n = sh.count;
  Tensor<float> x(Shape{n, 256}), h(Shape{n, 1024}), a(Shape{n, 1024}), y(Shape{n, 256}), dy(Shape{n, 256}),
      da(Shape{n, 1024}), dh(Shape{n, 1024});
  for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = float(rng.normal());
  nn::Linear<float>::Saved s1, s2;
  std::chrono::steady_clock::time_point t0;
  for (index_t step = 0; step < warmup + steps; ++step) {
    if (step == warmup) {
      comm.barrier();
      t0 = std::chrono::steady_clock::now();
    }
    opt.zero_grad();
    m.l1.forward(ctx, x.view(), h.view(), s1);
    ops::gelu_forward<float>(ctx, h.view(), a.view());
    m.l2.forward(ctx, a.view(), y.view(), s2);
    for (index_t i = 0; i < y.numel(); ++i) dy.data()[i] = float(sh.weight) * y.data()[i] / float(y.numel());
    m.l2.backward(ctx, s2, dy.view(), da.view());
    comm.start_buckets_from(l2_offset);
    ops::gelu_backward<float>(ctx, h.view(), da.view(), dh.view());
    comm.poll();
    m.l1.backward(ctx, s1, dh.view(), TensorView<float>(nullptr, Shape{0}));
    comm.finish();
    opt.step();
  }
  comm.barrier();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  train::root_printf(comm, "throughput: %d rank(s), global batch %ld, %ld steps: %.1f samples/s\n", comm.size(),
                     long(batch), long(steps), double(batch * steps) / secs);
  CHECK(secs > 0);
}
