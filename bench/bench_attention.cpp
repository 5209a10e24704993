// Host Transformer layer benchmark: forward + backward of one pre-LN encoder layer (attention then
// feed-forward, GELU) on the shapes of the issue (d_model 128, 4 heads, FF 256); bench/peers/
// attention_torch.py times torch.nn.TransformerEncoderLayer on the same shapes and names. The flash_fwd /
// flash_bwd entries time the host flash attention alone (no PyTorch peer) on the layer's attention and on
// the main job's (B 32, 4 heads, L 784, head size 16), forward and backward apart.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <longseq/attention/encoder_layer.hpp>
#include <longseq/attention/flash.hpp>

#include "layer_timing.hpp"

using namespace longseq;

namespace {

struct AttnShape {
  index_t B, L, D, heads, ff;
};
// Keep in step with bench/peers/attention_torch.py.
const std::vector<AttnShape> shapes = {{16, 1024, 128, 4, 256}, {8, 4096, 128, 4, 256}};

std::string name(const AttnShape& s) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "encoder_layer_fwd_bwd/B=%lld/L=%lld/D=%lld", (long long)s.B, (long long)s.L,
                (long long)s.D);
  return buf;
}

void run_layer(benchmark::State& state, AttnShape s) {
  using Layer = attention::TransformerEncoderLayer<float, true>;
  Layer::Config cfg;
  cfg.dim = s.D;
  cfg.heads = s.heads;
  cfg.ff_hidden = s.ff;
  cfg.activation = nn::Activation::gelu;
  Layer layer(cfg);
  bench::time_forward_backward(state, layer, s.B, s.L, s.D);
}

struct FlashShape {
  index_t B, heads, L, head_dim;
};
const std::vector<FlashShape> flash_shapes = {{32, 4, 784, 16}, {16, 4, 1024, 32}};

std::string flash_name(const char* what, const FlashShape& s) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%s/B=%lld/H=%lld/L=%lld/dh=%lld", what, (long long)s.B, (long long)s.heads,
                (long long)s.L, (long long)s.head_dim);
  return buf;
}

// Flash attention on random q, k, v in the layer's (B, L, heads * head_dim) layout, with the attention
// layer's tile request (256); backward times the backward alone, after one forward.
void run_flash(benchmark::State& state, FlashShape s, bool backward) {
  const index_t row = s.heads * s.head_dim, n = s.B * s.L * row;
  Tensor<float> q(Shape{n}), k(Shape{n}), v(Shape{n}), dout(Shape{n}), o(Shape{n}), dq(Shape{n}), dk(Shape{n}),
      dv(Shape{n}), lse(Shape{s.B * s.heads * s.L});
  Rng data(13);
  for (auto* t : {&q, &k, &v, &dout})
    for (index_t i = 0; i < n; ++i) (*t)[i] = float(data.normal());
  attention::FlashArgs<float> a;
  a.batch = s.B;
  a.heads = s.heads;
  a.len_q = a.len_k = s.L;
  a.head_dim = s.head_dim;
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.q_batch = a.k_batch = a.v_batch = s.L * row;
  a.q_row = a.k_row = a.v_row = row;
  a.scale = 1.0 / std::sqrt(double(s.head_dim));
  a.block_q = a.block_k = 256;
  Context<device::host> ctx;
  auto fwd = [&] { attention::flash_forward(ctx, a, o.data(), s.L * row, row, lse.data()); };
  auto bwd = [&] {
    attention::flash_backward(ctx, a, o.data(), s.L * row, row, lse.data(), dout.data(), dq.data(), dk.data(),
                              dv.data());
  };
  fwd();
  if (backward) bwd();
  for (auto _ : state) {
    backward ? bwd() : fwd();
    benchmark::ClobberMemory();
  }
  state.counters["threads"] = ctx.threads;
}

}  // namespace

int main(int argc, char** argv) {
  for (const auto& s : shapes)
    benchmark::RegisterBenchmark(name(s).c_str(), run_layer, s)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
  for (const auto& s : flash_shapes)
    for (bool backward : {false, true})
      benchmark::RegisterBenchmark(flash_name(backward ? "flash_bwd" : "flash_fwd", s).c_str(), run_flash, s, backward)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(0.5);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
