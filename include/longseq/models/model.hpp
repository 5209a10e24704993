// models::Model: input encoder (token embedding, or a linear encoder for continuous inputs with an optional
// mask-indicator channel) -> backbone (e.g. a Stack of residual blocks) -> final norm -> head. The whole
// model is one type the user names in their translation unit; its dtype T and device policy D are those of
// its parts (all of which must agree), e.g.
//   using F = models::Family<float, device::cuda>;
//   using Net = F::Model<F::LinearEncoder, nn::Stack<Block>, F::ClassificationHead>;
#pragma once
#include <concepts>
#include <type_traits>

#include "../heads/head.hpp"
#include "encoders.hpp"
#include "inputs.hpp"

namespace longseq::models {

namespace detail {
// A part's dtype and device; a part that does not declare them (a user's layer) is taken to agree.
template <class P, class T>
struct part_value { using type = T; };
template <class P, class T>
  requires requires { typename P::value_type; }
struct part_value<P, T> { using type = typename P::value_type; };
template <class P, class D>
struct part_device { using type = D; };
template <class P, class D>
  requires requires { typename P::device_type; }
struct part_device<P, D> { using type = typename P::device_type; };

template <class P, class T, class D>
inline constexpr bool same_value = std::same_as<typename part_value<P, T>::type, T>;
template <class P, class T, class D>
inline constexpr bool gpu_part = part_device<P, D>::type::is_gpu;
}  // namespace detail

// Whether the backbone, final norm and head have the encoder's dtype and device (what Model checks first).
template <class Encoder, class Backbone, class Norm, class Head>
inline constexpr bool parts_agree = [] {
  using T = typename Encoder::value_type;
  using D = typename detail::part_device<Encoder, device::host>::type;
  return detail::same_value<Backbone, T, D> && detail::same_value<Norm, T, D> && detail::same_value<Head, T, D> &&
         detail::gpu_part<Backbone, T, D> == D::is_gpu && detail::gpu_part<Norm, T, D> == D::is_gpu &&
         detail::gpu_part<Head, T, D> == D::is_gpu;
}();

template <class Encoder, class Backbone, class Norm, class Head>
struct Model {
  using T = typename Encoder::value_type;
  using D = typename detail::part_device<Encoder, device::host>::type;
  using value_type = T;
  using device_type = D;

  // Each part's device and dtype against the encoder's, by name (device::host and device::cuda differ in
  // is_gpu), before the contracts: a mismatched part fails here and nowhere else.
  static constexpr bool cuda = D::is_gpu;
  static_assert(!cuda || detail::gpu_part<Backbone, T, D>, "Model: the backbone's device is host but the encoder's is cuda");
  static_assert(cuda || !detail::gpu_part<Backbone, T, D>, "Model: the backbone's device is cuda but the encoder's is host");
  static_assert(!cuda || detail::gpu_part<Norm, T, D>, "Model: the final norm's device is host but the encoder's is cuda");
  static_assert(cuda || !detail::gpu_part<Norm, T, D>, "Model: the final norm's device is cuda but the encoder's is host");
  static_assert(!cuda || detail::gpu_part<Head, T, D>, "Model: the head's device is host but the encoder's is cuda");
  static_assert(cuda || !detail::gpu_part<Head, T, D>, "Model: the head's device is cuda but the encoder's is host");
  static_assert(detail::same_value<Backbone, T, D>,
                "Model: the backbone's value type differs from the encoder's (write the dtype once: models::Family)");
  static_assert(detail::same_value<Norm, T, D>,
                "Model: the final norm's value type differs from the encoder's (write the dtype once: models::Family)");
  static_assert(detail::same_value<Head, T, D>,
                "Model: the head's value type differs from the encoder's (write the dtype once: models::Family)");
  static constexpr bool agree = parts_agree<Encoder, Backbone, Norm, Head>;
  static_assert(!agree || models::Encoder<Encoder, T, D>,
                "Model: the encoder must provide dim(), forward(ctx, Inputs, y, Saved) and backward(ctx, Saved, dy)");
  static_assert(!agree || nn::Layer<Backbone, T, D>,
                "Model: the backbone must satisfy nn::Layer<T, D> (nn::assert_layer<Backbone, T, D>() names the "
                "missing piece)");
  static_assert(!agree || nn::Layer<Norm, T, D>, "Model: the final norm must satisfy nn::Layer<T, D>");
  static_assert(!agree || heads::Head<Head, T, D>,
                "Model: the head must satisfy heads::Head<T, D> (heads::assert_head<Head, T, D>() names the missing "
                "piece)");

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
    Tensor<T, D> h0, h1, h2, g0, g1;  // activations and gradients between the stages
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
  TensorView<const T, D> features(Context<D>& ctx, const Inputs<T, D>& in, Saved& s) {
    const index_t b = in.batch(), l = in.length(), h = encoder.dim();
    s.h0.resize(Shape{b, l, h});
    s.h1.resize(Shape{b, l, h});
    s.h2.resize(Shape{b, l, h});
    encoder.forward(ctx, in, s.h0.view(), s.enc);
    backbone.forward(ctx, s.h0.view(), s.h1.view(), s.backbone);
    norm.forward(ctx, s.h1.view(), s.h2.view(), s.norm);
    return s.h2.view();
  }
  heads::LossStats forward(Context<D>& ctx, const Inputs<T, D>& in, const heads::Targets<T, D>& t, Saved& s) {
    auto f = features(ctx, in, s);
    heads::Targets<T, D> tt = t;
    if (!tt.lengths.data) tt.lengths = in.lengths;
    return head.forward(ctx, f, tt, s.head);
  }
  // The same forward with the batch's statistics left in `out`: on the device nothing is copied back, so a
  // loop (train::fit) reads them only when it logs. A head without this form has its LossStats put there.
  void forward(Context<D>& ctx, const Inputs<T, D>& in, const heads::Targets<T, D>& t, Saved& s,
               heads::BatchStats<D>& out) {
    const TensorView<const T, D> f = features(ctx, in, s);
    heads::Targets<T, D> tt = t;
    if (!tt.lengths.data) tt.lengths = in.lengths;
    heads::forward_stats(head, ctx, f, tt, s.head, out);
  }
  // Accumulates d(scale * loss)/d parameters into the bound gradient buffers.
  void backward(Context<D>& ctx, Saved& s, double scale = 1.0) {
    backward(ctx, s, scale, [](auto&) {});
  }
  // The same, calling done(part) right after the backward of each part, in backward order: head, norm,
  // each backbone block from the top (the whole backbone when it is not a Stack), encoder. Parameters
  // are laid out in parameters() order (encoder first), so when done(part) runs, every gradient from
  // the part's first parameter to the end of the flat buffer is final; train::fit starts the all-reduce
  // of those gradient buckets there, while the rest of the backward runs.
  template <class F>
  void backward(Context<D>& ctx, Saved& s, double scale, F&& done) {
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

}  // namespace longseq::models
