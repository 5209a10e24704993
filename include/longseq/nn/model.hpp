// nn::Model: input encoder (token embedding, or a linear encoder for continuous inputs with an optional
// mask-indicator channel) -> backbone (e.g. a Stack of residual blocks) -> final norm -> head. The whole
// model is one type the user names in their translation unit, e.g.
//   using Net = nn::Model<nn::LinearEncoder<float>, nn::Stack<Block>, nn::LayerNorm<float>,
//                         heads::ClassificationHead<float>>;
#pragma once
#include <cmath>
#include <cstdint>

#include "../heads/head.hpp"
#include "embedding.hpp"
#include "linear.hpp"

namespace longseq::nn {

// What a batch feeds the encoder: token ids or continuous values, plus lengths of padded sequences.
template <class T>
struct Inputs {
  TensorView<const std::int32_t> ids;      // (B, L) for token encoders
  TensorView<const T> values;              // (B, L, C) for linear encoders
  TensorView<const std::int32_t> lengths;  // (B) valid lengths; empty: all L
  index_t batch() const { return lead(0); }
  index_t length() const { return lead(1); }

 private:
  index_t lead(int d) const {
    LONGSEQ_CHECK(ids.data || values.data, "Inputs: the batch has neither token ids nor values");
    const Shape& s = ids.data ? ids.shape : values.shape;
    LONGSEQ_CHECK(s.rank >= 2, "Inputs: tensor '", ids.data ? "ids" : "values", "' has shape ", s,
                  ", expected (B, L", ids.data ? ")" : ", C)");
    return s.dims[d];
  }
};

namespace detail {
// Fixed sinusoidal position code (Vaswani et al.): pe[t, 2i] = sin(t / 10000^(2i/H)), pe[t, 2i+1] = cos(...).
template <class T>
void add_sinusoidal(TensorView<T> y) {
  const index_t b = y.size(0), l = y.size(1), h = y.size(2);
  for (index_t t = 0; t < l; ++t)
    for (index_t i = 0; i < h; ++i) {
      const double freq = std::pow(10000.0, -double(i - i % 2) / double(h));
      const T pe = T(i % 2 == 0 ? std::sin(double(t) * freq) : std::cos(double(t) * freq));
      for (index_t n = 0; n < b; ++n) y.data[(n * l + t) * h + i] += pe;
    }
}
}  // namespace detail

// Token ids -> embeddings (+ optional sinusoidal positions). Parameters: "embedding.weight".
template <class T>
struct TokenEncoder {
  using value_type = T;
  struct Config {
    index_t vocab = 0, dim = 0;
    index_t padding_idx = -1;
    bool sinusoidal = false;
  };
  struct Saved {
    typename Embedding<T>::Saved emb;
  };
  Config cfg;
  Embedding<T> embedding;
  explicit TokenEncoder(Config c) : cfg(c), embedding({c.vocab, c.dim, c.padding_idx, 1.0}) {}
  index_t dim() const { return cfg.dim; }
  template <class F>
  void parameters(F&& f) { embedding.parameters(prefixed("embedding", f)); }
  void init(Rng& rng) { embedding.init(rng); }
  void forward(HostContext& ctx, const Inputs<T>& in, TensorView<T> y, Saved& s) {
    LONGSEQ_CHECK(in.ids.data != nullptr, "TokenEncoder: the batch has no token ids (Inputs::ids is empty)");
    embedding.forward(ctx, in.ids, y, s.emb);
    if (cfg.sinusoidal) detail::add_sinusoidal(y);
  }
  void backward(HostContext& ctx, Saved& s, TensorView<const T> dy) { embedding.backward(ctx, s.emb, dy); }
};

// Continuous inputs (B, L, C) -> Linear(C [+ 1 mask channel], H) (+ optional sinusoidal positions).
// With mask_channel the input must already be [value * (1 - m), m] (C + 1 channels); fine-tuning drops
// that last weight column (train::transfer). Parameters: "linear.weight", "linear.bias".
template <class T>
struct LinearEncoder {
  using value_type = T;
  struct Config {
    index_t channels = 1, dim = 0;
    bool mask_channel = false;
    bool sinusoidal = false;
  };
  struct Saved {
    typename Linear<T>::Saved lin;
  };
  Config cfg;
  Linear<T> linear;
  explicit LinearEncoder(Config c) : cfg(c), linear({c.channels + (c.mask_channel ? 1 : 0), c.dim, true}) {}
  index_t dim() const { return cfg.dim; }
  index_t in_features() const { return cfg.channels + (cfg.mask_channel ? 1 : 0); }
  template <class F>
  void parameters(F&& f) { linear.parameters(prefixed("linear", f)); }
  void init(Rng& rng) { linear.init(rng); }
  void forward(HostContext& ctx, const Inputs<T>& in, TensorView<T> y, Saved& s) {
    LONGSEQ_CHECK(in.values.data != nullptr, "LinearEncoder: the batch has no values (Inputs::values is empty)");
    LONGSEQ_CHECK(in.values.rank() == 3 && in.values.size(2) == in_features(), "LinearEncoder: tensor 'values' has shape ",
                  in.values.shape, ", expected (B, L, ", in_features(), ")",
                  cfg.mask_channel ? " including the mask-indicator channel" : "");
    linear.forward(ctx, in.values, y, s.lin);
    if (cfg.sinusoidal) detail::add_sinusoidal(y);
  }
  void backward(HostContext& ctx, Saved& s, TensorView<const T> dy) {
    linear.backward(ctx, s.lin, dy, TensorView<T>(nullptr, Shape{0}));  // the input needs no gradient
  }
};

template <class Encoder, class Backbone, class Norm, class Head>
struct Model {
  using T = typename Encoder::value_type;
  using value_type = T;
  static_assert(Layer<Backbone, T, device::host>, "Model: the backbone must satisfy nn::Layer (see nn/layer.hpp)");
  static_assert(Layer<Norm, T, device::host>, "Model: the final norm must satisfy nn::Layer");
  static_assert(heads::Head<Head, T>, "Model: the head must satisfy heads::Head (see heads/head.hpp)");
  using encoder_type = Encoder;
  using backbone_type = Backbone;
  using head_type = Head;

  struct Config {
    typename Encoder::Config encoder;
    typename Backbone::Config backbone;
    typename Norm::Config norm;
    typename Head::Config head;
  };
  struct Saved {
    typename Encoder::Saved enc;
    typename Backbone::Saved backbone;
    typename Norm::Saved norm;
    typename Head::Saved head;
    Tensor<T> h0, h1, h2, g0, g1;  // activations and gradients between the stages
  };

  Config cfg;
  Encoder encoder;
  Backbone backbone;
  Norm norm;
  Head head;

  explicit Model(Config c) : cfg(c), encoder(c.encoder), backbone(c.backbone), norm(c.norm), head(c.head) {}

  // Names: encoder.*, backbone.*, norm.*, head.* (transfer drops "head." and keeps the rest).
  template <class F>
  void parameters(F&& f) {
    encoder.parameters(prefixed("encoder", f));
    backbone.parameters(prefixed("backbone", f));
    norm.parameters(prefixed("norm", f));
    head.parameters(prefixed("head", f));
  }
  void init(Rng& rng) {
    encoder.init(rng);
    backbone.init(rng);
    norm.init(rng);
    head.init(rng);
  }

  // Backbone features (B, L, H) after the final norm, for callers that want them (e.g. predictions).
  TensorView<const T> features(HostContext& ctx, const Inputs<T>& in, Saved& s) {
    const index_t b = in.batch(), l = in.length(), h = encoder.dim();
    s.h0.resize(Shape{b, l, h});
    s.h1.resize(Shape{b, l, h});
    s.h2.resize(Shape{b, l, h});
    encoder.forward(ctx, in, s.h0.view(), s.enc);
    backbone.forward(ctx, s.h0.view(), s.h1.view(), s.backbone);
    norm.forward(ctx, s.h1.view(), s.h2.view(), s.norm);
    return s.h2.view();
  }
  heads::LossStats forward(HostContext& ctx, const Inputs<T>& in, const heads::Targets<T>& t, Saved& s) {
    auto f = features(ctx, in, s);
    heads::Targets<T> tt = t;
    if (!tt.lengths.data) tt.lengths = in.lengths;
    return head.forward(ctx, f, tt, s.head);
  }
  // Accumulates d(scale * loss)/d parameters into the bound gradient buffers.
  void backward(HostContext& ctx, Saved& s, double scale = 1.0) {
    backward(ctx, s, scale, [](auto&) {});
  }
  // The same, calling done(part) right after the backward of each part, in backward order: head, norm,
  // each backbone block from the top (the whole backbone when it is not a Stack), encoder. Parameters
  // are laid out in parameters() order (encoder first), so when done(part) runs, every gradient from
  // the part's first parameter to the end of the flat buffer is final; train::fit starts the all-reduce
  // of those gradient buckets there, while the rest of the backward runs.
  template <class F>
  void backward(HostContext& ctx, Saved& s, double scale, F&& done) {
    s.g0.resize(s.h2.shape());
    s.g1.resize(s.h2.shape());
    head.backward(ctx, s.head, s.g0.view(), scale);
    done(head);
    norm.backward(ctx, s.norm, s.g0.view(), s.g1.view());
    done(norm);
    if constexpr (requires { backbone.backward(ctx, s.backbone, s.g1.view(), s.g0.view(), done); }) {
      backbone.backward(ctx, s.backbone, s.g1.view(), s.g0.view(), done);
    } else {
      backbone.backward(ctx, s.backbone, s.g1.view(), s.g0.view());
      done(backbone);
    }
    encoder.backward(ctx, s.enc, s.g0.view());
    done(encoder);
  }
};

}  // namespace longseq::nn
