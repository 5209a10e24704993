// DLR, the diagonal linear RNN of the paper's Sec. 3.3: Lambda shared by all channels, no discretization,
// K[c,h,l] = Re sum_n W[c,h,n] exp(Lambda_n l).
#pragma once
#include <cmath>
#include <numbers>

#include "kernel.hpp"
#include "unfused.hpp"
#include "vandermonde.hpp"

namespace longseq::ssm {

// The sizes and options of DLR (the same for every storage type and device policy).
struct DLRConfig {
  index_t H = 0;                        // channels of the layer
  index_t N = 1024;                     // complex modes (no conjugate pairing: the kernel takes Re)
  index_t channels = 1;                 // kernels per channel (2 for a bidirectional layer)
  double dt_min = 1e-4, dt_max = 1e-1;  // range of the "omega" init's decay rates (the reference layer's)
  RandomInit random{};
};

// T is the parameters' storage type and D the device policy they live on (the kernel is computed there too:
// the host loops below, or the device ops of cuda/dlr.cuh).
template <class T, class D = device::host>
struct DLR {
  using value_type = T;
  using device_type = D;
  template <class D2>
  using on_device = DLR<T, D2>;
  template <class U>
  using with_value = DLR<U, D>;  // the same parameterization in storage type U
  using Config = DLRConfig;
  struct HostSaved {
    DiagonalForm<T> diag;
    // The backward's gradients of the form, kept here so that later calls reuse their memory.
    std::vector<std::complex<T>> g_coef, g_logz;
  };
  using Saved = std::conditional_t<on_host<D>, HostSaved, DeviceDiagonalSaved<T, D>>;

  Config cfg;
  // Lambda_n = -Lambda_r_n^2 + i Lambda_theta_n keeps Re Lambda <= 0. Groups as the reference trains them:
  // Lambda_theta and W at its layer rate (1e-4, the `ssm` group), Lambda_r in the `dt` group (the global lr,
  // no decay): the reference's rate for the real part resolves to none, because its fallback to Lambda's
  // rate is written into the caller's options instead of the layer's.
  Param<T, D> Lambda_r, Lambda_theta, W;

  explicit DLR(Config c) : cfg(c) {
    LONGSEQ_CHECK(cfg.H >= 1, "DLR: H = ", cfg.H, ", expected H >= 1");
    LONGSEQ_CHECK(cfg.N >= 1, "DLR: N = ", cfg.N, ", expected N >= 1");
    LONGSEQ_CHECK(cfg.channels == 1 || cfg.channels == 2, "DLR: channels = ", cfg.channels, ", expected 1 or 2");
    detail::check_dt_range(cfg.dt_min, cfg.dt_max, "DLR");
    Lambda_r = Param<T, D>(Shape{cfg.N}, ParamGroup::dt);
    Lambda_theta = Param<T, D>(Shape{cfg.N}, ParamGroup::ssm);
    W = Param<T, D>(Shape{cfg.channels, cfg.H, cfg.N, 2}, ParamGroup::ssm);
  }
  index_t channels() const { return cfg.channels; }
  index_t width() const { return cfg.H; }

  template <class F>
  void parameters(F&& f) {
    f("Lambda_r", Lambda_r);
    f("Lambda_theta", Lambda_theta);
    f("W", W);
  }

  // "omega" init: Re Lambda_n = -dt_n / 2 with dt_n log-uniform in [dt_min, dt_max], Im Lambda_n = 2 pi n / N;
  // W = (a + i b) / N with a, b ~ N(0, 1): each part has standard deviation 1/N, as in the reference.
  void init(Rng& rng) {
    static_assert(on_host<D>, "DLR<..., device::cuda>::init: initialization is host-only; initialize the host "
                              "parameterization and copy its parameter values to the device");
    if (cfg.random.enabled) return detail::random_init_all(*this, rng, cfg.random.sigma);
    for (index_t n = 0; n < cfg.N; ++n) {
      double dt = std::exp(rng.uniform(std::log(cfg.dt_min), std::log(cfg.dt_max)));
      Lambda_r.value[n] = T(std::sqrt(0.5 * dt));
      Lambda_theta.value[n] = T(2 * std::numbers::pi * double(n) / double(cfg.N));
    }
    detail::fill_normal(W.value, rng, 0.0, 1.0 / double(cfg.N));
  }

  LONGSEQ_UNFUSED void diagonal(DiagonalForm<T>& d) const {
    index_t H = cfg.H, N = cfg.N;
    d.resize(cfg.channels, H, N);
    d.scale = T(1);
    for (index_t h = 0; h < H; ++h)
      for (index_t n = 0; n < N; ++n)
        d.log_z[h * N + n] = {-Lambda_r.value[n] * Lambda_r.value[n], Lambda_theta.value[n]};
    const auto* Wc = detail::as_complex(W.value);
    std::copy(Wc, Wc + cfg.channels * H * N, d.coef.begin());
  }

  DiagonalForm<T> diagonal_form([[maybe_unused]] index_t L) const {
    DiagonalForm<T> d;
    diagonal(d);
    return d;
  }

  // The kernel is diagonal_forward followed by vandermonde_forward; its backward vandermonde_backward
  // followed by diagonal_backward (the split lets the Vandermonde sums run elsewhere, e.g. on a GPU).
  void diagonal_forward([[maybe_unused]] index_t L, DiagonalForm<T>& d, [[maybe_unused]] Saved& s) const {
    diagonal(d);
  }

  void kernel_forward(Context<D>& ctx, index_t L, TensorView<T, D> K, Saved& s) {
    detail::check_kernel_out(K, cfg.channels, cfg.H, L, "DLR");
    if constexpr (on_host<D>) {
      diagonal_forward(L, s.diag, s);
      vandermonde_forward(s.diag, K);
    } else {
      device_kernel_forward(ctx, *this, L, K, s);
    }
  }

  void kernel_backward(Context<D>& ctx, Saved& s, TensorView<const T, D> dK) {
    expect_rank(dK, 3, "dK");
    expect_shape(dK, Shape{cfg.channels, cfg.H, dK.size(2)}, "dK");
    if constexpr (on_host<D>) {
      vandermonde_backward(s.diag, dK, s.g_coef, s.g_logz);
      diagonal_backward(s, s.g_coef, s.g_logz);
    } else {
      device_kernel_backward(ctx, *this, s, dK);
    }
  }

  // Chain rule from the gradients of the diagonal form (coef = W (C, H, N), log_z = Lambda (H, N), as
  // dRe + i dIm) to every parameter's grad (accumulated). The form is linear in W: nothing is saved.
  LONGSEQ_UNFUSED void diagonal_backward([[maybe_unused]] Saved& s, const std::vector<std::complex<T>>& g_coef,
                                         const std::vector<std::complex<T>>& g_logz) {
    detail::check_diagonal_grads(g_coef.size(), g_logz.size(), cfg.channels, cfg.H, cfg.N,
                                 std::size_t(cfg.H * cfg.N), "DLR");
    auto* gW = detail::as_complex(W.grad);
    for (std::size_t i = 0; i < g_coef.size(); ++i) gW[i] += g_coef[i];
    for (index_t h = 0; h < cfg.H; ++h)
      for (index_t n = 0; n < cfg.N; ++n) {
        std::complex<T> g = g_logz[h * cfg.N + n];
        Lambda_r.grad[n] += T(-2) * Lambda_r.value[n] * g.real();
        Lambda_theta.grad[n] += g.imag();
      }
  }
};

static_assert(DiagonalKernel<DLR<float>>, "DLR must satisfy ssm::DiagonalKernel");

}  // namespace longseq::ssm

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // the device form, visible wherever the host one is
#include "cuda/dlr.cuh"
#endif
