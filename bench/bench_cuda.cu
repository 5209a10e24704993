// CUDA benchmark of ops::gemm (cuBLAS), ops::fft_conv (cuFFT), the encoder layer's flash attention, whole
// layers (the Transformer encoder layer, the S4D and S4 blocks, forward + backward) and the main job's whole
// training step, on the host benchmarks' shapes and names with a `cuda_` prefix and the storage type; each
// iteration is timed with CUDA events on the context's stream. The PyTorch peers (bench/peers/*_torch.py
// --device cuda) print the same names. Exits quietly without a device.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <longseq/attention/encoder_layer.hpp>
#include <longseq/attention/flash.hpp>
#include <longseq/core/cuda/context.cuh>
#include <longseq/core/cuda/memory.cuh>
#include <longseq/core/cuda/rng.cuh>
#include <longseq/core/rng.hpp>
#include <longseq/ops/cuda/fft_conv.cuh>
#include <longseq/ops/cuda/gemm.cuh>
#include <longseq/ssm/s4.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/ssm/ssm_conv.hpp>
#include <longseq/train/checkpoint.hpp>

#include "shapes.hpp"
#include "train_step.hpp"

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

// ---- whole layers and the training step ----

const char* dtype_name(std::type_identity<float>) { return "fp32"; }
const char* dtype_name(std::type_identity<bf16>) { return "bf16"; }

// Forward + backward of a device layer in storage T whose parameters are its float host twin's (init is
// host-only), rounded to T, on x, dy ~ N(0, 1) of shape (B, L, H); one untimed call first, as on the host.
// fill(config) sets the sizes of either layer's Config.
template <class Layer, class HostLayer, class Fill>
void time_device_layer(benchmark::State& state, Fill fill, index_t B, index_t L, index_t H) {
  using T = typename Layer::value_type;
  auto config = [&]<class C>(std::type_identity<C>) {
    C c;
    fill(c);
    return c;
  };
  HostLayer host(config(std::type_identity<typename HostLayer::Config>{}));
  ParamStore<float> host_store;
  host_store.bind(host);
  Rng rng(7);
  host.init(rng);
  Layer layer(config(std::type_identity<typename Layer::Config>{}));
  ParamStore<T, device::cuda> store;
  store.bind(layer);
  train::copy_parameters(host_store, store);
  const index_t n = B * L * H;
  std::vector<T> h(static_cast<std::size_t>(n));
  Rng data(11);
  auto random = [&] {
    for (auto& v : h) v = T(float(data.normal()));
    return to_device(TensorView<const T>(h.data(), Shape{B, L, H}));
  };
  const auto x = random(), dy = random();
  Tensor<T, device::cuda> y(Shape{B, L, H}), dx(Shape{B, L, H});
  Context<device::cuda> ctx;
  typename Layer::Saved saved;
  timed_loop(state, ctx, [&] {
    layer.forward(ctx, x.view(), y.view(), saved);
    layer.backward(ctx, saved, dy.view(), dx.view());
  });
  state.SetItemsProcessed(state.iterations() * B * L);
}

// bench_attention's encoder layer (pre-LN, GELU, FF 256) on the attention shapes.
template <class T>
void run_encoder_layer(benchmark::State& state, AttentionShape s) {
  auto fill = [&](auto& c) {
    c.dim = s.D;
    c.heads = s.heads;
    c.ff_hidden = 2 * s.D;
    c.activation = nn::Activation::gelu;
  };
  time_device_layer<attention::TransformerEncoderLayer<T, true, attention::NoRotation, device::cuda>,
                    attention::TransformerEncoderLayer<float, true>>(state, fill, s.B, s.L, s.D);
}

// bench_ssm's layers: SSMConv with the S4D and the S4 kernel, causal (bench/peers/ssm_torch.py: the reference
// S4D and S4 blocks).
struct SSMShape {
  index_t B, H, N, L;
};
const SSMShape ssm_shapes[] = {{16, 128, 64, 1024}, {8, 128, 64, 4096}};  // keep in step with bench_ssm.cpp

template <template <class, class> class Kernel, class T>
void run_ssm(benchmark::State& state, SSMShape s) {
  auto fill = [&](auto& c) {
    c.kernel.H = s.H;
    c.kernel.N = s.N;
    if constexpr (requires { c.kernel.l_max; }) c.kernel.l_max = s.L;
  };
  time_device_layer<ssm::SSMConv<Kernel<T, device::cuda>, ssm::Causal, device::cuda>,
                    ssm::SSMConv<Kernel<float, device::host>, ssm::Causal>>(state, fill, s.B, s.L, s.H);
}
template <class T, class D>
using S4DKernel = ssm::S4D<T, ssm::ZOH, D>;
template <class T, class D>
using S4Kernel = ssm::S4<T, D>;

std::string ssm_name(const char* layer, const char* dtype, const SSMShape& s) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "cuda_%s_fwd_bwd/%s/B=%lld/H=%lld/N=%lld/L=%lld", layer, dtype, (long long)s.B,
                (long long)s.H, (long long)s.N, (long long)s.L);
  return buf;
}
std::string layer_name(const char* dtype, const AttentionShape& s) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "cuda_encoder_layer_fwd_bwd/%s/B=%lld/L=%lld/D=%lld", dtype, (long long)s.B,
                (long long)s.L, (long long)s.D);
  return buf;
}

// The main job's training step (bench/train_step.hpp) on the GPU.
template <class Family, class T>
void run_train_step(benchmark::State& state) {
  bench::step::Step<Family, T, device::cuda> s;
  Context<device::cuda> ctx;
  timed_loop(state, ctx, [&] { s.run(ctx); });
}

}  // namespace

int main(int argc, char** argv) {
  if (longseq::cuda::device_count() == 0) {
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
  auto each_type = [](auto f) {
    f(std::type_identity<float>{});
    f(std::type_identity<bf16>{});
  };
  for (const auto& s : attention_shapes)
    each_type([&]<class T>(std::type_identity<T> t) {
      benchmark::RegisterBenchmark(layer_name(dtype_name(t), s).c_str(), run_encoder_layer<T>, s)
          ->Unit(benchmark::kMillisecond)
          ->UseManualTime();
    });
  for (const auto& s : ssm_shapes)
    each_type([&]<class T>(std::type_identity<T> t) {
      benchmark::RegisterBenchmark(ssm_name("s4d", dtype_name(t), s).c_str(), run_ssm<S4DKernel, T>, s)
          ->Unit(benchmark::kMillisecond)
          ->UseManualTime();
      benchmark::RegisterBenchmark(ssm_name("s4", dtype_name(t), s).c_str(), run_ssm<S4Kernel, T>, s)
          ->Unit(benchmark::kMillisecond)
          ->UseManualTime();
    });
  each_type([&]<class T>(std::type_identity<T> t) {
    const std::string dt = dtype_name(t);
    benchmark::RegisterBenchmark(("cuda_train_step/" + dt + "/s4d/B=32/L=784/D=64").c_str(),
                                 run_train_step<bench::step::S4DModel, T>)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime();
    benchmark::RegisterBenchmark(("cuda_train_step/" + dt + "/transformer/B=32/L=784/D=64").c_str(),
                                 run_train_step<bench::step::TransformerModel, T>)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime();
  });
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
