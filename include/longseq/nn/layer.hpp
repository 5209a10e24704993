// The nn::Layer concept: what every layer (linear, norm, mixer, residual block, stack) provides.
#pragma once
#include <concepts>
#include <string_view>

#include "../core/context.hpp"
#include "../core/parameters.hpp"
#include "../core/rng.hpp"
#include "../core/tensor.hpp"

namespace longseq::nn {

// A visitor of the shape every parameters() walk receives: f(name, Param&).
template <class T, class D>
struct ParamVisitorArchetype {
  void operator()(std::string_view, Param<T, D>&) const {}
};

// The pieces are separate concepts so that assert_layer can say which one is missing.
template <class L>
concept HasSavedType = requires {
  typename L::Saved;
}
&&std::default_initializable<typename L::Saved>;

template <class L, class T, class D>
concept HasParameterWalk = requires(L& l, ParamVisitorArchetype<T, D> f) {
  l.parameters(f);
};

template <class L>
concept HasInit = requires(L& l, Rng& rng) {
  l.init(rng);
};

template <class L, class T, class D>
concept HasForward = HasSavedType<L> &&
    requires(L& l, Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, typename L::Saved& s) {
  l.forward(ctx, x, y, s);
};

template <class L, class T, class D>
concept HasBackward = HasSavedType<L> &&
    requires(L& l, Context<D>& ctx, typename L::Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
  l.backward(ctx, s, dy, dx);
};

// A layer: named parameter slots, an initializer, forward saving into Saved, backward from Saved
// (input gradient written, parameter gradients accumulated).
template <class L, class T, class D = device::host>
concept Layer =
    HasSavedType<L> && HasParameterWalk<L, T, D> && HasInit<L> && HasForward<L, T, D> && HasBackward<L, T, D>;

// Use as `static_assert(nn::assert_layer<MyLayer, float>())`: each missing piece fails with its own
// message instead of one long concept diagnostic.
template <class L, class T, class D = device::host>
consteval bool assert_layer() {
  static_assert(HasSavedType<L>, "nn::Layer: the type must declare a default-constructible `struct Saved`");
  static_assert(HasParameterWalk<L, T, D>,
                "nn::Layer: missing `template <class F> void parameters(F&& f)` calling f(name, Param<T, D>&)");
  static_assert(HasInit<L>, "nn::Layer: missing `void init(Rng&)`");
  static_assert(HasForward<L, T, D>,
                "nn::Layer: missing `void forward(Context<D>&, TensorView<const T, D> x, TensorView<T, D> y, Saved&)`");
  static_assert(
      HasBackward<L, T, D>,
      "nn::Layer: missing `void backward(Context<D>&, Saved&, TensorView<const T, D> dy, TensorView<T, D> dx)`");
  return Layer<L, T, D>;
}

// Number of rows when the last axis is the feature axis: (..., H) -> prod(...).
template <class T, class D>
index_t leading_rows(const TensorView<T, D>& x) {
  return x.rank() == 0 ? 0 : x.numel() / x.size(-1);
}

}  // namespace longseq::nn
