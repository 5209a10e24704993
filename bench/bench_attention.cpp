// Host Transformer layer benchmark: forward + backward of one pre-LN encoder layer (attention then
// feed-forward, GELU) on the shapes of the issue (d_model 128, 4 heads, FF 256); bench/peers/
// attention_torch.py times torch.nn.TransformerEncoderLayer on the same shapes and names.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include <longseq/attention/encoder_layer.hpp>
#include <longseq/core/context.hpp>
#include <longseq/core/rng.hpp>

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
  ParamStore<float> store;
  store.bind(layer);
  Rng rng(7);
  layer.init(rng);
  Context<device::host> ctx;
  Tensor<float> x(Shape{s.B, s.L, s.D}), y(Shape{s.B, s.L, s.D}), dy(Shape{s.B, s.L, s.D}), dx(Shape{s.B, s.L, s.D});
  Rng data(11);
  for (index_t i = 0; i < x.numel(); ++i) {
    x[i] = float(data.normal());
    dy[i] = float(data.normal());
  }
  Layer::Saved saved;
  // One untimed call first, as the peer does: saved activations reach their final size.
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
  for (const auto& s : shapes)
    benchmark::RegisterBenchmark(name(s).c_str(), run_layer, s)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
