// CUDA benchmark of ops::gemm (cuBLAS), ops::fft_conv (cuFFT) and the encoder layer's flash attention on the
// host benchmarks' shapes; each iteration is timed with CUDA events on the context's stream. Exits quietly
// without a device.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <longseq/attention/flash.hpp>
#include <longseq/core/cuda/context.cuh>
#include <longseq/core/cuda/rng.cuh>
#include <longseq/ops/cuda/fft_conv.cuh>
#include <longseq/ops/cuda/gemm.cuh>
#include <longseq/core/rng.hpp>
#include <string>
#include <vector>

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

// The encoder layer's attention (bench_attention's encoder_layer shapes: d_model 128, 4 heads, so head_dim 32),
// forward + backward of the flash kernels. Rows: fp32 (SIMT kernels), bf16 as dispatched (tensor cores on
// sm_80+), and bf16 with LONGSEQ_FLASH_SIMT=1 (the SIMT kernels in bf16), for the ratio of the two paths.
struct AttentionShape {
  index_t B, L, D, heads;
};
const AttentionShape attention_shapes[] = {{16, 1024, 128, 4}, {8, 4096, 128, 4}};

template <class T>
void run_attention(benchmark::State& state, AttentionShape s, bool force_simt) {
  Context<device::cuda> ctx;
  const index_t n = s.B * s.L * s.D, dh = s.D / s.heads;
  std::vector<T> host(static_cast<std::size_t>(n));
  Rng rng(7);
  auto random = [&] {
    for (auto& x : host) x = T(float(rng.uniform(-1.0, 1.0)));
    return to_device(TensorView<const T>(host.data(), Shape{n}));
  };
  const auto q = random(), k = random(), v = random(), g = random();
  Tensor<T, device::cuda> o(Shape{n}), dq(Shape{n}), dk(Shape{n}), dv(Shape{n});
  Tensor<float, device::cuda> lse(Shape{s.B * s.heads * s.L});
  attention::FlashArgs<T> a;
  a.batch = s.B;
  a.heads = s.heads;
  a.len_q = a.len_k = s.L;
  a.head_dim = dh;
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.q_batch = a.k_batch = a.v_batch = s.L * s.D;
  a.q_row = a.k_row = a.v_row = s.D;
  a.scale = 1.0 / std::sqrt(double(dh));
  if (force_simt) ::setenv("LONGSEQ_FLASH_SIMT", "1", 1);
  state.SetLabel(attention::use_tensor_cores(ctx, a) ? "tensor cores" : "SIMT");
  timed_loop(state, ctx, [&] {
    attention::flash_forward(ctx, a, o.data(), a.q_batch, a.q_row, lse.data());
    attention::flash_backward(ctx, a, o.data(), a.q_batch, a.q_row, lse.data(), g.data(), dq.data(), dk.data(),
                              dv.data());
  });
  if (force_simt) ::unsetenv("LONGSEQ_FLASH_SIMT");
  // FlashAttention's count: 4 B H L^2 dh for the forward's two products, 2.5 times that for the backward.
  state.counters["TFLOP/s"] = benchmark::Counter(3.5 * 4.0 * double(s.B * s.heads) * double(s.L) * double(s.L) *
                                                     double(dh) * 1e-12,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

std::string attention_name(const char* dtype, const AttentionShape& s) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "cuda_encoder_attention_fwd_bwd/%s/B=%lld/L=%lld/D=%lld/heads=%lld", dtype,
                (long long)s.B, (long long)s.L, (long long)s.D, (long long)s.heads);
  return buf;
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
  for (const auto& s : attention_shapes) {
    benchmark::RegisterBenchmark(attention_name("fp32", s).c_str(), run_attention<float>, s, false)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime();
    benchmark::RegisterBenchmark(attention_name("bf16", s).c_str(), run_attention<bf16>, s, false)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime();
    benchmark::RegisterBenchmark(attention_name("bf16_simt", s).c_str(), run_attention<bf16>, s, true)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime();
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
