// A tiny deterministic classification task and model for the trainer tests.
#pragma once
#include <cstdint>
#include <vector>

#include <longseq/heads/classification.hpp>
#include <longseq/heads/denoising.hpp>
#include <longseq/nn/feed_forward.hpp>
#include <longseq/models/model.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/train/fit.hpp>

namespace longseq::testing {

template <class T>
using ToyBlock = nn::PreNormResidual<nn::LayerNorm<T>, nn::FeedForward<T>>;
template <class T, class Head>
using ToyNet = models::Model<models::LinearEncoder<T>, nn::Stack<ToyBlock<T>>, nn::LayerNorm<T>, Head>;

template <class T, class Head>
typename ToyNet<T, Head>::Config toy_config(index_t h, typename Head::Config head, bool mask_channel = false) {
  return {{.channels = 1, .dim = h, .mask_channel = mask_channel},
          {.depth = 2, .block = {{.dim = h}, {.dim = h, .expand = 2}, 0.1}},
          {.dim = h},
          head};
}

// Sequences of length L whose label says whether their mean is positive; batches reshuffled per epoch
// from (seed, epoch) only, so a resumed run sees the same data.
template <class T>
struct ToyTask {
  index_t n_train = 48, n_val = 16, n_test = 16, batch = 8, length = 6;
  std::uint64_t seed = 1;
  bool pretrain = false;  // masked denoising inputs [value * (1 - m), m] with L1 targets
  std::vector<T> x;
  std::vector<std::int32_t> y;
  Tensor<T> values, raw;
  Tensor<std::int32_t> labels;
  Tensor<std::uint8_t> mask;
  index_t rows = 0;
  double poison_at = -1;  // when >= 0: training batch with this index in epoch 0 gets a NaN input

  ToyTask() {
    Rng rng(seed, 99);
    const index_t n = n_train + n_val + n_test;
    x.resize(std::size_t(n * length));
    y.resize(std::size_t(n));
    for (index_t i = 0; i < n; ++i) {
      double s = 0;
      for (index_t t = 0; t < length; ++t) s += double(x[std::size_t(i * length + t)] = T(rng.normal()));
      y[std::size_t(i)] = s > 0 ? 1 : 0;
    }
  }
  index_t base(train::Split s) const {
    return s == train::Split::train ? 0 : s == train::Split::val ? n_train : n_train + n_val;
  }
  index_t count(train::Split s) const {
    return s == train::Split::train ? n_train : s == train::Split::val ? n_val : n_test;
  }
  index_t num_batches(train::Split s, index_t) const { return count(s) / batch; }
  void load(train::Split s, index_t epoch, index_t i) {
    const index_t c = in_features();
    values.resize(Shape{batch, length, c});
    raw.resize(Shape{batch, length});
    labels.resize(Shape{batch});
    mask.resize(Shape{batch, length});
    std::vector<index_t> order(std::size_t(count(s)));
    for (index_t k = 0; k < count(s); ++k) order[std::size_t(k)] = k;
    if (s == train::Split::train) {  // Fisher-Yates keyed by (seed, epoch)
      Rng r(seed, 1000 + std::uint64_t(epoch));
      for (index_t k = count(s) - 1; k > 0; --k) std::swap(order[std::size_t(k)], order[r.below(std::uint64_t(k + 1))]);
    }
    for (index_t b = 0; b < batch; ++b) {
      const index_t ex = base(s) + order[std::size_t(i * batch + b)];
      labels[b] = y[std::size_t(ex)];
      Rng mr(seed, 5000 + std::uint64_t(ex) * 131 + std::uint64_t(s == train::Split::train ? epoch : 0));
      for (index_t t = 0; t < length; ++t) {
        const T v = x[std::size_t(ex * length + t)];
        raw(b, t) = v;
        const bool m = pretrain && mr.uniform() < 0.5;
        mask(b, t) = m ? 1 : 0;
        values(b, t, 0) = m ? T(0) : v;
        if (pretrain) values(b, t, 1) = T(m ? 1 : 0);
      }
    }
    if (s == train::Split::train && epoch == 0 && double(i) == poison_at) values[0] = T(NAN);
  }
  index_t in_features() const { return pretrain ? 2 : 1; }
  models::Inputs<T> inputs() const { return {{}, values.view(), {}}; }
  heads::Targets<T> targets() const { return {labels.view(), raw.view(), mask.view(), {}}; }
  index_t tokens() const { return batch * length; }
};

// A model with its parameter store and optimizer, initialized from seed 42, and a quiet two-epoch fit on
// the ToyTask (2 micro-batches per update, clipping, dropout seed 7): for comparing models update by update.
template <class Net>
struct Trained {
  Net net;
  ParamStore<float> store;
  train::AdamW<float> opt;
  template <class C>
  explicit Trained(C cfg) : net(cfg), opt((store.bind(net), store), {.lr = 3e-3, .weight_decay = 0.01}) {
    Rng rng(42);
    net.init(rng);
  }
  train::FitResult fit() {
    ToyTask<float> task;
    train::FitConfig c;
    c.progress = false;
    c.epochs = 2;
    c.accum = 2;
    c.clip = 1.0;
    c.seed = 7;
    return train::fit(net, store, opt, train::Schedule{}, task, c);
  }
  std::vector<float> params() {
    auto v = store.values();
    return std::vector<float>(v.data, v.data + v.numel());
  }
};

}  // namespace longseq::testing
