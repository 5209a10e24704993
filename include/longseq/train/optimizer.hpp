// train::Optimizer: what an optimizer over a ParamStore must provide so that train::step, train::fit and the
// checkpoints can drive it. AdamW (train/adamw.hpp) is one; a new optimizer states the same members.
#pragma once
#include <concepts>

#include "../core/parameters.hpp"

namespace longseq::train {

// - value_type, device_type: the store's storage type and device policy;
// - step(lr_factor): one update of every parameter from its gradient, each group's lr times lr_factor;
// - zero_grad(): gradients back to zero (backward accumulates into them);
// - steps(): updates taken so far (the bias correction's t for Adam-like optimizers);
// - base_lr(): the learning rate before the schedule's factor (what the logs report);
// - store(): the ParamStore it updates.
template <class O>
concept Optimizer = requires(O& o, const O& co, double lr_factor) {
  typename O::value_type;
  typename O::device_type;
  o.step(lr_factor);
  o.zero_grad();
  { co.steps() } -> std::convertible_to<index_t>;
  { co.base_lr() } -> std::convertible_to<double>;
  { o.store() } -> std::same_as<ParamStore<typename O::value_type, typename O::device_type>&>;
};

// Names the first missing piece instead of failing deep inside the step.
template <class O>
constexpr void assert_optimizer() {
  static_assert(requires { typename O::value_type; typename O::device_type; },
                "train::Optimizer: the optimizer must name value_type and device_type (its store's T and D)");
  static_assert(requires(O& o) { o.step(1.0); }, "train::Optimizer: the optimizer must provide step(double lr_factor)");
  static_assert(requires(O& o) { o.zero_grad(); }, "train::Optimizer: the optimizer must provide zero_grad()");
  static_assert(requires(const O& o) { { o.steps() } -> std::convertible_to<index_t>; },
                "train::Optimizer: the optimizer must provide steps() const (updates taken)");
  static_assert(requires(const O& o) { { o.base_lr() } -> std::convertible_to<double>; },
                "train::Optimizer: the optimizer must provide base_lr() const (the lr before the schedule)");
  static_assert(Optimizer<O>, "train::Optimizer: store() must return the ParamStore<value_type, device_type>& it updates");
}

}  // namespace longseq::train
