// nn::BatchNorm: normalization of each channel of (B, L, H) over all B*L positions, with running
// statistics for evaluation (PyTorch's BatchNorm1d applied to the channels of a sequence).
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "layer.hpp"

namespace longseq::nn {

template <class T, class D>
struct BatchNorm;

// The CUDA forward and backward (nn/cuda/batch_norm.cuh, compiled by nvcc).
template <class T>
void batch_norm_forward(Context<device::cuda>& ctx, BatchNorm<T, device::cuda>& bn, TensorView<const T, device::cuda> x,
                        TensorView<T, device::cuda> y, typename BatchNorm<T, device::cuda>::Saved& s);
template <class T>
void batch_norm_backward(Context<device::cuda>& ctx, BatchNorm<T, device::cuda>& bn,
                         typename BatchNorm<T, device::cuda>::Saved& s, TensorView<const T, device::cuda> dy,
                         TensorView<T, device::cuda> dx);

template <class T, class D = device::host>
struct BatchNorm {
  using value_type = T;
  using device_type = D;
  struct Config {
    index_t dim = 0;
    double eps = 1e-5;
    double momentum = 0.1;  // running = (1 - momentum) * running + momentum * batch statistic
  };
  struct Saved {
    Tensor<T, D> xhat;        // normalized input
    Tensor<double, D> rstd;   // (H) per channel
    bool batch_stats = true;  // whether the forward used batch statistics (training) or running ones
  };

  Config cfg;
  Param<T, D> weight, bias;  // gamma, beta (H), no decay
  // Running statistics live in Param slots so that checkpoints and transfer carry them by name; they
  // never receive a gradient, so every optimizer step leaves them unchanged (AdamW's update is exactly 0).
  Param<T, D> running_mean, running_var;

  explicit BatchNorm(Config c)
      : cfg(c), weight(Shape{c.dim}, ParamGroup::no_decay), bias(Shape{c.dim}, ParamGroup::no_decay),
        running_mean(Shape{c.dim}, ParamGroup::no_decay), running_var(Shape{c.dim}, ParamGroup::no_decay) {
    LONGSEQ_CHECK(c.dim > 0, "BatchNorm needs a positive dim, got ", c.dim);
    LONGSEQ_CHECK(c.eps > 0 && c.momentum >= 0 && c.momentum <= 1, "BatchNorm: eps must be > 0 and momentum in [0, 1]");
    running_mean.buffer = running_var.buffer = true;
  }
  template <class F>
  void parameters(F&& f) {
    f("weight", weight);
    f("bias", bias);
    f("running_mean", running_mean);
    f("running_var", running_var);
  }
  void init(Rng&) {
    static_assert(!D::is_gpu, "BatchNorm::init fills host memory; initialize on the host and copy");
    std::fill_n(weight.value.data, cfg.dim, T(1));
    std::fill_n(bias.value.data, cfg.dim, T(0));
    std::fill_n(running_mean.value.data, cfg.dim, T(0));
    std::fill_n(running_var.value.data, cfg.dim, T(1));
  }

  // ctx.training selects batch statistics (and updates the running ones) or the running statistics.
  void forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    LONGSEQ_CHECK(x.rank() >= 2 && x.size(-1) == cfg.dim, "BatchNorm: tensor 'x' has shape ", x.shape,
                  ", expected (..., ", cfg.dim, ")");
    expect_shape(y, x.shape, "y");
    expect_contiguous(x, "x");
    expect_contiguous(y, "y");
    const index_t n = leading_rows(x);
    s.xhat.resize(x.shape);
    s.rstd.resize(Shape{cfg.dim});
    s.batch_stats = ctx.training;
    if (ctx.training)
      LONGSEQ_CHECK(n > 1, "BatchNorm: training needs more than one position per channel, got input ", x.shape);
    if constexpr (D::is_gpu)
      batch_norm_forward<T>(ctx, *this, x, y, s);
    else
      host_forward(ctx, x, y, s);
  }

 private:
  void host_forward(Context<D>& ctx, TensorView<const T, D> x, TensorView<T, D> y, Saved& s) {
    const index_t n = leading_rows(x), h = cfg.dim;
    std::vector<double> mean(std::size_t(h), 0.0), var(std::size_t(h), 0.0);
    if (ctx.training) {
      for (index_t r = 0; r < n; ++r)
        for (index_t c = 0; c < h; ++c) mean[std::size_t(c)] += double(x.data[r * h + c]);
      for (auto& m : mean) m /= double(n);
      for (index_t r = 0; r < n; ++r)
        for (index_t c = 0; c < h; ++c) {
          const double d = double(x.data[r * h + c]) - mean[std::size_t(c)];
          var[std::size_t(c)] += d * d;
        }
      for (index_t c = 0; c < h; ++c) {
        const double biased = var[std::size_t(c)] / double(n);
        const double unbiased = var[std::size_t(c)] / double(n - 1);
        var[std::size_t(c)] = biased;
        const double m = cfg.momentum;
        running_mean.value.data[c] = T((1 - m) * double(running_mean.value.data[c]) + m * mean[std::size_t(c)]);
        running_var.value.data[c] = T((1 - m) * double(running_var.value.data[c]) + m * unbiased);
      }
    } else {
      for (index_t c = 0; c < h; ++c) {
        mean[std::size_t(c)] = double(running_mean.value.data[c]);
        var[std::size_t(c)] = double(running_var.value.data[c]);
      }
    }
    for (index_t c = 0; c < h; ++c) s.rstd[c] = 1.0 / std::sqrt(var[std::size_t(c)] + cfg.eps);
#pragma omp parallel for if (n * h > 65536)
    for (index_t r = 0; r < n; ++r)
      for (index_t c = 0; c < h; ++c) {
        const double xh = (double(x.data[r * h + c]) - mean[std::size_t(c)]) * s.rstd[c];
        s.xhat[r * h + c] = T(xh);
        y.data[r * h + c] = T(xh * double(weight.value.data[c]) + double(bias.value.data[c]));
      }
  }

 public:
  // Training mode: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma (all means over
  // positions); evaluation mode: the statistics are constants, dx = dy * gamma * rstd.
  void backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    expect_shape(dy, s.xhat.shape(), "dy");
    expect_shape(dx, s.xhat.shape(), "dx");
    if constexpr (D::is_gpu)
      batch_norm_backward<T>(ctx, *this, s, dy, dx);
    else
      host_backward(s, dy, dx);
  }

 private:
  void host_backward(Saved& s, TensorView<const T, D> dy, TensorView<T, D> dx) {
    const index_t n = s.xhat.numel() / cfg.dim, h = cfg.dim;
    std::vector<double> sum_g(std::size_t(h), 0.0), sum_gx(std::size_t(h), 0.0);
    for (index_t r = 0; r < n; ++r)
      for (index_t c = 0; c < h; ++c) {
        const double d = double(dy.data[r * h + c]), xh = double(s.xhat[r * h + c]);
        sum_g[std::size_t(c)] += d;
        sum_gx[std::size_t(c)] += d * xh;
      }
    // Summed in double, rounded to T, then added: the same numbers whether the gradient buffer starts
    // at zero or already holds earlier micro-batches (and as the CUDA layer).
    for (index_t c = 0; c < h; ++c) {
      weight.grad.data[c] += T(sum_gx[std::size_t(c)]);
      bias.grad.data[c] += T(sum_g[std::size_t(c)]);
    }
#pragma omp parallel for if (n * h > 65536)
    for (index_t r = 0; r < n; ++r)
      for (index_t c = 0; c < h; ++c) {
        const double gamma = double(weight.value.data[c]);
        const double d = double(dy.data[r * h + c]);
        if (s.batch_stats) {
          const double xh = double(s.xhat[r * h + c]);
          dx.data[r * h + c] = T(gamma * s.rstd[c] *
                                 (d - sum_g[std::size_t(c)] / double(n) - xh * sum_gx[std::size_t(c)] / double(n)));
        } else {
          dx.data[r * h + c] = T(gamma * s.rstd[c] * d);
        }
      }
  }
};

static_assert(assert_layer<BatchNorm<double>, double>());

}  // namespace longseq::nn

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // the CUDA forward and backward, visible wherever the layer is
#include "cuda/batch_norm.cuh"
#endif
