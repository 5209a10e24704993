// One whole training step (forward, loss, backward, AdamW update) of the main job's two classifiers on
// sequential Fashion-MNIST (examples/spt_vs_scratch defaults: L = 784 pixels, d_model 64, 2 pre-LN blocks,
// batch 32, 10 classes, mean pooling): the S4D model (bidirectional SSMConv, N = 64) and the Transformer
// (4 heads, FF 128, GELU, sinusoidal positions), in storage T on policy Dev. bench_train times it on the host,
// bench_cuda on the GPU; bench/peers/train_torch.py is the same pair in PyTorch.
#pragma once
#include <cstdint>

#include <longseq/attention/encoder_layer.hpp>
#include <longseq/heads/classification.hpp>
#include <longseq/models/model.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/ssm/s4d.hpp>
#include <longseq/ssm/ssm_conv.hpp>
#include <longseq/train/adamw.hpp>
#include <longseq/train/checkpoint.hpp>

namespace longseq::bench::step {

// Keep in step with bench/peers/train_torch.py.
constexpr index_t B = 32, L = 784, D = 64, depth = 2, state = 64, heads = 4, classes = 10;

template <class T, class Dev>
using TransformerStack = nn::Stack<attention::TransformerEncoderLayer<T, true, attention::NoRotation, Dev>>;
template <class T, class Dev>
using S4DStack =
    nn::Stack<nn::PreNormResidual<nn::LayerNorm<T, Dev>, ssm::SSMConv<ssm::S4D<T>, ssm::Bidirectional, Dev>>>;

// A family: the backbone and the encoder's positions.
struct S4DModel {
  template <class T, class Dev>
  using backbone = S4DStack<T, Dev>;
  template <class T, class Dev>
  using position = attention::NoPosition<T, Dev>;
};
struct TransformerModel {
  template <class T, class Dev>
  using backbone = TransformerStack<T, Dev>;
  template <class T, class Dev>
  using position = attention::SinusoidalPosition<T, Dev>;
};

template <class Family, class T, class Dev>
using Classifier = models::Model<models::LinearEncoder<T, Dev, Family::template position>,
                                 typename Family::template backbone<T, Dev>, nn::LayerNorm<T, Dev>,
                                 heads::ClassificationHead<T, Dev>>;

template <class Family, class T, class Dev>
typename Classifier<Family, T, Dev>::Config config() {
  typename Classifier<Family, T, Dev>::Config c;
  c.encoder = {.channels = 1, .dim = D, .mask_channel = false};
  c.backbone.depth = depth;
  auto& b = c.backbone.block;
  if constexpr (std::is_same_v<Family, S4DModel>) {
    b.norm = {.dim = D};
    b.mixer.kernel.H = D;
    b.mixer.kernel.channels = 2;
    b.mixer.kernel.N = state;
  } else {
    b.dim = D;
    b.heads = heads;
    b.ff_hidden = 2 * D;
    b.activation = nn::Activation::gelu;
  }
  c.norm = {.dim = D};
  c.head = {.dim = D, .classes = classes, .pool = nn::PoolMode::mean};
  return c;
}

// The model, its store and AdamW on (T, Dev), initialized as the float host model (init is host-only) and
// rounded to T, and one fixed batch of uniform pixels; run() is one step, with the loss statistics left where
// the loss computed them (nothing is read back on the device).
template <class Family, class T, class Dev>
struct Step {
  using M = Classifier<Family, T, Dev>;
  M model{config<Family, T, Dev>()};
  ParamStore<T, Dev> store;
  train::AdamW<T, Dev> opt;
  Tensor<T, Dev> pixels{Shape{B, L, 1}};
  Tensor<std::int32_t, Dev> labels{Shape{B}};
  models::Inputs<T, Dev> in;
  heads::Targets<T, Dev> targets;
  typename M::Saved saved;
  heads::BatchStats<Dev> stats;

  Step()
      : opt((store.bind(model), store), {.lr = 5e-3, .weight_decay = 0.05, .ssm_lr = 1e-3, .ssm_weight_decay = 0.0}) {
    using HostM = Classifier<Family, float, device::host>;
    HostM host(config<Family, float, device::host>());
    ParamStore<float> host_store;
    host_store.bind(host);
    Rng rng(1, 1);
    host.init(rng);
    train::copy_parameters(host_store, store);
    Tensor<T> p(Shape{B, L, 1});
    Tensor<std::int32_t> y(Shape{B});
    Rng data(2);
    for (index_t i = 0; i < p.numel(); ++i) p[i] = T(float(data.uniform()));
    for (index_t b = 0; b < B; ++b) y[b] = std::int32_t(b % classes);
    put(p, pixels);
    put(y, labels);
    in.values = pixels.view();
    targets.classes = labels.view();
  }
  template <class Ctx>
  void run(Ctx& ctx) {
    opt.zero_grad();
    model.forward(ctx, in, targets, saved, stats);
    model.backward(ctx, saved);
    opt.step();
  }

 private:
  template <class U>
  static void put(const Tensor<U>& h, Tensor<U, Dev>& dst) {
    if constexpr (Dev::is_gpu) {
#if defined(__CUDACC__)
      copy_to_device<U>(h.view(), dst.view());
#endif
    } else {
      std::copy(h.data(), h.data() + h.numel(), dst.data());
    }
  }
};

}  // namespace longseq::bench::step
