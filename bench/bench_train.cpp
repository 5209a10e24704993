// One whole training step (forward, loss, backward, AdamW update) of the main job's two classifiers on
// sequential Fashion-MNIST (examples/spt_vs_scratch defaults: L = 784 pixels, d_model 64, 2 pre-LN blocks,
// batch 32, 10 classes, mean pooling): the S4D model (bidirectional SSMConv, N = 64) and the Transformer
// (4 heads, FF 128, GELU, sinusoidal positions). bench/peers/train_torch.py is the same pair in PyTorch.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include <longseq/attention/encoder_layer.hpp>
#include <longseq/attention/flash_kernels.hpp>
#include <longseq/heads/classification.hpp>
#include <longseq/models/model.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/ssm/ssm_conv.hpp>
#include <longseq/train/adamw.hpp>

using namespace longseq;

namespace {

// Keep in step with bench/peers/train_torch.py.
constexpr index_t B = 32, L = 784, D = 64, depth = 2, state = 64, heads = 4, classes = 10;

using Transformer = nn::Stack<attention::TransformerEncoderLayer<float, true>>;
using S4DStack = nn::Stack<nn::PreNormResidual<nn::LayerNorm<float>, ssm::SSMConv<ssm::S4D<float>, ssm::Bidirectional>>>;

template <class Backbone, template <class, class> class Position>
using Classifier = models::Model<models::LinearEncoder<float, device::host, Position>, Backbone, nn::LayerNorm<float>,
                                 heads::ClassificationHead<float>>;

typename Transformer::Config transformer_config() {
  typename Transformer::Config c;
  c.depth = depth;
  c.block.dim = D;
  c.block.heads = heads;
  c.block.ff_hidden = 2 * D;
  c.block.activation = nn::Activation::gelu;
  return c;
}
typename S4DStack::Config s4d_config() {
  typename S4DStack::Config c;
  c.depth = depth;
  c.block.norm = {.dim = D};
  auto& k = c.block.mixer.kernel;
  k.H = D;
  k.channels = 2;
  k.N = state;
  return c;
}

template <class Backbone, template <class, class> class Position>
void train_step(benchmark::State& st, typename Backbone::Config backbone) {
  using M = Classifier<Backbone, Position>;
  M model({{.channels = 1, .dim = D, .mask_channel = false},
           backbone,
           {.dim = D},
           {.dim = D, .classes = classes, .pool = nn::PoolMode::mean}});
  ParamStore<float> store;
  store.bind(model);
  Rng rng(1, 1);
  model.init(rng);
  train::AdamW<float> opt(store, {.lr = 5e-3, .weight_decay = 0.05, .ssm_lr = 1e-3, .ssm_weight_decay = 0.0});
  Context<device::host> ctx;
  Tensor<float> pixels(Shape{B, L, 1});
  Tensor<std::int32_t> labels(Shape{B});
  Rng data(2);
  for (index_t i = 0; i < pixels.numel(); ++i) pixels[i] = float(data.uniform());
  for (index_t b = 0; b < B; ++b) labels[b] = std::int32_t(b % classes);
  models::Inputs<float> in;
  in.values = pixels.view();
  heads::Targets<float> t;
  t.classes = labels.view();
  typename M::Saved saved;
  auto step = [&] {
    opt.zero_grad();
    benchmark::DoNotOptimize(model.forward(ctx, in, t, saved));
    model.backward(ctx, saved);
    opt.step();
  };
  step();  // saved activations, FFT plans and scratch reach their size
  for (auto _ : st) {
    step();
    benchmark::ClobberMemory();
  }
  st.counters["threads"] = ctx.threads;
#if LONGSEQ_FLASH_SIMD
  st.counters["simd_width"] = attention::kernels::width;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("train_step/s4d/B=32/L=784/D=64", [](benchmark::State& st) {
    train_step<S4DStack, attention::NoPosition>(st, s4d_config());
  })->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
  benchmark::RegisterBenchmark("train_step/transformer/B=32/L=784/D=64", [](benchmark::State& st) {
    train_step<Transformer, attention::SinusoidalPosition>(st, transformer_config());
  })->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
