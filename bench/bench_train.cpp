// One whole training step (forward, loss, backward, AdamW update) of the main job's two classifiers on the
// host (bench/train_step.hpp; bench_cuda times the same step on the GPU, bench/peers/train_torch.py in PyTorch).
#include <benchmark/benchmark.h>

#include <longseq/attention/flash_kernels.hpp>

#include "train_step.hpp"

using namespace longseq;

namespace {

template <class Family>
void train_step(benchmark::State& st) {
  bench::step::Step<Family, float, device::host> s;
  Context<device::host> ctx;
  s.run(ctx);  // saved activations, FFT plans and scratch reach their size
  for (auto _ : st) {
    s.run(ctx);
    benchmark::ClobberMemory();
  }
  st.counters["threads"] = ctx.threads;
#if LONGSEQ_FLASH_SIMD
  st.counters["simd_width"] = attention::kernels::width;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("train_step/s4d/B=32/L=784/D=64", train_step<bench::step::S4DModel>)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinTime(0.5);
  benchmark::RegisterBenchmark("train_step/transformer/B=32/L=784/D=64", train_step<bench::step::TransformerModel>)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinTime(0.5);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
