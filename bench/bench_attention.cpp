// Host Transformer layer benchmark: forward + backward of one pre-LN encoder layer (attention then
// feed-forward, GELU) on the shapes of the issue (d_model 128, 4 heads, FF 256); bench/peers/
// attention_torch.py times torch.nn.TransformerEncoderLayer on the same shapes and names.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include <longseq/attention/encoder_layer.hpp>

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

}  // namespace

int main(int argc, char** argv) {
  for (const auto& s : shapes)
    benchmark::RegisterBenchmark(name(s).c_str(), run_layer, s)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
