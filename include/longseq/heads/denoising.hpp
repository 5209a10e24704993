// Self-pretraining heads: a per-position Linear(H -> C) whose loss is taken on masked positions only
// (masked denoising) or at every position against the next token (causal LM, last position ignored).
// Losses: cross-entropy over a vocabulary or over 256 pixel intensities, or L1 on the normalized value.
#pragma once
#include <cstdint>
#include <string_view>

#include "../nn/linear.hpp"
#include "head.hpp"

namespace longseq::heads {

enum class DenoiseLoss { ce, l1 };
enum class Objective { masked, causal };

inline DenoiseLoss parse_denoise_loss(std::string_view s) {
  if (s == "ce") return DenoiseLoss::ce;
  if (s == "l1") return DenoiseLoss::l1;
  LONGSEQ_FAIL("unknown denoising loss '", s, "', expected ce or l1");
}

namespace detail {

template <class T, Objective Obj>
struct PositionHead {
  using value_type = T;
  struct Config {
    index_t dim = 0;
    index_t classes = 256;  // vocabulary size or 256 intensities (ce); ignored for l1 (one output)
    DenoiseLoss loss = DenoiseLoss::ce;
  };
  struct Saved {
    typename nn::Linear<T>::Saved linear;
    Tensor<T> out, dout;              // (B, L, C)
    Tensor<std::int32_t> target_ids;  // (B*L) for ce
    Tensor<T> target_values;          // (B*L) for l1
    Tensor<std::uint8_t> target_mask;
    typename CrossEntropy<T>::Saved ce;
    typename MaskedL1<T>::Saved l1;
  };

  Config cfg;
  nn::Linear<T> proj;

  explicit PositionHead(Config c)
      : cfg(c), proj({c.dim, c.loss == DenoiseLoss::ce ? c.classes : 1, true}) {}
  index_t outputs() const { return cfg.loss == DenoiseLoss::ce ? cfg.classes : 1; }

  template <class F>
  void parameters(F&& f) { proj.parameters(prefixed("proj", f)); }
  void init(Rng& rng) { proj.init(rng); }

  LossStats forward(HostContext& ctx, TensorView<const T> x, const Targets<T>& t, Saved& s) {
    expect_rank(x, 3, "features");
    const index_t b = x.size(0), l = x.size(1), c = outputs();
    s.out.resize(Shape{b, l, c});
    proj.forward(ctx, x, s.out.view(), s.linear);
    if (t.lengths.data) expect_shape(t.lengths, Shape{b}, "lengths");
    auto valid = [&](index_t i, index_t pos) { return !t.lengths.data || pos < index_t(t.lengths[i]); };
    // Which positions carry loss and what they predict.
    auto source = [&](index_t i, index_t pos, index_t& from) {
      if constexpr (Obj == Objective::masked) {
        from = pos;
        return valid(i, pos) && t.mask[i * l + pos] != 0;
      } else {
        from = pos + 1;
        return pos + 1 < l && valid(i, pos + 1);
      }
    };
    if constexpr (Obj == Objective::masked) expect_shape(t.mask, Shape{b, l}, "mask");
    if (cfg.loss == DenoiseLoss::ce) {
      expect_shape(t.classes, Shape{b, l}, "classes");
      s.target_ids.resize(Shape{b * l});
      for (index_t i = 0; i < b; ++i)
        for (index_t p = 0; p < l; ++p) {
          index_t from;
          s.target_ids[i * l + p] = source(i, p, from) ? t.classes[i * l + from] : ignore_index;
        }
      return CrossEntropy<T>::forward(TensorView<const T>(s.out.data(), Shape{b * l, c}), s.target_ids.view(), s.ce);
    }
    expect_shape(t.values, Shape{b, l}, "values");
    s.target_values.resize(Shape{b * l});
    s.target_mask.resize(Shape{b * l});
    for (index_t i = 0; i < b; ++i)
      for (index_t p = 0; p < l; ++p) {
        index_t from;
        const bool on = source(i, p, from);
        s.target_mask[i * l + p] = on ? 1 : 0;
        s.target_values[i * l + p] = on ? t.values[i * l + from] : T(0);
      }
    return MaskedL1<T>::forward(TensorView<const T>(s.out.data(), Shape{b * l}), s.target_values.view(),
                                s.target_mask.view(), s.l1);
  }

  void backward(HostContext& ctx, Saved& s, TensorView<T> dx, double scale = 1.0) {
    s.dout.resize(s.out.shape());
    const index_t n = s.out.size(0) * s.out.size(1);
    if (cfg.loss == DenoiseLoss::ce)
      CrossEntropy<T>::backward(s.ce, TensorView<T>(s.dout.data(), Shape{n, outputs()}), scale);
    else
      MaskedL1<T>::backward(s.l1, TensorView<T>(s.dout.data(), Shape{n}), scale);
    proj.backward(ctx, s.linear, s.dout.view(), dx);
  }

  // Per-position outputs of the last forward: logits (B, L, C) or predicted values (B, L, 1).
  TensorView<const T> outputs_view(const Saved& s) const { return s.out.view(); }
};

}  // namespace detail

// Masked denoising (SPT for bidirectional models): loss only where Targets::mask is set.
template <class T>
struct MaskedDenoisingHead : detail::PositionHead<T, Objective::masked> {
  using detail::PositionHead<T, Objective::masked>::PositionHead;
};
// Causal next-token prediction (SPT for causal models): position t predicts token t + 1.
template <class T>
struct CausalLMHead : detail::PositionHead<T, Objective::causal> {
  using detail::PositionHead<T, Objective::causal>::PositionHead;
};

static_assert(assert_head<MaskedDenoisingHead<float>, float>());
static_assert(assert_head<CausalLMHead<double>, double>());

}  // namespace longseq::heads
