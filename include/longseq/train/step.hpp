// train::step: one update a user can call from a loop of their own: forward, scaled backward, the gradient
// all-reduce of data parallelism, unscaling, global-norm clipping, the finite check and the optimizer step.
// With a DenoisingPass it is one update of the joint objective: the supervised pass, then the masked copy's,
// its gradients weighted, before the update.
// train::apply_update is its second half (everything after the backward), which train::fit calls after its
// own micro-batch accumulation. Generic over the device: on the host the scaler and the decisions live on
// the host; on CUDA (train/cuda/update.cuh) the norm, the finite check, the loss scale and the skip decision
// stay on the device and the host reads them only when it asks (logging).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "clip.hpp"
#include "distributed.hpp"
#include "loss_scale.hpp"
#include "optimizer.hpp"

namespace longseq::train {

enum class UpdateStatus {
  taken,      // the optimizer stepped
  skipped,    // non-finite gradients under loss scaling: the scale backed off, the gradients were dropped
  nonfinite,  // non-finite gradients that nothing can absorb (no loss scaling, or the scale is at its floor):
              // the gradients are left in the store so the caller can name the parameter
};

struct UpdateResult {
  UpdateStatus status = UpdateStatus::taken;
  double grad_norm = 0;   // global norm of the unscaled gradients, before clipping
  double loss_scale = 1;  // the scale these gradients carried (1 when scaling is off)
  // On CUDA the outcome is decided on the device and not read back: pending is true, the other fields say
  // nothing, and DeviceLossScaler::last() returns the outcome when it is wanted.
  bool pending = false;
  bool taken() const { return status == UpdateStatus::taken; }
};

// Finishes an update whose (summed, possibly loss-scaled) gradients are in the optimizer's host store:
// unscale, clip to max_norm (0: off), check, record the outcome with the scaler, step with lr_factor (the
// schedule's factor) and zero the gradients (unless the result is nonfinite). The same order and
// arithmetic as train::fit has always used, so results are unchanged bit for bit.
template <class O>
  requires(!O::device_type::is_gpu)
UpdateResult apply_update(O& opt, LossScaler& scaler, double max_norm, double lr_factor) {
  assert_optimizer<O>();
  auto& store = opt.store();
  UpdateResult r;
  r.loss_scale = scaler.scale();
  // The loss scale is a power of two, so undoing it is exact.
  if (scaler.enabled()) scale_grads(store, 1.0 / scaler.scale());
  r.grad_norm = clip_grad_norm(store, max_norm);
  if (!std::isfinite(r.grad_norm)) {
    if (!scaler.enabled() || !scaler.can_back_off()) {
      r.status = UpdateStatus::nonfinite;
      return r;
    }
    scaler.update(false);
    opt.zero_grad();
    r.status = UpdateStatus::skipped;
    return r;
  }
  if (scaler.enabled()) scaler.update(true);
  opt.step(lr_factor);
  opt.zero_grad();
  return r;
}

struct StepConfig {
  double clip = 0;       // global gradient-norm clipping (0: off)
  double lr_factor = 1;  // the schedule's factor for this update
};

template <class Stats>
struct StepResult {
  Stats stats;  // the forward's loss statistics (this rank's)
  UpdateResult update;
};

// The joint objective's second pass of a step: the masked copy of the batch, its denoising targets and the
// weight of its loss (> 0).
template <class In, class Tg>
struct DenoisingPass {
  const In& inputs;
  const Tg& targets;
  double weight = 1;
};

namespace detail {
// Forward and backward of one pass: backward of factor * scale * loss, where the scale weights this rank's
// mean loss by its share of the counted items when several ranks take part, and carries the loss scale.
template <class M, class Ctx, class Scaler, class In, class Tg, Communicator C>
auto pass(M& model, Ctx& ctx, typename M::Saved& saved, Scaler& scaler,
          const In& inputs, const Tg& targets, double factor, C& comm, const char* what) {
  const bool parallel = comm.size() > 1;
  auto stats = model.forward(ctx, inputs, targets, saved);
  double v[2] = {std::isfinite(stats.loss) ? double(stats.count) : 0.0, std::isfinite(stats.loss) ? 0.0 : 1.0};
  const double local = v[0];
  if (parallel) comm.allreduce_sum(v, 2);
  LONGSEQ_CHECK(v[1] == 0, "train::step: non-finite ", what, " (", stats.loss, ")",
                std::isfinite(stats.loss) ? " on another rank" : "");
  const double weight = parallel ? (v[0] > 0 ? local / v[0] : 0.0) : 1.0;
  model.backward(ctx, saved, weight * scaler.scale() * factor);
  return stats;
}

// The second half of a step: the gradient all-reduce and apply_update.
template <class O, class Scaler, class Stats, Communicator C>
StepResult<Stats> finish_step(O& opt, Scaler& scaler, const Stats& stats, const StepConfig& cfg, C& comm) {
  const bool parallel = comm.size() > 1;
  if constexpr (requires { allreduce_gradients(comm, opt.store()); }) {
    if (parallel) allreduce_gradients(comm, opt.store());
  } else {
    LONGSEQ_CHECK(!parallel, "train::step: this communicator cannot all-reduce a ", O::device_type::name,
                  " store's gradients");
  }
  StepResult<Stats> r{stats, {}};
  if constexpr (O::device_type::is_gpu) {
    // Decided on the device; a fatal outcome surfaces at the next scaler.scale() (the next step).
    apply_update(opt, scaler, cfg.clip, cfg.lr_factor);
    r.update.pending = true;
  } else {
    r.update = apply_update(opt, scaler, cfg.clip, cfg.lr_factor);
    if (r.update.status == UpdateStatus::nonfinite)
      LONGSEQ_FAIL("train::step: non-finite gradient (first in '", first_nonfinite_grad(opt.store()), "')",
                   scaler.enabled() ? " at the smallest loss scale allowed" : "");
  }
  return r;
}
}  // namespace detail

// The statistics of a joint step: the supervised pass's and the denoising pass's.
template <class Stats>
struct JointStats {
  Stats supervised, denoising;
};

// One whole update on one batch: forward, backward of scale * loss (the scale weights this rank's mean loss
// by its share of the counted items when several ranks take part, and carries the loss scale), the gradient
// all-reduce, then apply_update. A non-finite loss, or non-finite gradients nothing can absorb, throws naming
// the first parameter at fault; the caller's loop decides what to do next. Model: forward(ctx, inputs,
// targets, saved) -> stats with .loss and .count, backward(ctx, saved, scale); Scaler: LossScaler on the
// host, DeviceLossScaler on CUDA.
template <class M, class O, class Scaler, class In, class Tg, Communicator C>
auto step(M& model, Context<typename O::device_type>& ctx, typename M::Saved& saved, O& opt, Scaler& scaler,
          const In& inputs, const Tg& targets, const StepConfig& cfg, C& comm) {
  assert_optimizer<O>();
  ctx.training = true;
  auto stats = detail::pass(model, ctx, saved, scaler, inputs, targets, 1.0, comm, "loss");
  return detail::finish_step(opt, scaler, stats, cfg, comm);
}

// One update of the joint objective: the supervised pass on (inputs, targets), then the denoising pass on
// den's masked copy with its gradients times den.weight (each pass weighted by its own counts across ranks),
// then the same all-reduce and update. Its dropout draws from a key of its own (ctx.seed changed and restored).
template <class M, class O, class Scaler, class In, class Tg, Communicator C>
auto step(M& model, Context<typename O::device_type>& ctx, typename M::Saved& saved, O& opt, Scaler& scaler,
          const In& inputs, const Tg& targets, const DenoisingPass<In, Tg>& den, const StepConfig& cfg, C& comm) {
  assert_optimizer<O>();
  LONGSEQ_CHECK(std::isfinite(den.weight) && den.weight > 0, "train::step: the denoising pass's weight is ",
                den.weight, ", expected a finite number > 0");
  ctx.training = true;
  JointStats<decltype(model.forward(ctx, inputs, targets, saved))> stats;
  stats.supervised = detail::pass(model, ctx, saved, scaler, inputs, targets, 1.0, comm, "loss");
  const std::uint64_t seed = ctx.seed;
  ctx.seed ^= 0x6A6F696E74ull;  // the same key fit gives the second pass
  stats.denoising = detail::pass(model, ctx, saved, scaler, den.inputs, den.targets, den.weight, comm,
                                 "denoising loss");
  ctx.seed = seed;
  return detail::finish_step(opt, scaler, stats, cfg, comm);
}

// One process.
template <class M, class O, class Scaler, class In, class Tg>
auto step(M& model, Context<typename O::device_type>& ctx, typename M::Saved& saved, O& opt, Scaler& scaler,
          const In& inputs, const Tg& targets, const DenoisingPass<In, Tg>& den, const StepConfig& cfg = {}) {
  SingleProcess one;
  return step(model, ctx, saved, opt, scaler, inputs, targets, den, cfg, one);
}

// One process.
template <class M, class O, class Scaler, class In, class Tg>
auto step(M& model, Context<typename O::device_type>& ctx, typename M::Saved& saved, O& opt, Scaler& scaler,
          const In& inputs, const Tg& targets, const StepConfig& cfg = {}) {
  SingleProcess one;
  return step(model, ctx, saved, opt, scaler, inputs, targets, cfg, one);
}

}  // namespace longseq::train

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // the device update, visible wherever the step is
#include "cuda/update.cuh"
#endif
