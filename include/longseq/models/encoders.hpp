// Input encoders of a model: token ids -> embeddings (TokenEncoder) and continuous values -> a linear
// projection with an optional mask-indicator channel (LinearEncoder). Each adds positions through its Position
// slot, an attention::AbsolutePosition policy: NoPosition (the default), SinusoidalPosition, LearnedPosition, or
// AnyPosition when the scheme is chosen at run time. One template per encoder for both device policies.
#pragma once
#include <concepts>

#include "../attention/position.hpp"
#include "../nn/embedding.hpp"
#include "../nn/linear.hpp"
#include "inputs.hpp"

namespace longseq::models {

// Token ids -> embeddings + positions. Parameters: "embedding.weight", and the policy's under "position."
// ("position.weight", (max_len, dim), with LearnedPosition).
template <class T, class D = device::host, template <class, class> class Position = attention::NoPosition>
struct TokenEncoder {
  static_assert(attention::AbsolutePosition<Position<T, D>, T, D>,
                "TokenEncoder<T, D, Position>: Position<T, D> is not an attention::AbsolutePosition (a layer built "
                "from its Config, with accumulate_grad); use attention::NoPosition, SinusoidalPosition, "
                "LearnedPosition or AnyPosition");
  using value_type = T;
  using device_type = D;
  using position_type = Position<T, D>;
  struct Config {
    index_t vocab = 0, dim = 0;
    index_t padding_idx = -1;
    typename position_type::Config position{};  // its dim may stay 0: the encoder's
  };
  struct Saved {
    typename nn::Embedding<T, D>::Saved emb;
    typename position_type::Saved pos;
  };
  Config cfg;
  nn::Embedding<T, D> embedding;
  position_type position;
  explicit TokenEncoder(Config c)
      : cfg(c),
        embedding({c.vocab, c.dim, c.padding_idx, 1.0}),
        position(attention::with_dim(c.position, c.dim, "TokenEncoder")) {}
  index_t dim() const { return cfg.dim; }
  template <class F>
  void parameters(F&& f) {
    embedding.parameters(prefixed("embedding", f));
    position.parameters(prefixed("position", f));
  }
  // The positions draw from a stream of their own, so the embedding is the same whatever the scheme.
  void init(Rng& rng) {
    embedding.init(rng);
    Rng pr = rng.fork(17);
    position.init(pr);
  }
  void forward(Context<D>& ctx, const Inputs<T, D>& in, TensorView<T, D> y, Saved& s) {
    LONGSEQ_CHECK(in.ids.data != nullptr, "TokenEncoder: the batch has no token ids (Inputs::ids is empty)");
    embedding.forward(ctx, in.ids, y, s.emb);
    position.forward(ctx, y, y, s.pos);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy) {
    embedding.backward(ctx, s.emb, dy);
    position.accumulate_grad(ctx, s.pos, dy);
  }
};

// Continuous inputs (B, L, C) -> Linear(C [+ 1 mask channel], H) + positions. With mask_channel the input must
// already be [value * (1 - m), m] (C + 1 channels); fine-tuning drops that last weight column
// (train::transfer). Parameters: "linear.weight", "linear.bias", and the policy's under "position.".
template <class T, class D = device::host, template <class, class> class Position = attention::NoPosition>
struct LinearEncoder {
  static_assert(attention::AbsolutePosition<Position<T, D>, T, D>,
                "LinearEncoder<T, D, Position>: Position<T, D> is not an attention::AbsolutePosition (a layer built "
                "from its Config, with accumulate_grad); use attention::NoPosition, SinusoidalPosition, "
                "LearnedPosition or AnyPosition");
  using value_type = T;
  using device_type = D;
  using position_type = Position<T, D>;
  struct Config {
    index_t channels = 1, dim = 0;
    bool mask_channel = false;
    typename position_type::Config position{};  // its dim may stay 0: the encoder's
  };
  struct Saved {
    typename nn::Linear<T, D>::Saved lin;
    typename position_type::Saved pos;
  };
  Config cfg;
  nn::Linear<T, D> linear;
  position_type position;
  explicit LinearEncoder(Config c)
      : cfg(c),
        linear({c.channels + (c.mask_channel ? 1 : 0), c.dim, true}),
        position(attention::with_dim(c.position, c.dim, "LinearEncoder")) {}
  index_t dim() const { return cfg.dim; }
  index_t in_features() const { return cfg.channels + (cfg.mask_channel ? 1 : 0); }
  template <class F>
  void parameters(F&& f) {
    linear.parameters(prefixed("linear", f));
    position.parameters(prefixed("position", f));
  }
  // The positions draw from a stream of their own, so the projection is the same whatever the scheme.
  void init(Rng& rng) {
    linear.init(rng);
    Rng pr = rng.fork(17);
    position.init(pr);
  }
  void forward(Context<D>& ctx, const Inputs<T, D>& in, TensorView<T, D> y, Saved& s) {
    LONGSEQ_CHECK(in.values.data != nullptr, "LinearEncoder: the batch has no values (Inputs::values is empty)");
    LONGSEQ_CHECK(in.values.rank() == 3 && in.values.size(2) == in_features(), "LinearEncoder: tensor 'values' has shape ",
                  in.values.shape, ", expected (B, L, ", in_features(), ")",
                  cfg.mask_channel ? " including the mask-indicator channel" : "");
    linear.forward(ctx, in.values, y, s.lin);
    position.forward(ctx, y, y, s.pos);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy) {
    linear.backward(ctx, s.lin, dy, TensorView<T, D>(nullptr, Shape{0}));  // the input needs no gradient
    position.accumulate_grad(ctx, s.pos, dy);
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
