// nn::Pool: (B, L, H) -> (B, H) by mean over the non-pad positions, max, or the last non-pad position.
// Sequences are right-padded; `lengths` (B) gives each one's valid length (empty: all L positions).
// One template for both device policies: the pooling and its backward are ops with a host and a CUDA
// overload (nn/cuda/pooling.cuh).
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string_view>

#include "layer.hpp"

namespace longseq::nn {

enum class PoolMode { mean, max, last };

inline std::string_view pool_name(PoolMode m) {
  switch (m) {
    case PoolMode::mean: return "mean";
    case PoolMode::max: return "max";
    case PoolMode::last: return "last";
  }
  return "?";
}
inline PoolMode parse_pool(std::string_view s) {
  if (s == "mean" || s == "pool") return PoolMode::mean;
  if (s == "max") return PoolMode::max;
  if (s == "last") return PoolMode::last;
  LONGSEQ_FAIL("unknown pooling '", s, "', expected mean, max or last");
}

namespace detail {

// used[b] = lengths[b] (checked to lie in [1, L]) or L when lengths is empty.
inline void pool_lengths(Context<device::host>&, TensorView<const std::int32_t> lengths, index_t l,
                         TensorView<std::int32_t> used) {
  const index_t b = used.numel();
  if (lengths.data) {
    for (index_t i = 0; i < b; ++i) {
      LONGSEQ_CHECK(lengths[i] >= 1 && lengths[i] <= l, "Pool: tensor 'lengths' holds ", lengths[i], " at batch ", i,
                    ", expected 1 <= length <= ", l);
      used[i] = lengths[i];
    }
  } else {
    for (index_t i = 0; i < b; ++i) used[i] = std::int32_t(l);
  }
}

template <class T>
void pool_forward(Context<device::host>&, PoolMode mode, TensorView<const T> x, TensorView<const std::int32_t> used,
                  TensorView<T> y, TensorView<std::int32_t> argmax) {
  const index_t b = x.size(0), l = x.size(1), h = x.size(2);
  for (index_t i = 0; i < b; ++i) {
    const index_t n = used[i];
    const T* xb = x.data + i * l * h;
    T* yb = y.data + i * h;
    switch (mode) {
      case PoolMode::mean:
        for (index_t c = 0; c < h; ++c) {
          double acc = 0;
          for (index_t t = 0; t < n; ++t) acc += double(xb[t * h + c]);
          yb[c] = T(acc / double(n));
        }
        break;
      case PoolMode::max:
        for (index_t c = 0; c < h; ++c) {
          index_t best = 0;
          for (index_t t = 1; t < n; ++t)
            if (xb[t * h + c] > xb[best * h + c]) best = t;
          yb[c] = xb[best * h + c];
          argmax[i * h + c] = std::int32_t(best);
        }
        break;
      case PoolMode::last:
        for (index_t c = 0; c < h; ++c) yb[c] = xb[(n - 1) * h + c];
        break;
    }
  }
}

// dx (B, L, H) written everywhere: zero where the pooling did not read.
template <class T>
void pool_backward(Context<device::host>&, PoolMode mode, TensorView<const std::int32_t> used,
                   TensorView<const std::int32_t> argmax, TensorView<const T> dy, TensorView<T> dx) {
  const index_t b = dx.size(0), l = dx.size(1), h = dx.size(2);
  std::fill(dx.data, dx.data + dx.numel(), T(0));
  for (index_t i = 0; i < b; ++i) {
    const index_t n = used[i];
    T* db = dx.data + i * l * h;
    const T* g = dy.data + i * h;
    switch (mode) {
      case PoolMode::mean:
        for (index_t t = 0; t < n; ++t)
          for (index_t c = 0; c < h; ++c) db[t * h + c] = T(double(g[c]) / double(n));
        break;
      case PoolMode::max:
        for (index_t c = 0; c < h; ++c) db[index_t(argmax[i * h + c]) * h + c] = g[c];
        break;
      case PoolMode::last:
        for (index_t c = 0; c < h; ++c) db[(n - 1) * h + c] = g[c];
        break;
    }
  }
}

}  // namespace detail
}  // namespace longseq::nn

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads of the pooling ops
#include "cuda/pooling.cuh"
#endif

namespace longseq::nn {

template <class T, class D = device::host>
struct Pool {
  using value_type = T;
  using device_type = D;
  struct Config {
    PoolMode mode = PoolMode::mean;
  };
  struct Saved {
    Shape in_shape;
    Tensor<std::int32_t, D> lengths;  // (B) valid lengths used
    Tensor<std::int32_t, D> argmax;   // (B, H) for max pooling
  };

  Config cfg;
  explicit Pool(Config c = {}) : cfg(c) {}
  template <class F>
  void parameters(F&&) {}
  void init(Rng&) {}

  // On the device a length outside [1, L] is clamped into it (the host throws).
  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s,
               TensorView<const std::int32_t, D> lengths = {}) {
    expect_rank(x, 3, "x");
    expect_contiguous(x, "x");
    const index_t b = x.size(0), l = x.size(1), h = x.size(2);
    expect_shape(y, Shape{b, h}, "y");
    expect_contiguous(y, "y");
    s.in_shape = x.shape;
    s.lengths.resize(Shape{b});
    if (lengths.data) {
      expect_shape(lengths, Shape{b}, "lengths");
    } else {
      LONGSEQ_CHECK(l >= 1, "Pool: empty sequence ", x.shape);
    }
    detail::pool_lengths(ctx, lengths, l, s.lengths.view());
    if (cfg.mode == PoolMode::max) s.argmax.resize(Shape{b, h});
    detail::pool_forward<T>(ctx, cfg.mode, x, TensorView<const std::int32_t, D>(s.lengths.view()), y, s.argmax.view());
  }

  // dx written everywhere (zero at pad positions and at positions the pooling did not use).
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dx, s.in_shape, "dx");
    expect_contiguous(dx, "dx");
    const index_t b = s.in_shape[0], h = s.in_shape[2];
    expect_shape(dy, Shape{b, h}, "dy");
    expect_contiguous(dy, "dy");
    detail::pool_backward<T>(ctx, cfg.mode, TensorView<const std::int32_t, D>(s.lengths.view()),
                             TensorView<const std::int32_t, D>(s.argmax.view()), dy, dx);
  }
};

}  // namespace longseq::nn
