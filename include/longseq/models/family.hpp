// models::Family<T, D>: the dtype and device policy written once per model. Its members name the layers,
// encoders and heads for that pair, so a model switches from host to GPU (or float to double) by changing
// the Family and nothing else:
//   using F = models::Family<float, device::cuda>;
//   using Block = nn::PreNormResidual<F::LayerNorm, F::FeedForward>;
//   using Net = F::Model<F::LinearEncoder, nn::Stack<Block>, F::ClassificationHead>;
// The encoders' positions are their third argument: F::LinearEncoderWith<attention::LearnedPosition>, or
// AnyPositionLinearEncoder<T, D> where the scheme is chosen at run time (the trainers' --position).
#pragma once
#include "../heads/classification.hpp"
#include "../heads/denoising.hpp"
#include "../heads/retrieval.hpp"
#include "../nn/embedding.hpp"
#include "../nn/feed_forward.hpp"
#include "../nn/linear.hpp"
#include "../nn/norm_layers.hpp"
#include "../nn/pooling.hpp"
#include "../nn/runtime_norm.hpp"
#include "encoders.hpp"
#include "model.hpp"

namespace longseq::models {

// The encoders with the position scheme chosen at run time (attention::AnyPosition): the trainers' --position.
template <class T, class D = device::host>
using AnyPositionTokenEncoder = TokenEncoder<T, D, attention::AnyPosition>;
template <class T, class D = device::host>
using AnyPositionLinearEncoder = LinearEncoder<T, D, attention::AnyPosition>;

template <class T, class D = device::host>
struct Family {
  using value_type = T;
  using device_type = D;

  // Any layer template of the <T, D> shape, e.g. F::Of<attention::MultiHeadAttention-like templates>.
  template <template <class, class> class L>
  using Of = L<T, D>;

  using Linear = nn::Linear<T, D>;
  using LayerNorm = nn::LayerNorm<T, D>;
  using RMSNorm = nn::RMSNorm<T, D>;
  using RuntimeNorm = nn::RuntimeNorm<T, D>;
  using FeedForward = nn::FeedForward<T, D>;
  using Embedding = nn::Embedding<T, D>;
  using Pool = nn::Pool<T, D>;

  // Without positions; ...With<attention::SinusoidalPosition> (or LearnedPosition, AnyPosition) adds them.
  using TokenEncoder = models::TokenEncoder<T, D>;
  using LinearEncoder = models::LinearEncoder<T, D>;
  template <template <class, class> class Position>
  using TokenEncoderWith = models::TokenEncoder<T, D, Position>;
  template <template <class, class> class Position>
  using LinearEncoderWith = models::LinearEncoder<T, D, Position>;
  using AnyPositionTokenEncoder = models::AnyPositionTokenEncoder<T, D>;
  using AnyPositionLinearEncoder = models::AnyPositionLinearEncoder<T, D>;

  using ClassificationHead = heads::ClassificationHead<T, D>;
  using RegressionHead = heads::RegressionHead<T, D>;
  using RetrievalHead = heads::RetrievalHead<T, D>;
  using MaskedDenoisingHead = heads::MaskedDenoisingHead<T, D>;
  using CausalLMHead = heads::CausalLMHead<T, D>;

  using Inputs = models::Inputs<T, D>;
  using Targets = heads::Targets<T, D>;

  // The final norm defaults to the family's LayerNorm.
  template <class Encoder, class Backbone, class Head, class Norm = LayerNorm>
  using Model = models::Model<Encoder, Backbone, Norm, Head>;
};

}  // namespace longseq::models
