// train::LossScaler: dynamic loss scaling for mixed-precision training. The loss (and so every gradient) is
// multiplied by a power-of-two scale before the backward, so small gradients survive a narrow format; the
// gradients are divided by it again before the update. An overflow (a non-finite gradient) skips the update
// and halves the scale; a run of good updates doubles it again.
#pragma once
#include <cmath>

#include "../core/error.hpp"
#include "../core/shape.hpp"

namespace longseq::train {

struct LossScaleConfig {
  double initial = 0;           // first scale, a power of two (e.g. 65536); 0: loss scaling off
  double growth = 2;            // factor after `window` good updates in a row (a power of two > 1)
  double backoff = 0.5;         // factor after an overflow (a power of two in (0, 1))
  index_t window = 2000;        // good updates before the scale grows
  double min_scale = 0x1p-14;   // an overflow that would take the scale below this ends the run
};

// What a resumed run needs to continue with the same scale. scale == 0: no scaler state (scaling off, or a
// checkpoint written before loss scaling existed).
struct LossScaleState {
  double scale = 0;
  index_t good_steps = 0;  // good updates since the last change of scale
  index_t skipped = 0;     // updates skipped for overflow, over the whole run
};

namespace detail {
// Powers of two (positive, finite, normal or not) are exactly the numbers whose frexp mantissa is 1/2.
inline bool is_power_of_two(double x) {
  if (!(x > 0) || !std::isfinite(x)) return false;
  int e = 0;
  return std::frexp(x, &e) == 0.5;
}
}  // namespace detail

class LossScaler {
 public:
  LossScaler() = default;  // off: scale() == 1, update() always takes the step
  explicit LossScaler(LossScaleConfig cfg) : cfg_(cfg) {
    if (cfg.initial == 0) return;
    LONGSEQ_CHECK(detail::is_power_of_two(cfg.initial), "loss scale: initial = ", cfg.initial,
                  " must be a power of two (e.g. 65536) so that scaled gradients are exact, or 0 for off");
    LONGSEQ_CHECK(cfg.growth > 1 && detail::is_power_of_two(cfg.growth), "loss scale: growth = ", cfg.growth,
                  " must be a power of two > 1 (e.g. 2)");
    LONGSEQ_CHECK(cfg.backoff > 0 && cfg.backoff < 1 && detail::is_power_of_two(cfg.backoff), "loss scale: backoff = ",
                  cfg.backoff, " must be a power of two in (0, 1) (e.g. 0.5)");
    LONGSEQ_CHECK(cfg.window >= 1, "loss scale: window = ", cfg.window, " must be >= 1 good update before growing");
    LONGSEQ_CHECK(cfg.min_scale > 0 && cfg.min_scale <= cfg.initial, "loss scale: min_scale = ", cfg.min_scale,
                  " must be in (0, initial = ", cfg.initial, "]");
    st_.scale = cfg.initial;
  }

  bool enabled() const { return cfg_.initial != 0; }
  // The factor the loss is multiplied by (1 when off).
  double scale() const { return enabled() ? st_.scale : 1.0; }
  const LossScaleConfig& config() const { return cfg_; }
  const LossScaleState& state() const { return st_; }
  index_t skipped() const { return st_.skipped; }

  // Continues from a saved state; a state without a scale (scale == 0) keeps the fresh one.
  void restore(const LossScaleState& s) {
    if (!enabled() || s.scale == 0) return;
    LONGSEQ_CHECK(detail::is_power_of_two(s.scale) && s.scale >= cfg_.min_scale && s.good_steps >= 0 && s.skipped >= 0,
                  "loss scale: saved state (scale ", s.scale, ", good_steps ", s.good_steps, ", skipped ", s.skipped,
                  ") is invalid: the scale must be a power of two >= min_scale = ", cfg_.min_scale);
    st_ = s;
  }

  // Whether one more overflow still leaves the scale at or above min_scale.
  bool can_back_off() const { return !enabled() || st_.scale * cfg_.backoff >= cfg_.min_scale; }

  // Records the outcome of one update's gradients; returns whether the optimizer step should be taken.
  // finite == false: skip the step, scale *= backoff (throws when that would fall below min_scale).
  // finite == true: after `window` good updates in a row, scale *= growth (kept finite).
  bool update(bool finite) {
    if (!enabled()) return true;
    if (!finite) {
      LONGSEQ_CHECK(can_back_off(), "loss scale: gradients are non-finite at scale ", st_.scale,
                    " and backing off would go below min_scale = ", cfg_.min_scale,
                    " (the gradients overflow at any scale: the model diverges)");
      st_.scale *= cfg_.backoff;
      st_.good_steps = 0;
      ++st_.skipped;
      return false;
    }
    if (++st_.good_steps >= cfg_.window) {
      if (std::isfinite(st_.scale * cfg_.growth)) st_.scale *= cfg_.growth;
      st_.good_steps = 0;
    }
    return true;
  }

 private:
  LossScaleConfig cfg_{};
  LossScaleState st_{};
};

}  // namespace longseq::train
