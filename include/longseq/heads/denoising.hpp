// Self-pretraining heads: a per-position Linear(H -> C) whose loss is taken on masked positions only
// (masked denoising) or at every position against the next token (causal LM, last position ignored).
// Losses: cross-entropy over a vocabulary or over 256 pixel intensities, or L1 on the normalized value.
// One template for both device policies: which positions carry loss and what they predict is an op with
// a host and a CUDA overload (heads/cuda/denoising.cuh).
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

// Whether position p of sequence i carries loss, and (in `from`) the position whose target it predicts:
// masked: itself, where the mask is set; causal: the next valid position. Shared by host and device.
template <Objective Obj>
struct PositionRule {
  const std::uint8_t* mask;       // (B, L); masked only
  const std::int32_t* lengths;    // (B) or null
  index_t l;
#if defined(__CUDACC__)
  __host__ __device__
#endif
  bool operator()(index_t i, index_t p, index_t& from) const {
    if constexpr (Obj == Objective::masked) {
      from = p;
      return (!lengths || p < index_t(lengths[i])) && mask[i * l + p] != 0;
    } else {
      from = p + 1;
      return p + 1 < l && (!lengths || p + 1 < index_t(lengths[i]));
    }
  }
};

// ids[i * l + p] = the class position p predicts, or ignore_index where it carries no loss.
template <Objective Obj>
void position_targets_ce(Context<device::host>&, PositionRule<Obj> rule, TensorView<const std::int32_t> classes,
                         index_t b, TensorView<std::int32_t> ids) {
  const index_t l = rule.l;
  for (index_t i = 0; i < b; ++i)
    for (index_t p = 0; p < l; ++p) {
      index_t from;
      ids[i * l + p] = rule(i, p, from) ? classes[i * l + from] : ignore_index;
    }
}

// values/mask per position: the target value and 1 where the position carries loss, 0 elsewhere.
template <Objective Obj, class T>
void position_targets_l1(Context<device::host>&, PositionRule<Obj> rule, TensorView<const T> values, index_t b,
                         TensorView<T> target, TensorView<std::uint8_t> on_mask) {
  const index_t l = rule.l;
  for (index_t i = 0; i < b; ++i)
    for (index_t p = 0; p < l; ++p) {
      index_t from;
      const bool on = rule(i, p, from);
      on_mask[i * l + p] = on ? 1 : 0;
      target[i * l + p] = on ? values[i * l + from] : T(0);
    }
}

}  // namespace detail
}  // namespace longseq::heads

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads of the target ops
#include "cuda/denoising.cuh"
#endif

namespace longseq::heads {
namespace detail {

template <class T, Objective Obj, class D>
struct PositionHead {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t dim = 0;
    index_t classes = 256;  // vocabulary size or 256 intensities (ce); ignored for l1 (one output)
    DenoiseLoss loss = DenoiseLoss::ce;
  };
  struct Saved {
    typename nn::Linear<T, D>::Saved linear;
    Tensor<T, D> out, dout;              // (B, L, C)
    Tensor<std::int32_t, D> target_ids;  // (B*L) for ce
    Tensor<T, D> target_values;          // (B*L) for l1
    Tensor<std::uint8_t, D> target_mask;
    typename CrossEntropy<T, D>::Saved ce;
    typename MaskedL1<T, D>::Saved l1;
  };

  Config cfg;
  nn::Linear<T, D> proj;

  explicit PositionHead(Config c)
      : cfg(c), proj({c.dim, c.loss == DenoiseLoss::ce ? c.classes : 1, true}) {}
  index_t outputs() const { return cfg.loss == DenoiseLoss::ce ? cfg.classes : 1; }

  template <class F>
  void parameters(F&& f) { proj.parameters(prefixed("proj", f)); }
  void init(Rng& rng) { proj.init(rng); }

  void forward(Context<D>& ctx, TensorView<const T, D> x, const Targets<T, D>& t, Saved& s, BatchStats<D>& out) {
    expect_rank(x, 3, "features");
    const index_t b = x.size(0), l = x.size(1), c = outputs();
    s.out.resize(Shape{b, l, c});
    proj.forward(ctx, x, s.out.view(), s.linear);
    if (t.lengths.data) expect_shape(t.lengths, Shape{b}, "lengths");
    if constexpr (Obj == Objective::masked) expect_shape(t.mask, Shape{b, l}, "mask");
    const PositionRule<Obj> rule{t.mask.data, t.lengths.data, l};
    if (cfg.loss == DenoiseLoss::ce) {
      expect_shape(t.classes, Shape{b, l}, "classes");
      s.target_ids.resize(Shape{b * l});
      position_targets_ce<Obj>(ctx, rule, t.classes, b, s.target_ids.view());
      CrossEntropy<T, D>::forward(ctx, TensorView<const T, D>(s.out.data(), Shape{b * l, c}), s.target_ids.view(),
                                  s.ce, out);
      return;
    }
    expect_shape(t.values, Shape{b, l}, "values");
    s.target_values.resize(Shape{b * l});
    s.target_mask.resize(Shape{b * l});
    position_targets_l1<Obj, T>(ctx, rule, t.values, b, s.target_values.view(), s.target_mask.view());
    MaskedL1<T, D>::forward(ctx, TensorView<const T, D>(s.out.data(), Shape{b * l}), s.target_values.view(),
                            s.target_mask.view(), s.l1, out);
  }
  LossStats forward(Context<D>& ctx, TensorView<const T, D> x, const Targets<T, D>& t, Saved& s) {
    BatchStats<D>& own = cfg.loss == DenoiseLoss::ce ? s.ce.stats : s.l1.stats;
    forward(ctx, x, t, s, own);
    return own.read(ctx);
  }

  void backward(Context<D>& ctx, Saved& s, TensorView<T, D> dx, double scale = 1.0) {
    s.dout.resize(s.out.shape());
    const index_t n = s.out.size(0) * s.out.size(1);
    if (cfg.loss == DenoiseLoss::ce)
      CrossEntropy<T, D>::backward(ctx, s.ce, TensorView<T, D>(s.dout.data(), Shape{n, outputs()}), scale);
    else
      MaskedL1<T, D>::backward(ctx, s.l1, TensorView<T, D>(s.dout.data(), Shape{n}), scale);
    proj.backward(ctx, s.linear, s.dout.view(), dx);
  }

  // Per-position outputs of the last forward: logits (B, L, C) or predicted values (B, L, 1).
  TensorView<const T, D> outputs_view(const Saved& s) const { return s.out.view(); }
};

}  // namespace detail

// Masked denoising (SPT for bidirectional models): loss only where Targets::mask is set.
template <class T, class D = device::host>
struct MaskedDenoisingHead : detail::PositionHead<T, Objective::masked, D> {
  using detail::PositionHead<T, Objective::masked, D>::PositionHead;
};
// Causal next-token prediction (SPT for causal models): position t predicts token t + 1.
template <class T, class D = device::host>
struct CausalLMHead : detail::PositionHead<T, Objective::causal, D> {
  using detail::PositionHead<T, Objective::causal, D>::PositionHead;
};

static_assert(assert_head<MaskedDenoisingHead<float>, float>());
static_assert(assert_head<CausalLMHead<double>, double>());
static_assert(StatsInto<MaskedDenoisingHead<float>, float> && StatsInto<CausalLMHead<double>, double>);

}  // namespace longseq::heads
