// Normalization layers over the last axis: LayerNorm (scale and shift) and RMSNorm (scale only). Both run
// on either device policy (init is host-only).
#pragma once
#include <algorithm>

#include "../ops/elementwise.hpp"
#include "../ops/norm.hpp"
#include "layer.hpp"

namespace longseq::nn {

// y = (x - mean) * rstd * gamma + beta, rstd = 1 / sqrt(var + eps) with the biased variance (as PyTorch).
template <class T, class D = device::host>
struct LayerNorm {
  using value_type = T;
  using device_type = D;
  using W = accum_t<T>;
  struct Config {
    index_t dim = 0;
    double eps = 1e-5;
    bool affine = true;  // learnable gamma and beta
  };
  struct Saved {
    Tensor<T, D> x;           // copy of the input
    Tensor<W, D> mean, rstd;  // per row, in the accumulator type
  };

  Config cfg;
  Param<T, D> weight, bias;  // gamma (dim) and beta (dim), both no_decay

  explicit LayerNorm(Config c)
      : cfg(c),
        weight(Shape{c.affine ? c.dim : 0}, ParamGroup::no_decay),
        bias(Shape{c.affine ? c.dim : 0}, ParamGroup::no_decay) {
    LONGSEQ_CHECK(c.dim > 0, "LayerNorm needs a positive dim, got ", c.dim);
    LONGSEQ_CHECK(c.eps > 0, "LayerNorm needs eps > 0, got ", c.eps);
    if (!c.affine) {  // the op always takes gamma and beta: fixed ones and zeros stand in
      if constexpr (D::is_gpu) {  // device memory is filled by the forward, which has a context
        fixed_gamma_ = Tensor<T, D>(Shape{c.dim});
        fixed_beta_ = Tensor<T, D>(Shape{c.dim});
      } else {
        fixed_gamma_ = Tensor<T, D>(Shape{c.dim}, T(1));
        fixed_beta_ = Tensor<T, D>(Shape{c.dim}, T(0));
      }
      scratch_grad_ = Tensor<T, D>(Shape{c.dim});
    }
  }
  template <class F>
  void parameters(F&& f) {
    if (!cfg.affine) return;
    f("weight", weight);
    f("bias", bias);
  }
  void init(Rng&) {
    if (!cfg.affine) return;
    std::fill(weight.value.data, weight.value.data + cfg.dim, T(1));
    std::fill(bias.value.data, bias.value.data + cfg.dim, T(0));
  }

  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    check_input(x);
    const index_t n = leading_rows(x);
    s.x.resize(x.shape);
    s.mean.resize(Shape{n});
    s.rstd.resize(Shape{n});
    ops::copy<T, T>(ctx, x, s.x.view());
    if constexpr (D::is_gpu) {
      if (!cfg.affine) {
        ops::fill(ctx, fixed_gamma_.view(), T(1));
        ops::fill(ctx, fixed_beta_.view(), T(0));
      }
    }
    ops::layernorm_forward<T>(ctx, x, gamma(), beta(), y, s.mean.view(), s.rstd.view(), W(cfg.eps));
  }

  // dx written; dgamma, dbeta accumulated.
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dy, s.x.shape(), "dy");
    if (cfg.affine)
      ops::layernorm_backward<T>(ctx, s.x.view(), gamma(), s.mean.view(), s.rstd.view(), dy, dx, weight.grad,
                                 bias.grad);
    else if constexpr (D::is_gpu)  // empty (0) views: the device op computes dx only
      ops::layernorm_backward<T>(ctx, s.x.view(), gamma(), s.mean.view(), s.rstd.view(), dy, dx,
                                 TensorView<T, D>(nullptr, Shape{0}), TensorView<T, D>(nullptr, Shape{0}));
    else
      ops::layernorm_backward<T>(ctx, s.x.view(), gamma(), s.mean.view(), s.rstd.view(), dy, dx, scratch_grad_.view(),
                                 scratch_grad_.view());
  }

 private:
  TensorView<const T, D> gamma() const {
    return cfg.affine ? TensorView<const T, D>(weight.value) : fixed_gamma_.view();
  }
  TensorView<const T, D> beta() const { return cfg.affine ? TensorView<const T, D>(bias.value) : fixed_beta_.view(); }
  void check_input(const TensorView<const T, D>& x) const {
    LONGSEQ_CHECK(x.rank() >= 1 && x.size(-1) == cfg.dim, "LayerNorm: tensor 'x' has shape ", x.shape,
                  ", expected last dimension ", cfg.dim);
  }
  Tensor<T, D> fixed_gamma_, fixed_beta_, scratch_grad_;
};

// y = x * rstd * gamma with rstd = 1 / sqrt(mean(x^2) + eps).
template <class T, class D = device::host>
struct RMSNorm {
  using value_type = T;
  using device_type = D;
  using W = accum_t<T>;
  struct Config {
    index_t dim = 0;
    double eps = 1e-6;
  };
  struct Saved {
    Tensor<T, D> x;
    Tensor<W, D> rstd;
  };

  Config cfg;
  Param<T, D> weight;  // gamma (dim), no_decay

  explicit RMSNorm(Config c) : cfg(c), weight(Shape{c.dim}, ParamGroup::no_decay) {
    LONGSEQ_CHECK(c.dim > 0, "RMSNorm needs a positive dim, got ", c.dim);
    LONGSEQ_CHECK(c.eps > 0, "RMSNorm needs eps > 0, got ", c.eps);
  }
  template <class F>
  void parameters(F&& f) {
    f("weight", weight);
  }
  void init(Rng&) { std::fill(weight.value.data, weight.value.data + cfg.dim, T(1)); }

  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    LONGSEQ_CHECK(x.rank() >= 1 && x.size(-1) == cfg.dim, "RMSNorm: tensor 'x' has shape ", x.shape,
                  ", expected last dimension ", cfg.dim);
    const index_t n = leading_rows(x);
    s.x.resize(x.shape);
    s.rstd.resize(Shape{n});
    ops::copy<T, T>(ctx, x, s.x.view());
    ops::rmsnorm_forward<T>(ctx, x, weight.value, y, s.rstd.view(), W(cfg.eps));
  }

  // dx written; dgamma accumulated.
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dy, s.x.shape(), "dy");
    ops::rmsnorm_backward<T>(ctx, s.x.view(), weight.value, s.rstd.view(), dy, dx, weight.grad);
  }
};

static_assert(assert_layer<LayerNorm<float>, float>());
static_assert(assert_layer<RMSNorm<double>, double>());

}  // namespace longseq::nn
