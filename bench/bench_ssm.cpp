// Host SSM layer benchmark: forward + backward of SSMConv with an S4D (ZOH, diagonal) and an S4 (DPLR)
// kernel, causal, float32, on the reference comparison shapes (bench/peers/ssm_torch.py times the
// reference PyTorch layers on the same shapes and names).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include <longseq/core/context.hpp>
#include <longseq/core/rng.hpp>
#include <longseq/ssm/s4.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/ssm/ssm_conv.hpp>

using namespace longseq;

namespace {

struct SSMShape {
  index_t B, H, N, L;
};
// Keep in step with bench/peers/ssm_torch.py.
const std::vector<SSMShape> shapes = {{16, 128, 64, 1024}, {8, 128, 64, 4096}};

std::string name(const char* layer, const SSMShape& s) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%s_fwd_bwd/B=%lld/H=%lld/N=%lld/L=%lld", layer, (long long)s.B, (long long)s.H,
                (long long)s.N, (long long)s.L);
  return buf;
}

template <class Kernel>
void run_layer(benchmark::State& state, typename Kernel::Config kc, SSMShape s) {
  using Layer = ssm::SSMConv<Kernel, ssm::Causal>;
  typename Layer::Config cfg;
  cfg.kernel = kc;
  Layer layer(cfg);
  ParamStore<float> store;
  store.bind(layer);
  Rng rng(7);
  layer.init(rng);
  Context<device::host> ctx;
  ctx.training = true;
  Tensor<float> x(Shape{s.B, s.L, s.H}), y(Shape{s.B, s.L, s.H}), dy(Shape{s.B, s.L, s.H}), dx(Shape{s.B, s.L, s.H});
  Rng data(11);
  for (index_t i = 0; i < x.numel(); ++i) {
    x[i] = float(data.normal());
    dy[i] = float(data.normal());
  }
  typename Layer::Saved saved;
  // One untimed call first, as the peer does: FFT plans and scratch buffers are made on first use.
  layer.forward(ctx, x.view(), y.view(), saved);
  layer.backward(ctx, saved, dy.view(), dx.view());
  for (auto _ : state) {
    layer.forward(ctx, x.view(), y.view(), saved);
    layer.backward(ctx, saved, dy.view(), dx.view());
    benchmark::ClobberMemory();
  }
  state.counters["threads"] = ctx.threads;
  state.SetItemsProcessed(state.iterations() * s.B * s.L);
}

}  // namespace

int main(int argc, char** argv) {
  for (const auto& s : shapes) {
    typename ssm::S4D<float>::Config d;
    d.H = s.H;
    d.N = s.N;
    benchmark::RegisterBenchmark(name("s4d", s).c_str(), run_layer<ssm::S4D<float>>, d, s)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(0.5);
    typename ssm::S4<float>::Config f;
    f.H = s.H;
    f.N = s.N;
    f.l_max = s.L;
    benchmark::RegisterBenchmark(name("s4", s).c_str(), run_layer<ssm::S4<float>>, f, s)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(0.5);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
