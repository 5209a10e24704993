// DSS (diagonal state spaces, Gupta et al. 2022): Lambda shared by all channels, per-channel dt and W;
// exp variant K[l] = Re sum_n W_n (e^{lambda_n dt} - 1)/lambda_n e^{lambda_n dt l}, softmax variant
// K[l] = Re sum_n W_n / lambda_n * e^{lambda_n dt l} / sum_{k<L} e^{lambda_n dt k}.
#pragma once
#include <cmath>

#include "discretization.hpp"
#include "hippo.hpp"
#include "kernel.hpp"
#include "unfused.hpp"
#include "vandermonde.hpp"

namespace longseq::ssm {

enum class DSSVariant { exp, softmax };

// The sizes and options of DSS (the same for every storage type and device policy).
struct DSSConfig {
  index_t H = 0;         // channels of the layer
  index_t N = 64;        // complex modes (no conjugate pairing: the kernel takes Re)
  index_t channels = 1;  // kernels per channel (2 for a bidirectional layer)
  double dt_min = 1e-3, dt_max = 1e-1;
  RandomInit random{};
};

// T is the parameters' storage type and D the device policy they live on (the kernel is computed there too:
// the host loops below, or the device ops of cuda/dss.cuh).
template <class T, DSSVariant Variant = DSSVariant::exp, class D = device::host>
struct DSS {
  using value_type = T;
  using device_type = D;
  template <class D2>
  using on_device = DSS<T, Variant, D2>;
  template <class U>
  using with_value = DSS<U, Variant, D>;  // the same parameterization in storage type U
  static constexpr DSSVariant variant = Variant;
  using Config = DSSConfig;
  struct HostSaved {
    DiagonalForm<T> diag;
    // (H, N): the factor f multiplying W and its derivatives in lambda (complex-analytic) and dt.
    std::vector<std::complex<double>> f, df_dl, df_ddt;
    // The backward's gradients of the form and of lambda, kept here so that later calls reuse their memory.
    std::vector<std::complex<T>> g_coef, g_logz;
    std::vector<std::complex<double>> g_lambda;
  };
  using Saved = std::conditional_t<on_host<D>, HostSaved, DeviceDiagonalSaved<T, D>>;

  Config cfg;
  // exp: lambda = -exp(Lambda_re) + i Lambda_im (Re lambda < 0); softmax: lambda = Lambda_re + i Lambda_im.
  Param<T, D> log_dt, Lambda_re, Lambda_im, W;

  explicit DSS(Config c) : cfg(c) {
    LONGSEQ_CHECK(cfg.H >= 1, "DSS: H = ", cfg.H, ", expected H >= 1");
    LONGSEQ_CHECK(cfg.N >= 1, "DSS: N = ", cfg.N, ", expected N >= 1");
    LONGSEQ_CHECK(cfg.channels == 1 || cfg.channels == 2, "DSS: channels = ", cfg.channels, ", expected 1 or 2");
    detail::check_dt_range(cfg.dt_min, cfg.dt_max, "DSS");
    log_dt = Param<T, D>(Shape{cfg.H}, ParamGroup::ssm);
    Lambda_re = Param<T, D>(Shape{cfg.N}, ParamGroup::ssm);
    Lambda_im = Param<T, D>(Shape{cfg.N}, ParamGroup::ssm);
    W = Param<T, D>(Shape{cfg.channels, cfg.H, cfg.N, 2}, ParamGroup::weight);
  }
  index_t channels() const { return cfg.channels; }
  index_t width() const { return cfg.H; }

  template <class F>
  void parameters(F&& f) {
    f("log_dt", log_dt);
    f(Variant == DSSVariant::exp ? "log_Lambda_re" : "Lambda_re", Lambda_re);
    f("Lambda_im", Lambda_im);
    f("W", W);
  }

  // Lambda: eigenvalues of the normal part of HiPPO-LegS of size 2N, with positive imaginary part
  // (-1/2 + i omega); W ~ complex standard normal.
  void init(Rng& rng) {
    static_assert(on_host<D>, "DSS<..., device::cuda>::init: initialization is host-only; initialize the host "
                              "parameterization and copy its parameter values to the device");
    if (cfg.random.enabled) return detail::random_init_all(*this, rng, cfg.random.sigma);
    detail::init_log_dt(log_dt.value, rng, cfg.dt_min, cfg.dt_max);
    const auto& h = hippo::nplr(hippo::Measure::legs, 2 * cfg.N);
    for (index_t n = 0; n < cfg.N; ++n) {
      std::complex<double> l = std::conj(h.w[n]);
      Lambda_re.value[n] = T(Variant == DSSVariant::exp ? std::log(-l.real()) : l.real());
      Lambda_im.value[n] = T(l.imag());
    }
    detail::fill_normal(W.value, rng, 0.0, std::sqrt(0.5));
  }

  std::complex<double> lambda(index_t n) const {
    double re = double(Lambda_re.value[n]);
    return {Variant == DSSVariant::exp ? -std::exp(re) : re, double(Lambda_im.value[n])};
  }

  // Diagonal form for length L (the softmax normalization depends on L).
  LONGSEQ_UNFUSED void diagonal(index_t L, DiagonalForm<T>& d, Saved* s = nullptr) const {
    index_t H = cfg.H, N = cfg.N;
    d.resize(cfg.channels, H, N);
    d.scale = T(1);
    if (s) {
      s->f.resize(static_cast<std::size_t>(H * N));
      s->df_dl.resize(static_cast<std::size_t>(H * N));
      s->df_ddt.resize(static_cast<std::size_t>(H * N));
    }
    const auto* Wc = detail::as_complex(W.value);
    for (index_t h = 0; h < H; ++h) {
      double dt = std::exp(double(log_dt.value[h]));
      for (index_t n = 0; n < N; ++n) {
        std::complex<double> l = lambda(n), x = l * dt, f, dfl, dfdt;
        if constexpr (Variant == DSSVariant::exp) {
          DiscreteMode m = ZOH::apply(l, dt);
          f = m.dB;
          dfl = m.ddB_da;
          dfdt = m.ddB_ddt;
        } else {
          // S = sum_{k<L} e^{kx}, S' = sum_k k e^{kx}; f = 1/(lambda S). The sums are not shifted, so a
          // growing mode must stay below double's exponent range over the sequence.
          LONGSEQ_CHECK(x.real() * double(L - 1) < 600.0,
                        "DSS softmax: Re(lambda dt) (L - 1) = ", x.real() * double(L - 1), " for mode ", n,
                        " of channel ", h, " would overflow; expected < 600");
          std::complex<double> S = 0, S1 = 0;
          detail::for_powers(x, L, [&](index_t k, std::complex<double> p) {
            S += p;
            S1 += double(k) * p;
          });
          f = 1.0 / (l * S);
          dfl = -f / l - f * S1 * dt / S;
          dfdt = -f * S1 * l / S;
        }
        d.log_z[h * N + n] = std::complex<T>(x);
        for (index_t c = 0; c < cfg.channels; ++c)
          d.coef[(c * H + h) * N + n] = Wc[(c * H + h) * N + n] * std::complex<T>(f);
        if (s) {
          s->f[h * N + n] = f;
          s->df_dl[h * N + n] = dfl;
          s->df_ddt[h * N + n] = dfdt;
        }
      }
    }
  }

  // The softmax variant's normalization depends on the sequence length L.
  DiagonalForm<T> diagonal_form(index_t L) const {
    DiagonalForm<T> d;
    diagonal(L, d);
    return d;
  }

  // The kernel is diagonal_forward followed by vandermonde_forward; its backward vandermonde_backward
  // followed by diagonal_backward (the split lets the Vandermonde sums run elsewhere, e.g. on a GPU).
  void diagonal_forward(index_t L, DiagonalForm<T>& d, Saved& s) const { diagonal(L, d, &s); }

  void kernel_forward(Context<D>& ctx, index_t L, TensorView<T, D> K, Saved& s) {
    detail::check_kernel_out(K, cfg.channels, cfg.H, L, "DSS");
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

  // Chain rule from the gradients of the diagonal form (coef (C, H, N), log_z (H, N), as dRe + i dIm) to
  // every parameter's grad (accumulated), at the factors saved by diagonal_forward.
  LONGSEQ_UNFUSED void diagonal_backward(Saved& s, const std::vector<std::complex<T>>& g_coef,
                                         const std::vector<std::complex<T>>& g_logz) {
    index_t H = cfg.H, N = cfg.N;
    detail::check_diagonal_grads(g_coef.size(), g_logz.size(), cfg.channels, H, N, s.f.size(), "DSS");
    const auto* Wc = detail::as_complex(W.value);
    auto* gW = detail::as_complex(W.grad);
    auto& g_lambda = s.g_lambda;
    g_lambda.assign(static_cast<std::size_t>(N), 0.0);
    for (index_t h = 0; h < H; ++h) {
      double dt = std::exp(double(log_dt.value[h])), g_dt = 0;
      for (index_t n = 0; n < N; ++n) {
        std::complex<double> f = s.f[h * N + n], gf = 0, l = lambda(n);
        for (index_t c = 0; c < cfg.channels; ++c) {
          std::complex<double> gco(g_coef[(c * H + h) * N + n]);
          gW[(c * H + h) * N + n] += std::complex<T>(std::conj(f) * gco);
          gf += std::conj(std::complex<double>(Wc[(c * H + h) * N + n])) * gco;
        }
        std::complex<double> glz(g_logz[h * N + n]);
        // log_z = lambda dt.
        g_lambda[n] += dt * glz + std::conj(s.df_dl[h * N + n]) * gf;
        g_dt += (std::conj(l) * glz + std::conj(s.df_ddt[h * N + n]) * gf).real();
      }
      log_dt.grad[h] += T(dt * g_dt);
    }
    for (index_t n = 0; n < N; ++n) {
      double dre = Variant == DSSVariant::exp ? -std::exp(double(Lambda_re.value[n])) : 1.0;
      Lambda_re.grad[n] += T(dre * g_lambda[n].real());
      Lambda_im.grad[n] += T(g_lambda[n].imag());
    }
  }
};

static_assert(DiagonalKernel<DSS<float>>, "DSS must satisfy ssm::DiagonalKernel");

}  // namespace longseq::ssm

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // the device form, visible wherever the host one is
#include "cuda/dss.cuh"
#endif
