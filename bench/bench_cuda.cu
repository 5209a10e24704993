// CUDA benchmark of ops::gemm (cuBLAS) and ops::fft_conv (cuFFT) on the host benchmarks' shapes; each
// iteration is timed with CUDA events on the context's stream. Exits quietly without a device.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <longseq/core/cuda/context.cuh>
#include <longseq/core/cuda/rng.cuh>
#include <longseq/ops/cuda/fft_conv.cuh>
#include <longseq/ops/cuda/gemm.cuh>

#include "shapes.hpp"

using namespace longseq;

namespace {

// Times one call of f per iteration on the stream (manual time, in seconds).
template <class F>
void timed_loop(benchmark::State& state, Context<device::cuda>& ctx, F f) {
  f();  // warm-up: plans, handles and pooled scratch are created here
  ctx.synchronize();
  cudaEvent_t start, stop;
  LONGSEQ_CUDA_CHECK(cudaEventCreate(&start));
  LONGSEQ_CUDA_CHECK(cudaEventCreate(&stop));
  for (auto _ : state) {
    LONGSEQ_CUDA_CHECK(cudaEventRecord(start, ctx.stream()));
    f();
    LONGSEQ_CUDA_CHECK(cudaEventRecord(stop, ctx.stream()));
    LONGSEQ_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    LONGSEQ_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(double(ms) * 1e-3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

void run_gemm(benchmark::State& state, bench::GemmShape s) {
  Context<device::cuda> ctx;
  index_t M = s.B * s.L, K = s.H, N = 2 * s.H;
  Tensor<float, device::cuda> x(Shape{M, K}), w(Shape{N, K}), y(Shape{M, N});
  fill_uniform(ctx, x.view(), 1, 0);
  fill_uniform(ctx, w.view(), 2, 0);
  timed_loop(state, ctx, [&] {
    ops::gemm<float>(ctx, ops::Trans::N, ops::Trans::T, M, N, K, 1.0f, x.data(), K, w.data(), K, 0.0f, y.data(), N);
  });
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * double(M) * double(N) * double(K), benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}

void run_conv(benchmark::State& state, bench::ConvShape s, bool backward) {
  Context<device::cuda> ctx;
  Tensor<float, device::cuda> u(Shape{s.B, s.H, s.L}), k(Shape{s.H, s.L}), y(Shape{s.B, s.H, s.L});
  Tensor<float, device::cuda> du(Shape{s.B, s.H, s.L}), dk(Shape{s.H, s.L});
  fill_uniform(ctx, u.view(), 1, 0);
  fill_uniform(ctx, k.view(), 2, 0);
  fill_uniform(ctx, dk.view(), 3, 0);
  timed_loop(state, ctx, [&] {
    if (backward)
      ops::fft_conv_backward<float>(ctx, u.view(), k.view(), u.view(), du.view(), dk.view());
    else
      ops::fft_conv_forward<float>(ctx, u.view(), k.view(), y.view());
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (cuda::device_count() == 0) {
    std::printf("no CUDA device present: nothing to benchmark\n");
    return 0;
  }
  for (const auto& s : bench::gemm_shapes())
    benchmark::RegisterBenchmark(("cuda_" + bench::gemm_name(s)).c_str(), run_gemm, s)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime();
  for (const auto& s : bench::conv_shapes()) {
    benchmark::RegisterBenchmark(("cuda_" + bench::conv_name("fft_conv_fwd", s)).c_str(), run_conv, s, false)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime();
    benchmark::RegisterBenchmark(("cuda_" + bench::conv_name("fft_conv_bwd", s)).c_str(), run_conv, s, true)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime();
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
