// Retrieval pair head (LRA AAN): the two documents of each pair are encoded as one batch of 2B
// sequences (first B, then B), mean-pooled over their lengths into u and v, and the features
// [u, v, u - v, u * v] go through Linear(4H, H) - GELU - Linear(H, classes) with cross-entropy.
// One template for both device policies; the pair features are an op with a host and a CUDA overload
// (heads/cuda/retrieval.cuh).
#pragma once
#include <cstdint>

#include "../nn/pooling.hpp"
#include "head.hpp"
#include "mlp.hpp"

namespace longseq::heads {

namespace detail {

// feats (B, 4H) = [u, v, u - v, u * v] from pooled (2B, H) = [u; v].
template <class T>
void pair_features_forward(Context<device::host>&, TensorView<const T> pooled, TensorView<T> feats) {
  const index_t b = feats.size(0), h = pooled.size(1);
  for (index_t i = 0; i < b; ++i) {
    const T* u = pooled.data + i * h;
    const T* v = pooled.data + (b + i) * h;
    T* f = feats.data + i * 4 * h;
    for (index_t k = 0; k < h; ++k) {
      f[k] = u[k];
      f[h + k] = v[k];
      f[2 * h + k] = u[k] - v[k];
      f[3 * h + k] = u[k] * v[k];
    }
  }
}

// dpooled (2B, H) written from dfeats (B, 4H).
template <class T>
void pair_features_backward(Context<device::host>&, TensorView<const T> pooled, TensorView<const T> dfeats,
                            TensorView<T> dpooled) {
  const index_t b = dfeats.size(0), h = pooled.size(1);
  for (index_t i = 0; i < b; ++i) {
    const T* u = pooled.data + i * h;
    const T* v = pooled.data + (b + i) * h;
    const T* g = dfeats.data + i * 4 * h;
    T* du = dpooled.data + i * h;
    T* dv = dpooled.data + (b + i) * h;
    for (index_t k = 0; k < h; ++k) {
      du[k] = g[k] + g[2 * h + k] + g[3 * h + k] * v[k];
      dv[k] = g[h + k] - g[2 * h + k] + g[3 * h + k] * u[k];
    }
  }
}

}  // namespace detail
}  // namespace longseq::heads

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads of the pair-feature ops
#include "cuda/retrieval.cuh"
#endif

namespace longseq::heads {

template <class T, class D = device::host>
struct RetrievalHead {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t dim = 0, classes = 2;
    index_t hidden = 0;  // 0: dim
  };
  struct Saved {
    typename nn::Pool<T, D>::Saved pool;
    typename Mlp<T, D>::Saved mlp;
    Tensor<T, D> pooled, feats, logits, dlogits, dfeats, dpooled;
    typename CrossEntropy<T, D>::Saved ce;
  };

  Config cfg;
  nn::Pool<T, D> pool;
  Mlp<T, D> decoder;

  explicit RetrievalHead(Config c)
      : cfg(c), pool({nn::PoolMode::mean}),
        decoder({4 * c.dim, c.classes, c.hidden > 0 ? c.hidden : c.dim, nn::Activation::gelu}) {}
  template <class F>
  void parameters(F&& f) { decoder.parameters(prefixed("decoder", f)); }
  void init(Rng& rng) { decoder.init(rng); }

  // x: (2B, L, H); Targets::classes: (B) pair labels; Targets::lengths: (2B).
  void forward(Context<D>& ctx, TensorView<const T, D> x, const Targets<T, D>& t, Saved& s, BatchStats<D>& out) {
    expect_rank(x, 3, "features");
    const index_t b2 = x.size(0), h = cfg.dim;
    LONGSEQ_CHECK(b2 % 2 == 0, "RetrievalHead: tensor 'features' has shape ", x.shape,
                  ", expected an even batch (both documents of each pair stacked)");
    const index_t b = b2 / 2;
    s.pooled.resize(Shape{b2, h});
    s.feats.resize(Shape{b, 4 * h});
    s.logits.resize(Shape{b, cfg.classes});
    pool.forward(ctx, x, s.pooled.view(), s.pool, t.lengths);
    detail::pair_features_forward<T>(ctx, s.pooled.view(), s.feats.view());
    decoder.forward(ctx, s.feats.view(), s.logits.view(), s.mlp);
    expect_shape(t.classes, Shape{b}, "labels");
    CrossEntropy<T, D>::forward(ctx, s.logits.view(), t.classes, s.ce, out);
  }
  LossStats forward(Context<D>& ctx, TensorView<const T, D> x, const Targets<T, D>& t, Saved& s) {
    forward(ctx, x, t, s, s.ce.stats);
    return s.ce.stats.read(ctx);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<T, D> dx, double scale = 1.0) {
    s.dlogits.resize(s.logits.shape());
    s.dfeats.resize(s.feats.shape());
    s.dpooled.resize(s.pooled.shape());
    CrossEntropy<T, D>::backward(ctx, s.ce, s.dlogits.view(), scale);
    decoder.backward(ctx, s.mlp, s.dlogits.view(), s.dfeats.view());
    detail::pair_features_backward<T>(ctx, s.pooled.view(), s.dfeats.view(), s.dpooled.view());
    pool.backward(ctx, s.pool, s.dpooled.view(), dx);
  }
};

static_assert(assert_head<RetrievalHead<float>, float>());
static_assert(StatsInto<RetrievalHead<float>, float>);

}  // namespace longseq::heads
