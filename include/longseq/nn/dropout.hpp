// Dropout as a layer, per element or tied: one keep/drop decision per (batch, channel) shared by every
// step of the sequence (the S4 reference's `tie_dropout`, like torch's Dropout1d on (B, H, L)).
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../ops/dropout.hpp"
#include "../ops/elementwise.hpp"
#include "layer.hpp"

namespace longseq::nn {

namespace detail {

inline void check_tied_io(const Shape& x, const Shape& y, const char* xname, const char* yname) {
  LONGSEQ_CHECK(x.rank == 3, "tied dropout: tensor '", xname, "' has shape ", x, ", expected (B, L, H)");
  LONGSEQ_CHECK(y == x, "tied dropout: tensor '", yname, "' has shape ", y, ", expected ", x, " (the shape of '",
                xname, "')");
}

// out[b, l, h] = in[b, l, h] keep(b, h) / (1 - p). The mask of (b, h) is element b H + h of the per-element
// rule (ops::dropout_keeps), so the CUDA version draws the same mask. Channels go in chunks whose factors
// sit on the stack: one Philox call per four channels of a batch row, not one per element.
template <class T>
void apply_tied_dropout(Context<device::host>& ctx, const TensorView<const T>& in, const TensorView<T>& out, double p,
                        std::uint64_t seed, std::uint64_t stream) {
  using W = accum_t<T>;
  const index_t B = in.size(0), L = in.size(1), H = in.size(2);
  if (p == 0.0) {
    if (out.data != in.data) std::copy(in.data, in.data + in.numel(), out.data);
    return;
  }
  const float pf = float(p);
  const W scale = W(1) / (W(1) - W(p));
  constexpr index_t chunk = 256;
  const index_t chunks = (H + chunk - 1) / chunk;
  const int nt = ops::detail::threads_for(ctx, in.numel());
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t bc = 0; bc < B * chunks; ++bc) {
    const index_t b = bc / chunks, h0 = (bc % chunks) * chunk, h1 = std::min(H, h0 + chunk);
    W f[chunk];
    for (index_t h = h0; h < h1; ++h)
      f[h - h0] = ops::dropout_keeps(seed, stream, std::uint64_t(b * H + h), pf) ? scale : W(0);
    for (index_t l = 0; l < L; ++l) {
      const T* x = in.data + (b * L + l) * H;
      T* y = out.data + (b * L + l) * H;
      for (index_t h = h0; h < h1; ++h) y[h] = T(W(x[h]) * f[h - h0]);
    }
  }
}

}  // namespace detail

}  // namespace longseq::nn

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // the CUDA apply_tied_dropout, visible wherever the host one is
#include "cuda/dropout.cuh"
#endif

namespace longseq::nn {

namespace detail {

// Both directions are the same product with the same mask: the checks, then out = in * keep(b, h) / (1 - p)
// on whichever device the context names. in_name and out_name are the tensors' names in errors.
template <class T, class D>
void tied_dropout(Context<D>& ctx, const TensorView<const T, D>& in, const TensorView<T, D>& out, double p,
                  std::uint64_t seed, std::uint64_t stream, const char* in_name, const char* out_name) {
  static_assert(Real<T>, "tied dropout: T must be float, double, half or bf16");
  ops::detail::check_dropout_p(p);
  expect_contiguous(in, in_name);
  expect_contiguous(out, out_name);
  check_tied_io(in.shape, out.shape, in_name, out_name);
  apply_tied_dropout<T>(ctx, in, out, p, seed, stream);
}

}  // namespace detail

// y = x * keep(b, h) / (1 - p) for x, y (B, L, H) contiguous (y may alias x); keep(b, h) =
// ops::dropout_keeps(seed, stream, b H + h, p). p = 0 copies x.
template <class T, class D>
void tied_dropout_forward(Context<D>& ctx, std::type_identity_t<TensorView<const T, D>> x, TensorView<T, D> y,
                          double p, std::uint64_t seed, std::uint64_t stream) {
  detail::tied_dropout<T>(ctx, x, y, p, seed, stream, "x", "y");
}

// dx = dy * keep(b, h) / (1 - p), the mask regenerated from (seed, stream); dx written (may alias dy).
template <class T, class D>
void tied_dropout_backward(Context<D>& ctx, std::type_identity_t<TensorView<const T, D>> dy, TensorView<T, D> dx,
                           double p, std::uint64_t seed, std::uint64_t stream) {
  detail::tied_dropout<T>(ctx, dy, dx, p, seed, stream, "dy", "dx");
}

// The mask a dropout draws: per element, or per (batch, channel) shared over the sequence (tied).
enum class DropoutMask { element, tied };

// x (B, L, H) -> y with the mask `mask` (in place allowed); the one entry point the layers below call.
template <class T, class D>
void dropout_forward(Context<D>& ctx, std::type_identity_t<TensorView<const T, D>> x, TensorView<T, D> y, double p,
                     DropoutMask mask, std::uint64_t seed, std::uint64_t stream) {
  if (mask == DropoutMask::tied)
    tied_dropout_forward<T>(ctx, x, y, p, seed, stream);
  else
    ops::dropout_forward<T>(ctx, x, y, p, seed, stream);
}
template <class T, class D>
void dropout_backward(Context<D>& ctx, std::type_identity_t<TensorView<const T, D>> dy, TensorView<T, D> dx, double p,
                      DropoutMask mask, std::uint64_t seed, std::uint64_t stream) {
  if (mask == DropoutMask::tied)
    tied_dropout_backward<T>(ctx, dy, dx, p, seed, stream);
  else
    ops::dropout_backward<T>(ctx, dy, dx, p, seed, stream);
}

// Dropout as a layer on (B, L, H): active only while ctx.training, keyed by (ctx.seed, Config::stream).
template <class T, class D = device::host>
struct Dropout {
  using value_type = T;
  using device_type = D;
  struct Config {
    double p = 0.0;
    DropoutMask mask = DropoutMask::element;
    std::uint64_t stream = 0;  // distinct per layer, so two dropouts of one step draw different masks
  };
  // What the forward applied, so that the backward regenerates the same mask.
  struct Saved {
    double p = 0;  // 0 outside training
    std::uint64_t seed = 0;
  };
  Config cfg;
  explicit Dropout(Config c) : cfg(c) {
    LONGSEQ_CHECK(c.p >= 0 && c.p < 1, "Dropout: p = ", c.p, ", expected [0, 1)");
  }
  template <class F>
  void parameters(F&&) {}
  void init(Rng&) {}
  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    expect_shape(y, x.shape, "y");
    s.p = ctx.training ? cfg.p : 0.0;
    s.seed = ctx.seed;
    if (s.p > 0)
      dropout_forward<T>(ctx, x, y, s.p, cfg.mask, s.seed, cfg.stream);
    else if (y.data != x.data)
      ops::copy<T, T>(ctx, x, y);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dx, dy.shape, "dx");
    if (s.p > 0)
      dropout_backward<T>(ctx, dy, dx, s.p, cfg.mask, s.seed, cfg.stream);
    else if (dx.data != dy.data)
      ops::copy<T, T>(ctx, dy, dx);
  }
};

static_assert(assert_layer<Dropout<float>, float>());

}  // namespace longseq::nn
