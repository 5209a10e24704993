// ConvKernel: a directly learned length-l_max convolution kernel per channel (the unstructured extreme),
// with optional decay and smoothness penalties added to the training loss.
#pragma once
#include <cmath>

#include "kernel.hpp"

namespace longseq::ssm {

// The sizes and options of ConvKernel (the same for every storage type and device policy).
struct ConvKernelConfig {
  index_t H = 0;          // channels of the layer
  index_t l_max = 0;      // longest kernel; shorter inputs use its first L taps
  index_t channels = 1;   // kernels per channel (2 for a bidirectional layer)
  double init_sigma = 0;  // N(0, init_sigma); 0 means 1/sqrt(l_max)
  // Penalty added to the loss: decay * sum_l (l / L)^2 k_l^2 + smooth * sum_l (k_{l+1} - k_l)^2.
  double decay = 0, smooth = 0;
  RandomInit random{};
};

// T is the taps' storage type and D the device policy they live on; the kernel is its parameter (host loops
// below, device ops in cuda/conv_kernel.cuh).
template <class T, class D = device::host>
struct ConvKernel {
  using value_type = T;
  using device_type = D;
  template <class D2>
  using on_device = ConvKernel<T, D2>;
  template <class U>
  using with_value = ConvKernel<U, D>;  // the same parameterization in storage type U
  using Config = ConvKernelConfig;
  struct Saved {
    index_t L = 0;
    double penalty = 0;               // value of the penalty at the last forward (host)
    Tensor<double, D> penalty_rows;   // device: the penalty per (c, h) row, summed when read (no sync per step)
  };

  Config cfg;
  Param<T, D> kernel;

  explicit ConvKernel(Config c) : cfg(c) {
    LONGSEQ_CHECK(cfg.H >= 1, "ConvKernel: H = ", cfg.H, ", expected H >= 1");
    LONGSEQ_CHECK(cfg.l_max >= 1, "ConvKernel: l_max = ", cfg.l_max, ", expected l_max >= 1");
    LONGSEQ_CHECK(cfg.channels == 1 || cfg.channels == 2, "ConvKernel: channels = ", cfg.channels, ", expected 1 or 2");
    LONGSEQ_CHECK(cfg.decay >= 0 && cfg.smooth >= 0, "ConvKernel: penalties decay = ", cfg.decay,
                  " and smooth = ", cfg.smooth, " must be >= 0");
    kernel = Param<T, D>(Shape{cfg.channels, cfg.H, cfg.l_max}, ParamGroup::weight);
  }
  index_t channels() const { return cfg.channels; }
  index_t width() const { return cfg.H; }

  template <class F>
  void parameters(F&& f) {
    f("kernel", kernel);
  }

  void init(Rng& rng) {
    static_assert(on_host<D>, "ConvKernel<..., device::cuda>::init: initialization is host-only; initialize the host "
                              "parameterization and copy its parameter values to the device");
    if (cfg.random.enabled) return detail::random_init_all(*this, rng, cfg.random.sigma);
    double s = cfg.init_sigma > 0 ? cfg.init_sigma : 1.0 / std::sqrt(double(cfg.l_max));
    detail::fill_normal(kernel.value, rng, 0.0, s);
  }

  void kernel_forward(Context<D>& ctx, index_t L, TensorView<T, D> K, Saved& s) {
    LONGSEQ_CHECK(L <= cfg.l_max, "ConvKernel: requested length L = ", L, " exceeds l_max = ", cfg.l_max);
    detail::check_kernel_out(K, cfg.channels, cfg.H, L, "ConvKernel");
    s.L = L;
    s.penalty = 0;
    if constexpr (on_host<D>)
      host_kernel_forward(L, K, s);
    else
      device_kernel_forward(ctx, *this, L, K, s);
  }

  // Adds dK to the first L taps and the gradient of the penalty to every tap.
  void kernel_backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dK) {
    expect_shape(dK, Shape{cfg.channels, cfg.H, s.L}, "dK");
    if constexpr (on_host<D>)
      host_kernel_backward(s, dK);
    else
      device_kernel_backward(ctx, *this, s, dK);
  }

 private:
  void host_kernel_forward(index_t L, TensorView<T> K, Saved& s) {
    index_t rows = cfg.channels * cfg.H;
    for (index_t r = 0; r < rows; ++r) {
      const T* k = kernel.value.data + r * cfg.l_max;
      for (index_t l = 0; l < L; ++l) K.data[r * L + l] = k[l];
      for (index_t l = 0; l < cfg.l_max; ++l) {
        double w = double(l) / double(cfg.l_max);
        s.penalty += cfg.decay * w * w * double(k[l]) * double(k[l]);
        if (l + 1 < cfg.l_max) s.penalty += cfg.smooth * std::pow(double(k[l + 1]) - double(k[l]), 2);
      }
    }
  }

  void host_kernel_backward(Saved& s, TensorView<const T> dK) {
    index_t rows = cfg.channels * cfg.H, L = s.L;
    for (index_t r = 0; r < rows; ++r) {
      const T* k = kernel.value.data + r * cfg.l_max;
      T* g = kernel.grad.data + r * cfg.l_max;
      for (index_t l = 0; l < L; ++l) g[l] += dK.data[r * L + l];
      if (cfg.decay == 0 && cfg.smooth == 0) continue;
      for (index_t l = 0; l < cfg.l_max; ++l) {
        double w = double(l) / double(cfg.l_max);
        double d = 2 * cfg.decay * w * w * double(k[l]);
        if (l + 1 < cfg.l_max) d -= 2 * cfg.smooth * (double(k[l + 1]) - double(k[l]));
        if (l > 0) d += 2 * cfg.smooth * (double(k[l]) - double(k[l - 1]));
        g[l] += T(d);
      }
    }
  }
};

}  // namespace longseq::ssm

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // the device kernel, visible wherever the host one is
#include "cuda/conv_kernel.cuh"
#endif
