// train::Schedule: learning-rate factor per optimizer update: linear warmup, then constant or cosine decay.
#pragma once
#include <algorithm>
#include <cmath>
#include <string_view>

#include "../core/error.hpp"
#include "../core/shape.hpp"

namespace longseq::train {

struct Schedule {
  enum class Kind { constant, cosine };
  Kind kind = Kind::constant;
  index_t warmup = 0;       // updates of linear warmup
  index_t total = 0;        // cosine: updates until the factor reaches min_factor
  double min_factor = 0.0;  // cosine floor

  // Factor for update number `step` (0-based): (step + 1) / warmup during warmup, then 1 (constant) or
  // min + (1 - min) * (1 + cos(pi * progress)) / 2 with progress = (step - warmup) / (total - warmup).
  double factor(index_t step) const {
    if (step < warmup) return double(step + 1) / double(warmup);
    if (kind == Kind::constant) return 1.0;
    const double span = double(std::max<index_t>(1, total - warmup));
    const double progress = std::clamp(double(step - warmup) / span, 0.0, 1.0);
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * progress));
  }
  static Kind parse(std::string_view s) {
    if (s == "constant") return Kind::constant;
    if (s == "cosine") return Kind::cosine;
    LONGSEQ_FAIL("unknown schedule '", s, "', expected constant or cosine");
  }
};

}  // namespace longseq::train
