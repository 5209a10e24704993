// Host GEMM benchmark: a linear layer's (B*L, H) x (H, 2H) product in float, as ops::gemm runs it.
#include <benchmark/benchmark.h>

#include <longseq/core/context.hpp>
#include <longseq/core/rng.hpp>
#include <longseq/ops/gemm.hpp>

#include "shapes.hpp"

using namespace longseq;

namespace {

void run_gemm(benchmark::State& state, bench::GemmShape s) {
  Context<device::host> ctx;
  index_t M = s.B * s.L, K = s.H, N = 2 * s.H;
  Tensor<float> x(Shape{M, K}), w(Shape{N, K}), y(Shape{M, N});
  Rng rng(1);
  for (index_t i = 0; i < x.numel(); ++i) x[i] = rng.uniform() - 0.5f;
  for (index_t i = 0; i < w.numel(); ++i) w[i] = rng.uniform() - 0.5f;
  for (auto _ : state) {
    // y = x w^T, the weight in PyTorch's (out, in) layout.
    ops::gemm<float>(ctx, ops::Trans::N, ops::Trans::T, M, N, K, 1.0f, x.data(), K, w.data(), K, 0.0f, y.data(), N);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * double(M) * double(N) * double(K), benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
  state.counters["threads"] = ctx.threads;
}

}  // namespace

int main(int argc, char** argv) {
  for (const auto& s : bench::gemm_shapes())
    benchmark::RegisterBenchmark(bench::gemm_name(s).c_str(), run_gemm, s)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(0.5);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
