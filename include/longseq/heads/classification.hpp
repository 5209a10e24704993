// Downstream heads on pooled features: classification (pool + Linear or MLP, cross-entropy on labels)
// and regression (pool + Linear, mean squared error), on either device policy: every step is a layer or
// loss op with a host and a CUDA overload.
#pragma once
#include <cstdint>

#include "../nn/pooling.hpp"
#include "head.hpp"
#include "mlp.hpp"

namespace longseq::heads {

template <class T, class D = device::host>
struct ClassificationHead {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t dim = 0, classes = 2;
    nn::PoolMode pool = nn::PoolMode::mean;
    index_t hidden = 0;  // > 0: Linear(dim, hidden) - ReLU - Linear(hidden, classes)
  };
  struct Saved {
    typename nn::Pool<T, D>::Saved pool;
    typename Mlp<T, D>::Saved mlp;
    Tensor<T, D> pooled, logits, dlogits, dpooled;
    typename CrossEntropy<T, D>::Saved ce;
  };

  Config cfg;
  nn::Pool<T, D> pool;
  Mlp<T, D> decoder;

  explicit ClassificationHead(Config c)
      : cfg(c), pool({c.pool}), decoder({c.dim, c.classes, c.hidden, nn::Activation::relu}) {}
  template <class F>
  void parameters(F&& f) { decoder.parameters(prefixed("decoder", f)); }
  void init(Rng& rng) { decoder.init(rng); }

  // The batch's statistics into `out`, left on the device (heads::BatchStats).
  void forward(Context<D>& ctx, TensorView<const T, D> x, const Targets<T, D>& t, Saved& s, BatchStats<D>& out) {
    expect_rank(x, 3, "features");
    const index_t b = x.size(0);
    s.pooled.resize(Shape{b, cfg.dim});
    s.logits.resize(Shape{b, cfg.classes});
    pool.forward(ctx, x, s.pooled.view(), s.pool, t.lengths);
    decoder.forward(ctx, s.pooled.view(), s.logits.view(), s.mlp);
    expect_shape(t.classes, Shape{b}, "labels");
    CrossEntropy<T, D>::forward(ctx, s.logits.view(), t.classes, s.ce, out);
  }
  LossStats forward(Context<D>& ctx, TensorView<const T, D> x, const Targets<T, D>& t, Saved& s) {
    forward(ctx, x, t, s, s.ce.stats);
    return s.ce.stats.read(ctx);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<T, D> dx, double scale = 1.0) {
    s.dlogits.resize(s.logits.shape());
    s.dpooled.resize(s.pooled.shape());
    CrossEntropy<T, D>::backward(ctx, s.ce, s.dlogits.view(), scale);
    decoder.backward(ctx, s.mlp, s.dlogits.view(), s.dpooled.view());
    pool.backward(ctx, s.pool, s.dpooled.view(), dx);
  }
  // Logits (B, classes) of the last forward.
  TensorView<const T, D> logits(const Saved& s) const { return s.logits.view(); }
};

template <class T, class D = device::host>
struct RegressionHead {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t dim = 0, outputs = 1;
    nn::PoolMode pool = nn::PoolMode::mean;
  };
  struct Saved {
    typename nn::Pool<T, D>::Saved pool;
    typename nn::Linear<T, D>::Saved linear;
    Tensor<T, D> pooled, pred, dpred, dpooled;
    typename MeanSquaredError<T, D>::Saved mse;
  };

  Config cfg;
  nn::Pool<T, D> pool;
  nn::Linear<T, D> proj;

  explicit RegressionHead(Config c) : cfg(c), pool({c.pool}), proj({c.dim, c.outputs, true}) {}
  template <class F>
  void parameters(F&& f) { proj.parameters(prefixed("proj", f)); }
  void init(Rng& rng) { proj.init(rng); }

  void forward(Context<D>& ctx, TensorView<const T, D> x, const Targets<T, D>& t, Saved& s, BatchStats<D>& out) {
    expect_rank(x, 3, "features");
    const index_t b = x.size(0);
    s.pooled.resize(Shape{b, cfg.dim});
    s.pred.resize(Shape{b, cfg.outputs});
    pool.forward(ctx, x, s.pooled.view(), s.pool, t.lengths);
    proj.forward(ctx, s.pooled.view(), s.pred.view(), s.linear);
    expect_shape(t.values, Shape{b, cfg.outputs}, "targets");
    MeanSquaredError<T, D>::forward(ctx, s.pred.view(), t.values, s.mse, out);
  }
  LossStats forward(Context<D>& ctx, TensorView<const T, D> x, const Targets<T, D>& t, Saved& s) {
    forward(ctx, x, t, s, s.mse.stats);
    return s.mse.stats.read(ctx);
  }
  void backward(Context<D>& ctx, Saved& s, TensorView<T, D> dx, double scale = 1.0) {
    s.dpred.resize(s.pred.shape());
    s.dpooled.resize(s.pooled.shape());
    MeanSquaredError<T, D>::backward(ctx, s.mse, s.dpred.view(), scale);
    proj.backward(ctx, s.linear, s.dpred.view(), s.dpooled.view());
    pool.backward(ctx, s.pool, s.dpooled.view(), dx);
  }
};

static_assert(assert_head<ClassificationHead<float>, float>());
static_assert(assert_head<RegressionHead<double>, double>());
static_assert(StatsInto<ClassificationHead<float>, float> && StatsInto<RegressionHead<double>, double>);
#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)
static_assert(assert_head<ClassificationHead<float, device::cuda>, float, device::cuda>());
#endif

}  // namespace longseq::heads
