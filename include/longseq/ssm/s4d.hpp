// S4D: diagonal state matrix, Vandermonde kernel, discretization as a policy (ZOH by default).
#pragma once
#include <cmath>
#include <numbers>

#include "discretization.hpp"
#include "hippo.hpp"
#include "kernel.hpp"
#include "unfused.hpp"
#include "vandermonde.hpp"

namespace longseq::ssm {

// Initializations of the diagonal A = -a_re + i a_im (one mode per conjugate pair, modes n < N/2):
// legs: the eigenvalues and B of the normal part of HiPPO-LegS; lin: a_re = 1/2, a_im = -pi n;
// inv: a_im = -(N/pi)(N/(2n+1) - 1); real: A = -(n+1); random: a_im = -exp(N(0,1)). B = 1 except legs.
enum class S4DInit { legs, lin, inv, real, random };

// The sizes and options of S4D (the same for every storage type and device policy).
struct S4DConfig {
  index_t H = 0;         // channels of the layer
  index_t N = 64;        // real state size; N/2 complex modes
  index_t channels = 1;  // kernels per channel (2 for a bidirectional layer)
  index_t n_ssm = 0;     // independent (A, B) copies, channel h uses copy h % n_ssm; 0 means H
  double dt_min = 1e-3, dt_max = 1e-1;
  S4DInit init = S4DInit::legs;
  RandomInit random{};
};

// T is the parameters' storage type and D the device policy they live on (the kernel is computed there too:
// the host loops below, or the device ops of cuda/s4d.cuh).
template <class T, Discretization Disc = ZOH, class D = device::host>
struct S4D {
  using value_type = T;
  using device_type = D;
  using discretization = Disc;
  template <class D2>
  using on_device = S4D<T, Disc, D2>;
  template <class U>
  using with_value = S4D<U, Disc, D>;  // the same parameterization in storage type U
  using Config = S4DConfig;
  struct HostSaved {
    DiagonalForm<T> diag;
    std::vector<DiscreteMode> modes;  // (H, M)
    // The backward's gradients of the form, kept here so that later calls reuse their memory.
    std::vector<std::complex<T>> g_coef, g_logz;
  };
  using Saved = std::conditional_t<on_host<D>, HostSaved, DeviceDiagonalSaved<T, D>>;

  Config cfg;
  index_t M = 0, S = 0;  // modes, copies
  Param<T, D> log_dt, log_A_real, A_imag, B, C;

  explicit S4D(Config c) : cfg(c) {
    LONGSEQ_CHECK(cfg.H >= 1, "S4D: H = ", cfg.H, ", expected H >= 1");
    LONGSEQ_CHECK(cfg.N >= 2 && cfg.N % 2 == 0, "S4D: state size N = ", cfg.N, ", expected an even N >= 2");
    LONGSEQ_CHECK(cfg.channels == 1 || cfg.channels == 2, "S4D: channels = ", cfg.channels, ", expected 1 or 2");
    S = cfg.n_ssm == 0 ? cfg.H : cfg.n_ssm;
    LONGSEQ_CHECK(S >= 1 && cfg.H % S == 0, "S4D: n_ssm = ", cfg.n_ssm, " must divide H = ", cfg.H);
    detail::check_dt_range(cfg.dt_min, cfg.dt_max, "S4D");
    M = cfg.N / 2;
    log_dt = Param<T, D>(Shape{cfg.H}, ParamGroup::dt);  // own group: the reference trains dt at the global lr
    log_A_real = Param<T, D>(Shape{S, M}, ParamGroup::ssm);
    A_imag = Param<T, D>(Shape{S, M}, ParamGroup::ssm);
    B = Param<T, D>(Shape{S, M, 2}, ParamGroup::ssm);
    C = Param<T, D>(Shape{cfg.channels, cfg.H, M, 2}, ParamGroup::weight);
  }
  index_t channels() const { return cfg.channels; }
  index_t width() const { return cfg.H; }

  template <class F>
  void parameters(F&& f) {
    f("log_dt", log_dt);
    f("log_A_real", log_A_real);
    f("A_imag", A_imag);
    f("B", B);
    f("C", C);
  }

  void init(Rng& rng) {
    static_assert(on_host<D>, "S4D<..., device::cuda>::init: initialization is host-only; initialize the host "
                              "parameterization and copy its parameter values to the device");
    if (cfg.random.enabled) return detail::random_init_all(*this, rng, cfg.random.sigma);
    detail::init_log_dt(log_dt.value, rng, cfg.dt_min, cfg.dt_max);
    std::vector<std::complex<double>> a(static_cast<std::size_t>(M)), b(static_cast<std::size_t>(M), 1.0);
    const double N = double(cfg.N), pi = std::numbers::pi;
    if (cfg.init == S4DInit::legs) {
      const auto& h = hippo::nplr(hippo::Measure::legs, cfg.N);
      a = h.w;
      b = h.B;
    }
    for (index_t s = 0; s < S; ++s)
      for (index_t n = 0; n < M; ++n) {
        std::complex<double> an;
        switch (cfg.init) {
          case S4DInit::legs:
            an = a[n];
            break;
          case S4DInit::lin:
            an = {-0.5, -pi * double(n)};
            break;
          case S4DInit::inv:
            an = {-0.5, -N / pi * (N / (2.0 * double(n) + 1) - 1)};
            break;
          case S4DInit::real:
            an = {-(1.0 + double(n)), 0.0};
            break;
          case S4DInit::random:
            an = {-0.5, -std::exp(rng.normal())};
            break;
        }
        log_A_real.value(s, n) = T(std::log(-an.real()));
        A_imag.value(s, n) = T(an.imag());
        B.value(s, n, 0) = T(b[n].real());
        B.value(s, n, 1) = T(b[n].imag());
      }
    // C ~ complex standard normal (variance 1/2 per component).
    detail::fill_normal(C.value, rng, 0.0, std::sqrt(0.5));
  }

  // The discretized diagonal system (also used by the recurrent mode).
  LONGSEQ_UNFUSED void diagonal(DiagonalForm<T>& d, std::vector<DiscreteMode>* modes = nullptr) const {
    index_t H = cfg.H, Cn = cfg.channels;
    d.resize(Cn, H, M);
    d.scale = T(2);
    if (modes) modes->resize(static_cast<std::size_t>(H * M));
    const auto* Bc = detail::as_complex(B.value);
    const auto* Cc = detail::as_complex(C.value);
    for (index_t h = 0; h < H; ++h) {
      index_t s = h % S;
      double dt = std::exp(double(log_dt.value[h]));
      for (index_t n = 0; n < M; ++n) {
        std::complex<double> a(-std::exp(double(log_A_real.value(s, n))), double(A_imag.value(s, n)));
        DiscreteMode md = Disc::apply(a, dt);
        d.log_z[h * M + n] = std::complex<T>(md.log_dA);
        std::complex<T> bd = Bc[s * M + n] * std::complex<T>(md.dB);
        for (index_t c = 0; c < Cn; ++c) d.coef[(c * H + h) * M + n] = Cc[(c * H + h) * M + n] * bd;
        if (modes) (*modes)[h * M + n] = md;
      }
    }
  }

  DiagonalForm<T> diagonal_form([[maybe_unused]] index_t L) const {
    DiagonalForm<T> d;
    diagonal(d);
    return d;
  }

  // The kernel is diagonal_forward followed by vandermonde_forward; its backward vandermonde_backward
  // followed by diagonal_backward (the split lets the Vandermonde sums run elsewhere, e.g. on a GPU).
  void diagonal_forward([[maybe_unused]] index_t L, DiagonalForm<T>& d, Saved& s) const { diagonal(d, &s.modes); }

  void kernel_forward(Context<D>& ctx, index_t L, TensorView<T, D> K, Saved& s) {
    detail::check_kernel_out(K, cfg.channels, cfg.H, L, "S4D");
    if constexpr (on_host<D>) {
      diagonal_forward(L, s.diag, s);
      vandermonde_forward(s.diag, K);
    } else {
      device_kernel_forward(ctx, *this, L, K, s);
    }
  }

  void kernel_backward(Context<D>& ctx, Saved& sv, TensorView<const T, D> dK) {
    expect_rank(dK, 3, "dK");
    expect_shape(dK, Shape{cfg.channels, cfg.H, dK.size(2)}, "dK");
    if constexpr (on_host<D>) {
      vandermonde_backward(sv.diag, dK, sv.g_coef, sv.g_logz);
      diagonal_backward(sv, sv.g_coef, sv.g_logz);
    } else {
      device_kernel_backward(ctx, *this, sv, dK);
    }
  }

  // Chain rule from the gradients of the diagonal form (coef (C, H, M), log_z (H, M), as dRe + i dIm) to
  // every parameter's grad (accumulated), at the modes saved by diagonal_forward.
  LONGSEQ_UNFUSED void diagonal_backward(Saved& sv, const std::vector<std::complex<T>>& g_coef,
                                         const std::vector<std::complex<T>>& g_logz) {
    index_t H = cfg.H, Cn = cfg.channels;
    detail::check_diagonal_grads(g_coef.size(), g_logz.size(), Cn, H, M, sv.modes.size(), "S4D");
    const auto* Bc = detail::as_complex(B.value);
    const auto* Cc = detail::as_complex(C.value);
    auto* gB = detail::as_complex(B.grad);
    auto* gC = detail::as_complex(C.grad);
    for (index_t h = 0; h < H; ++h) {
      index_t s = h % S;
      double dt = std::exp(double(log_dt.value[h]));
      double g_dt = 0;
      for (index_t n = 0; n < M; ++n) {
        const DiscreteMode& md = sv.modes[h * M + n];
        std::complex<double> b = std::complex<double>(Bc[s * M + n]), gdB = 0, gb = 0;
        for (index_t c = 0; c < Cn; ++c) {
          std::complex<double> gco(g_coef[(c * H + h) * M + n]), cc(Cc[(c * H + h) * M + n]);
          gC[(c * H + h) * M + n] += std::complex<T>(std::conj(b * md.dB) * gco);
          gb += std::conj(cc * md.dB) * gco;
          gdB += std::conj(cc * b) * gco;
        }
        gB[s * M + n] += std::complex<T>(gb);
        std::complex<double> glz(g_logz[h * M + n]);
        std::complex<double> ga = std::conj(md.dlog_dA_da) * glz + std::conj(md.ddB_da) * gdB;
        g_dt += (std::conj(md.dlog_dA_ddt) * glz + std::conj(md.ddB_ddt) * gdB).real();
        double are = std::exp(double(log_A_real.value(s, n)));
        log_A_real.grad(s, n) += T(-are * ga.real());
        A_imag.grad(s, n) += T(ga.imag());
      }
      log_dt.grad[h] += T(dt * g_dt);
    }
  }
};

static_assert(DiagonalKernel<S4D<float>>, "S4D must satisfy ssm::DiagonalKernel");

}  // namespace longseq::ssm

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // the device form, visible wherever the host one is
#include "cuda/s4d.cuh"
#endif
