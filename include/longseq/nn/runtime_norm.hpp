// nn::RuntimeNorm: a LayerNorm, a BatchNorm or no normalization, chosen at run time. For trainers whose
// recipes name the normalization (the paper's S4 recipes use BatchNorm, its Transformer and DLR recipes
// LayerNorm; post-norm S4 models have no final norm) without a model type per choice. Its parameters
// are those of the chosen norm under the same names, so checkpoints match LayerNorm / BatchNorm models.
#pragma once
#include <string_view>

#include "batch_norm.hpp"
#include "norm_layers.hpp"

namespace longseq::nn {

enum class NormKind { layer, batch, none };

inline NormKind norm_kind(std::string_view name) {
  if (name == "layer") return NormKind::layer;
  if (name == "batch") return NormKind::batch;
  if (name == "none") return NormKind::none;
  LONGSEQ_FAIL("unknown normalization '", name, "': expected layer, batch or none");
}

template <class T, class D = device::host>
struct RuntimeNorm {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t dim = 0;
    NormKind kind = NormKind::layer;
    double eps = 1e-5;
    double momentum = 0.1;  // BatchNorm's running statistics
  };
  struct Saved {
    typename LayerNorm<T, D>::Saved layer;
    typename BatchNorm<T, D>::Saved batch;
  };

  Config cfg;
  LayerNorm<T, D> layer;
  BatchNorm<T, D> batch;  // both exist; only the chosen one declares parameters, the other stays unbound

  explicit RuntimeNorm(Config c)
      : cfg(c), layer({.dim = c.dim, .eps = c.eps}), batch({.dim = c.dim, .eps = c.eps, .momentum = c.momentum}) {}

  template <class F>
  void parameters(F&& f) {
    if (cfg.kind == NormKind::layer) layer.parameters(f);
    if (cfg.kind == NormKind::batch) batch.parameters(f);
  }
  void init(Rng& rng) {
    if (cfg.kind == NormKind::layer) layer.init(rng);
    if (cfg.kind == NormKind::batch) batch.init(rng);
  }
  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    switch (cfg.kind) {
      case NormKind::layer: return layer.forward(ctx, x, y, s.layer);
      case NormKind::batch: return batch.forward(ctx, x, y, s.batch);
      case NormKind::none:
        expect_shape(y, x.shape, "y");
        return ops::copy<T, T>(ctx, x, y);
    }
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    switch (cfg.kind) {
      case NormKind::layer: return layer.backward(ctx, s.layer, dy, dx);
      case NormKind::batch: return batch.backward(ctx, s.batch, dy, dx);
      case NormKind::none:
        expect_shape(dx, dy.shape, "dx");
        return ops::copy<T, T>(ctx, dy, dx);
    }
  }
};

static_assert(assert_layer<RuntimeNorm<float>, float>());

}  // namespace longseq::nn
