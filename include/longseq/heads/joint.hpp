// heads::JointHead and heads::joint_step: the joint objective (Miralles-Gonzalez et al. 2025), supervised
// training with an added masked-denoising loss on the same batch, in place of a separate self-pretraining stage:
//   loss = supervised(x) + weight * denoising(mask(x)),
// one model (encoder, backbone, norm) shared by both terms, two forward/backward passes per step whose
// parameter gradients add up (layers accumulate them).
#pragma once
#include <cmath>

#include "head.hpp"

namespace longseq::heads {

// Two heads on the same features. Which one a forward runs follows from its targets: a batch with a
// denoising mask supervises Den, one without supervises Sup. Saved remembers which, so backward needs no
// other state and the two passes of a step keep separate Saved objects.
template <class Sup, class Den>
struct JointHead {
  using value_type = typename Sup::value_type;
  using device_type = typename Sup::device_type;
  using T = value_type;
  using D = device_type;
  static_assert(std::is_same_v<typename Den::value_type, T> && std::is_same_v<typename Den::device_type, D>,
                "heads::JointHead: the supervised and the denoising head must share dtype and device");
  struct Config {
    typename Sup::Config supervised;
    typename Den::Config denoising;
  };
  struct Saved {
    bool denoising = false;
    typename Sup::Saved sup;
    typename Den::Saved den;
  };

  Sup supervised;
  Den denoising;

  explicit JointHead(Config c) : supervised(c.supervised), denoising(c.denoising) {}
  // "task." is the downstream head, "denoise." the SPT head, so checkpoints name both apart.
  template <class F>
  void parameters(F&& f) {
    supervised.parameters(prefixed("task", f));
    denoising.parameters(prefixed("denoise", f));
  }
  void init(Rng& rng) {
    supervised.init(rng);
    denoising.init(rng);
  }
  LossStats forward(Context<D>& ctx, TensorView<const T, D> x, const Targets<T, D>& t, Saved& s) {
    s.denoising = t.mask.data != nullptr;
    return s.denoising ? denoising.forward(ctx, x, t, s.den) : supervised.forward(ctx, x, t, s.sup);
  }
  // The statistics into `out` (left on the device) when both heads can; otherwise through their LossStats.
  void forward(Context<D>& ctx, TensorView<const T, D> x, const Targets<T, D>& t, Saved& s, BatchStats<D>& out) {
    s.denoising = t.mask.data != nullptr;
    if (s.denoising) forward_stats(denoising, ctx, x, t, s.den, out);
    else forward_stats(supervised, ctx, x, t, s.sup, out);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<T, D> dx, double scale = 1.0) {
    if (s.denoising) denoising.backward(ctx, s.den, dx, scale);
    else supervised.backward(ctx, s.sup, dx, scale);
  }
};

// The statistics of one joint step: each term's, and the combined loss supervised + weight * denoising.
struct JointStats {
  LossStats supervised, denoising;
  double loss = 0;
};

// The joint objective's weight must be a finite number > 0 (0 is training from scratch: use that stage).
inline void check_joint_weight(double weight) {
  LONGSEQ_CHECK(std::isfinite(weight) && weight > 0, "joint objective: weight = ", weight,
                ", expected a finite number > 0");
}

// One joint step's forward and backward on `model` (a models::Model whose head is a JointHead, or anything
// with forward(ctx, inputs, targets, saved) -> LossStats and backward(ctx, saved, scale)): the supervised
// pass on the clean inputs, then the denoising pass on the masked ones, its gradients scaled by `weight`.
// Parameter gradients accumulate into the store (zero them before, as for any step); `scale` multiplies
// both (loss scaling).
template <class Model, class Inputs, class Tg, class Saved>
JointStats joint_step(Model& model, Context<typename Model::device_type>& ctx, const Inputs& clean, const Tg& labels,
                      const Inputs& masked, const Tg& denoise, double weight, Saved& sup_saved, Saved& den_saved,
                      double scale = 1.0) {
  check_joint_weight(weight);
  LONGSEQ_CHECK(labels.mask.data == nullptr, "joint_step: the supervised targets carry a mask; a mask marks the "
                                             "denoising targets");
  LONGSEQ_CHECK(denoise.mask.data != nullptr, "joint_step: the denoising targets need a mask (B, L)");
  JointStats r;
  r.supervised = model.forward(ctx, clean, labels, sup_saved);
  model.backward(ctx, sup_saved, scale);
  r.denoising = model.forward(ctx, masked, denoise, den_saved);
  model.backward(ctx, den_saved, scale * weight);
  r.loss = r.supervised.loss + weight * r.denoising.loss;
  return r;
}

}  // namespace longseq::heads
