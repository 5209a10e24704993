// Position policies applied to queries and keys inside attention: NoRotation and Rotary (RoPE).
#pragma once
#include <cmath>
#include <string_view>

#include "../core/parameters.hpp"
#include "../core/rng.hpp"
#include "../core/tensor.hpp"

namespace longseq::attention {

// A position policy of MultiHeadAttention: constructed from (Config, head_dim), it rotates q and k
// (B, L, heads * head_dim) in place for positions offset + l, and maps their gradients back.
template <class P, class T>
concept QKPosition = requires(P& p, T* x, index_t n) {
  typename P::Config;
  p.apply(x, n, n, n, n, n);
  p.apply_backward(x, n, n, n, n, n);
};

struct NoRotation {
  struct Config {};
  NoRotation(Config, index_t) {}
  template <class F>
  void parameters(F&&) {}
  void init(Rng&) {}
  template <class T>
  void apply(T*, index_t, index_t, index_t, index_t, index_t) const {}
  template <class T>
  void apply_backward(T*, index_t, index_t, index_t, index_t, index_t) const {}
};

// Rotary embedding (Su et al. 2021) on the first `rot_dim` = fraction * head_dim features of each head
// (rounded down to even). Pair i < rot_dim / 2 is (x[i], x[i + rot_dim / 2]) ("rotate half", as in GPT-NeoX
// and most PyTorch code) or (x[2i], x[2i + 1]) when interleaved; angle = pos * base^(-2i / rot_dim).
struct Rotary {
  struct Config {
    double fraction = 1.0;
    double base = 10000.0;
    bool interleaved = false;
  };
  Config cfg;
  index_t head_dim, rot_dim;

  Rotary(Config c, index_t hd) : cfg(c), head_dim(hd), rot_dim(index_t(c.fraction * double(hd)) / 2 * 2) {
    LONGSEQ_CHECK(c.fraction > 0 && c.fraction <= 1, "Rotary fraction must be in (0, 1], got ", c.fraction);
    LONGSEQ_CHECK(c.base > 1, "Rotary base must be > 1, got ", c.base);
  }
  template <class F>
  void parameters(F&&) {}
  void init(Rng&) {}

  // x: (batch, len, heads * head_dim) contiguous; position of row l is offset + l.
  template <class T>
  void apply(T* x, index_t batch, index_t len, index_t heads, index_t offset, index_t row) const {
    rotate(x, batch, len, heads, offset, row, 1.0);
  }
  // The rotation is orthogonal, so the gradient goes back through the rotation by -angle.
  template <class T>
  void apply_backward(T* g, index_t batch, index_t len, index_t heads, index_t offset, index_t row) const {
    rotate(g, batch, len, heads, offset, row, -1.0);
  }
  double angle(index_t pos, index_t i) const {
    return double(pos) * std::pow(cfg.base, -2.0 * double(i) / double(rot_dim));
  }

 private:
  template <class T>
  void rotate(T* x, index_t batch, index_t len, index_t heads, index_t offset, index_t row, double sign) const {
    const index_t half = rot_dim / 2;
    if (half == 0) return;
#pragma omp parallel for if (batch * len * heads * half > 32768)
    for (index_t l = 0; l < len; ++l)
      for (index_t i = 0; i < half; ++i) {
        const double th = angle(offset + l, i);
        const T c = T(std::cos(th)), s = T(sign * std::sin(th));
        for (index_t b = 0; b < batch; ++b)
          for (index_t h = 0; h < heads; ++h) {
            T* base = x + (b * len + l) * row + h * head_dim;
            T* a = cfg.interleaved ? base + 2 * i : base + i;
            T* z = cfg.interleaved ? base + 2 * i + 1 : base + i + half;
            const T x1 = *a, x2 = *z;
            *a = x1 * c - x2 * s;
            *z = x2 * c + x1 * s;
          }
      }
  }
};

static_assert(QKPosition<NoRotation, float>);
static_assert(QKPosition<Rotary, double>);

}  // namespace longseq::attention

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads, visible wherever the host policies are
#include "cuda/rotary.cuh"
#endif
