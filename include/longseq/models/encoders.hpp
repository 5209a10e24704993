// Input encoders of a model: token ids -> embeddings (TokenEncoder) and continuous values -> a linear
// projection with an optional mask-indicator channel (LinearEncoder), each with optional positions: the fixed
// sinusoidal code or a learned table (attention::LearnedPosition). One template per encoder for both device
// policies: the position code is an op with a host and a CUDA overload (models/cuda/encoders.cuh).
#pragma once
#include <cmath>
#include <concepts>
#include <optional>

#include "../attention/position.hpp"
#include "../nn/embedding.hpp"
#include "../nn/linear.hpp"
#include "inputs.hpp"

namespace longseq::models {

namespace detail {
// Fixed sinusoidal positions added to y (B, L, H) in place by the attention folder's layer (one formula for
// the library; each element is read and written by the same iteration, so aliasing x and y is safe).
template <class T>
void add_sinusoidal(Context<device::host>& ctx, TensorView<T> y) {
  if (y.empty()) return;
  attention::SinusoidalPosition<T> pos({.dim = y.size(2), .max_len = y.size(1)});
  typename attention::SinusoidalPosition<T>::Saved none;
  pos.forward(ctx, TensorView<const T>(y), y, none);
}
// The encoders' learned position table, present when `learned_positions` > 0 (the longest sequence it
// covers); sinusoidal and learned positions exclude each other.
template <class T, class D>
std::optional<attention::LearnedPosition<T, D>> learned_position(index_t dim, bool sinusoidal,
                                                                 index_t learned_positions, const char* who) {
  LONGSEQ_CHECK(learned_positions >= 0, who, ": learned_positions = ", learned_positions, ", expected >= 0");
  LONGSEQ_CHECK(!(sinusoidal && learned_positions > 0), who, ": sinusoidal = true and learned_positions = ",
                learned_positions, ": choose one position scheme");
  if (learned_positions == 0) return std::nullopt;
  return attention::LearnedPosition<T, D>({.dim = dim, .max_len = learned_positions});
}
}  // namespace detail
}  // namespace longseq::models

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overload of the position code
#include "cuda/encoders.cuh"
#endif

namespace longseq::models {

// Token ids -> embeddings (+ optional sinusoidal or learned positions). Parameters: "embedding.weight",
// and "position.weight" (learned_positions, dim) with learned positions.
template <class T, class D = device::host>
struct TokenEncoder {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t vocab = 0, dim = 0;
    index_t padding_idx = -1;
    bool sinusoidal = false;
    index_t learned_positions = 0;  // > 0: a learned position table for sequences up to this length
  };
  struct Saved {
    typename nn::Embedding<T, D>::Saved emb;
    typename attention::LearnedPosition<T, D>::Saved pos;
  };
  Config cfg;
  nn::Embedding<T, D> embedding;
  std::optional<attention::LearnedPosition<T, D>> position;
  explicit TokenEncoder(Config c)
      : cfg(c),
        embedding({c.vocab, c.dim, c.padding_idx, 1.0}),
        position(detail::learned_position<T, D>(c.dim, c.sinusoidal, c.learned_positions, "TokenEncoder")) {}
  index_t dim() const { return cfg.dim; }
  template <class F>
  void parameters(F&& f) {
    embedding.parameters(prefixed("embedding", f));
    if (position) position->parameters(prefixed("position", f));
  }
  // The table draws from a stream of its own, so the embedding is the same with or without it.
  void init(Rng& rng) {
    embedding.init(rng);
    if (position) {
      Rng pr = rng.fork(17);
      position->init(pr);
    }
  }
  void forward(Context<D>& ctx, const Inputs<T, D>& in, TensorView<T, D> y, Saved& s) {
    LONGSEQ_CHECK(in.ids.data != nullptr, "TokenEncoder: the batch has no token ids (Inputs::ids is empty)");
    embedding.forward(ctx, in.ids, y, s.emb);
    if (cfg.sinusoidal) detail::add_sinusoidal<T>(ctx, y);
    if (position) position->forward(ctx, y, y, s.pos);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy) {
    embedding.backward(ctx, s.emb, dy);
    if (position) position->accumulate_grad(ctx, s.pos, dy);
  }
};

// Continuous inputs (B, L, C) -> Linear(C [+ 1 mask channel], H) (+ optional sinusoidal or learned positions).
// With mask_channel the input must already be [value * (1 - m), m] (C + 1 channels); fine-tuning drops
// that last weight column (train::transfer). Parameters: "linear.weight", "linear.bias", and
// "position.weight" (learned_positions, dim) with learned positions.
template <class T, class D = device::host>
struct LinearEncoder {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t channels = 1, dim = 0;
    bool mask_channel = false;
    bool sinusoidal = false;
    index_t learned_positions = 0;  // > 0: a learned position table for sequences up to this length
  };
  struct Saved {
    typename nn::Linear<T, D>::Saved lin;
    typename attention::LearnedPosition<T, D>::Saved pos;
  };
  Config cfg;
  nn::Linear<T, D> linear;
  std::optional<attention::LearnedPosition<T, D>> position;
  explicit LinearEncoder(Config c)
      : cfg(c),
        linear({c.channels + (c.mask_channel ? 1 : 0), c.dim, true}),
        position(detail::learned_position<T, D>(c.dim, c.sinusoidal, c.learned_positions, "LinearEncoder")) {}
  index_t dim() const { return cfg.dim; }
  index_t in_features() const { return cfg.channels + (cfg.mask_channel ? 1 : 0); }
  template <class F>
  void parameters(F&& f) {
    linear.parameters(prefixed("linear", f));
    if (position) position->parameters(prefixed("position", f));
  }
  // The table draws from a stream of its own, so the projection is the same with or without it.
  void init(Rng& rng) {
    linear.init(rng);
    if (position) {
      Rng pr = rng.fork(17);
      position->init(pr);
    }
  }
  void forward(Context<D>& ctx, const Inputs<T, D>& in, TensorView<T, D> y, Saved& s) {
    LONGSEQ_CHECK(in.values.data != nullptr, "LinearEncoder: the batch has no values (Inputs::values is empty)");
    LONGSEQ_CHECK(in.values.rank() == 3 && in.values.size(2) == in_features(), "LinearEncoder: tensor 'values' has shape ",
                  in.values.shape, ", expected (B, L, ", in_features(), ")",
                  cfg.mask_channel ? " including the mask-indicator channel" : "");
    linear.forward(ctx, in.values, y, s.lin);
    if (cfg.sinusoidal) detail::add_sinusoidal<T>(ctx, y);
    if (position) position->forward(ctx, y, y, s.pos);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy) {
    linear.backward(ctx, s.lin, dy, TensorView<T, D>(nullptr, Shape{0}));  // the input needs no gradient
    if (position) position->accumulate_grad(ctx, s.pos, dy);
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
