// The heads::Head concept and the Targets a head's loss reads: what every SPT or downstream head provides.
#pragma once
#include <concepts>
#include <cstdint>

#include "../nn/layer.hpp"
#include "losses.hpp"

namespace longseq::heads {

// What a batch supervises, as views in D's memory; each head reads the fields it needs and checks their
// shapes.
template <class T, class D = device::host>
struct Targets {
  TensorView<const std::int32_t, D> classes;  // (B, L) per-position class ids, or (B) labels
  TensorView<const T, D> values;               // (B, L) per-position values, or (B, K) regression targets
  TensorView<const std::uint8_t, D> mask;      // (B, L) 1 where a denoising loss is taken
  TensorView<const std::int32_t, D> lengths;   // (B) valid lengths of right-padded sequences; empty: all L
};

// A head: parameters like a layer, a forward from backbone features (B, L, H) to a loss (its mean over
// the counted rows, with metrics), and a backward writing d(scale * loss)/d features.
template <class Hd, class T, class D = device::host>
concept Head = nn::HasSavedType<Hd> && nn::HasParameterWalk<Hd, T, D> && nn::HasInit<Hd> &&
               requires(Hd& h, Context<D>& ctx, TensorView<const T, D> x, const Targets<T, D>& t,
                        typename Hd::Saved& s, TensorView<T, D> dx, double scale) {
                 { h.forward(ctx, x, t, s) } -> std::same_as<LossStats>;
                 h.backward(ctx, s, dx, scale);
               };

// A head that can leave its batch statistics in a BatchStats<D> (on the device: without a copy back), as
// every head here does; train::fit uses it when present and the LossStats-returning forward otherwise.
template <class Hd, class T, class D = device::host>
concept StatsInto = requires(Hd& h, Context<D>& ctx, TensorView<const T, D> x, const Targets<T, D>& t,
                             typename Hd::Saved& s, BatchStats<D>& out) { h.forward(ctx, x, t, s, out); };

// Runs a head's forward (or anything with the same two forms, e.g. a models::Model) with its statistics going
// into `out`: the BatchStats form when it has one, else the LossStats it returns, put into `out`.
template <class H, class Ctx, class X, class Tg, class S, class Out>
void forward_stats(H& h, Ctx& ctx, const X& x, const Tg& t, S& s, Out& out) {
  if constexpr (requires { h.forward(ctx, x, t, s, out); }) h.forward(ctx, x, t, s, out);
  else out.set(ctx, h.forward(ctx, x, t, s));
}

template <class Hd, class T, class D = device::host>
consteval bool assert_head() {
  static_assert(nn::HasSavedType<Hd>, "heads::Head: the type must declare a default-constructible `struct Saved`");
  static_assert(nn::HasParameterWalk<Hd, T, D>,
                "heads::Head: missing `template <class F> void parameters(F&& f)` calling f(name, Param<T, D>&)");
  static_assert(nn::HasInit<Hd>, "heads::Head: missing `void init(Rng&)`");
  static_assert(requires(Hd& h, Context<D>& ctx, TensorView<const T, D> x, const Targets<T, D>& t,
                         typename Hd::Saved& s) {
    { h.forward(ctx, x, t, s) } -> std::same_as<LossStats>;
  }, "heads::Head: missing `LossStats forward(Context<D>&, TensorView<const T, D> x, const Targets<T, D>&, Saved&)`");
  static_assert(requires(Hd& h, Context<D>& ctx, typename Hd::Saved& s, TensorView<T, D> dx, double scale) {
    h.backward(ctx, s, dx, scale);
  }, "heads::Head: missing `void backward(Context<D>&, Saved&, TensorView<T, D> dx, double scale)`");
  return Head<Hd, T, D>;
}

}  // namespace longseq::heads
