// Input encoders of a model: token ids -> embeddings (TokenEncoder) and continuous values -> a linear
// projection with an optional mask-indicator channel (LinearEncoder), each with optional fixed sinusoidal
// positions. One template per encoder for both device policies: the position code is an op with a host
// and a CUDA overload (models/cuda/encoders.cuh).
#pragma once
#include <cmath>
#include <concepts>

#include "../nn/embedding.hpp"
#include "../nn/linear.hpp"
#include "inputs.hpp"

namespace longseq::models {

namespace detail {
// Fixed sinusoidal position code (Vaswani et al.): pe[t, 2i] = sin(t / 10000^(2i/H)), pe[t, 2i+1] = cos(...),
// added to y (B, L, H).
template <class T>
void add_sinusoidal(Context<device::host>&, TensorView<T> y) {
  const index_t b = y.size(0), l = y.size(1), h = y.size(2);
  for (index_t t = 0; t < l; ++t)
    for (index_t i = 0; i < h; ++i) {
      const double freq = std::pow(10000.0, -double(i - i % 2) / double(h));
      const T pe = T(i % 2 == 0 ? std::sin(double(t) * freq) : std::cos(double(t) * freq));
      for (index_t n = 0; n < b; ++n) y.data[(n * l + t) * h + i] += pe;
    }
}
}  // namespace detail
}  // namespace longseq::models

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overload of the position code
#include "cuda/encoders.cuh"
#endif

namespace longseq::models {

// Token ids -> embeddings (+ optional sinusoidal positions). Parameters: "embedding.weight".
template <class T, class D = device::host>
struct TokenEncoder {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t vocab = 0, dim = 0;
    index_t padding_idx = -1;
    bool sinusoidal = false;
  };
  struct Saved {
    typename nn::Embedding<T, D>::Saved emb;
  };
  Config cfg;
  nn::Embedding<T, D> embedding;
  explicit TokenEncoder(Config c) : cfg(c), embedding({c.vocab, c.dim, c.padding_idx, 1.0}) {}
  index_t dim() const { return cfg.dim; }
  template <class F>
  void parameters(F&& f) { embedding.parameters(prefixed("embedding", f)); }
  void init(Rng& rng) { embedding.init(rng); }
  void forward(Context<D>& ctx, const Inputs<T, D>& in, TensorView<T, D> y, Saved& s) {
    LONGSEQ_CHECK(in.ids.data != nullptr, "TokenEncoder: the batch has no token ids (Inputs::ids is empty)");
    embedding.forward(ctx, in.ids, y, s.emb);
    if (cfg.sinusoidal) detail::add_sinusoidal<T>(ctx, y);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy) { embedding.backward(ctx, s.emb, dy); }
};

// Continuous inputs (B, L, C) -> Linear(C [+ 1 mask channel], H) (+ optional sinusoidal positions).
// With mask_channel the input must already be [value * (1 - m), m] (C + 1 channels); fine-tuning drops
// that last weight column (train::transfer). Parameters: "linear.weight", "linear.bias".
template <class T, class D = device::host>
struct LinearEncoder {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t channels = 1, dim = 0;
    bool mask_channel = false;
    bool sinusoidal = false;
  };
  struct Saved {
    typename nn::Linear<T, D>::Saved lin;
  };
  Config cfg;
  nn::Linear<T, D> linear;
  explicit LinearEncoder(Config c) : cfg(c), linear({c.channels + (c.mask_channel ? 1 : 0), c.dim, true}) {}
  index_t dim() const { return cfg.dim; }
  index_t in_features() const { return cfg.channels + (cfg.mask_channel ? 1 : 0); }
  template <class F>
  void parameters(F&& f) { linear.parameters(prefixed("linear", f)); }
  void init(Rng& rng) { linear.init(rng); }
  void forward(Context<D>& ctx, const Inputs<T, D>& in, TensorView<T, D> y, Saved& s) {
    LONGSEQ_CHECK(in.values.data != nullptr, "LinearEncoder: the batch has no values (Inputs::values is empty)");
    LONGSEQ_CHECK(in.values.rank() == 3 && in.values.size(2) == in_features(), "LinearEncoder: tensor 'values' has shape ",
                  in.values.shape, ", expected (B, L, ", in_features(), ")",
                  cfg.mask_channel ? " including the mask-indicator channel" : "");
    linear.forward(ctx, in.values, y, s.lin);
    if (cfg.sinusoidal) detail::add_sinusoidal<T>(ctx, y);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy) {
    linear.backward(ctx, s.lin, dy, TensorView<T, D>(nullptr, Shape{0}));  // the input needs no gradient
  }
};

// What Model needs of an encoder: the layer pieces, a forward from Inputs and a backward without dx.
template <class E, class T, class D>
concept Encoder = nn::HasSavedType<E> && nn::HasParameterWalk<E, T, D> && nn::HasInit<E> &&
                  requires(E& e, Context<D>& ctx, const Inputs<T, D>& in, TensorView<T, D> y,
                           TensorView<const T, D> dy, typename E::Saved& s) {
                    { e.dim() } -> std::convertible_to<index_t>;
                    e.forward(ctx, in, y, s);
                    e.backward(ctx, s, dy);
                  };

}  // namespace longseq::models
