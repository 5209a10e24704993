// train::redraw_normal: the random-initialization ablation of the paper's code, which redraws every
// parameter of the model (encoder, norms, mixers, head) from N(0, sigma) after the model's own init.
#pragma once
#include <string_view>
#include <type_traits>

#include "../core/error.hpp"
#include "../core/parameters.hpp"
#include "../core/rng.hpp"

namespace longseq::train {

// Every parameter of `store` that `select(name)` accepts gets i.i.d. N(0, sigma) values, drawn entry by
// entry in the store's order (so one seed gives one model). Buffers (BatchNorm's running statistics) are
// state, not parameters, and keep their values: the reference registers them as buffers too. Returns the
// number of values drawn. Host stores only, as every init: a device model is initialized on the host and
// copied.
template <class T, class D, class Select>
index_t redraw_normal(ParamStore<T, D>& store, Rng& rng, double sigma, Select&& select) {
  static_assert(!D::is_gpu, "train::redraw_normal: initialize on a host store, then copy to the device");
  LONGSEQ_CHECK(sigma > 0, "train::redraw_normal: sigma = ", sigma, ", expected > 0");
  index_t drawn = 0;
  for (const auto& e : store.entries()) {
    if (e.param->buffer || !select(std::string_view(e.name))) continue;
    T* v = e.param->value.data;
    const index_t n = e.param->shape.numel();
    for (index_t i = 0; i < n; ++i) {
      const double x = rng.normal(0.0, sigma);
      if constexpr (std::is_same_v<T, double>) v[i] = x;
      else v[i] = T(float(x));  // narrow types convert from float
    }
    drawn += n;
  }
  return drawn;
}

template <class T, class D>
index_t redraw_normal(ParamStore<T, D>& store, Rng& rng, double sigma) {
  return redraw_normal(store, rng, sigma, [](std::string_view) { return true; });
}

}  // namespace longseq::train
