// Host FFT-convolution benchmark: forward and backward of ops::fft_conv (causal) on SSM layer shapes.
#include <benchmark/benchmark.h>

#include <longseq/core/context.hpp>
#include <longseq/core/rng.hpp>
#include <longseq/ops/fft_conv.hpp>

#include "shapes.hpp"

using namespace longseq;

namespace {

void fill_random(Tensor<float>& t, std::uint64_t seed) {
  Rng rng(seed);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = rng.uniform() - 0.5f;
}

void run_conv(benchmark::State& state, bench::ConvShape s, bool backward) {
  Context<device::host> ctx;
  Tensor<float> u(Shape{s.B, s.H, s.L}), k(Shape{s.H, s.L}), y(Shape{s.B, s.H, s.L});
  fill_random(u, 1);
  fill_random(k, 2);
  Tensor<float> du, dk;
  if (backward) {
    du = Tensor<float>(Shape{s.B, s.H, s.L});
    dk = Tensor<float>(Shape{s.H, s.L});
  }
  for (auto _ : state) {
    if (backward)
      ops::fft_conv_backward<float>(ctx, u.view(), k.view(), u.view(), du.view(), dk.view());
    else
      ops::fft_conv_forward<float>(ctx, u.view(), k.view(), y.view());
    benchmark::ClobberMemory();
  }
  state.counters["threads"] = ctx.threads;
}

}  // namespace

int main(int argc, char** argv) {
  for (const auto& s : bench::conv_shapes()) {
    benchmark::RegisterBenchmark(bench::conv_name("fft_conv_fwd", s).c_str(), run_conv, s, false)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(0.5);
    benchmark::RegisterBenchmark(bench::conv_name("fft_conv_bwd", s).c_str(), run_conv, s, true)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(0.5);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
