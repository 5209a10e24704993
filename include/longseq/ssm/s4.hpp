// S4 with a diagonal-plus-low-rank state matrix A = Lambda - P P^*: the kernel's generating function is
// evaluated at the roots of unity with a Cauchy kernel and the Woodbury identity, then inverse-FFT'd.
// Bilinear discretization; C is stored already multiplied by (I - dA^l_max) (the finite-length correction).
#pragma once
#include <cmath>
#include <complex>
#include <numbers>
#include <vector>

#include "../ops/fft.hpp"
#include "hippo.hpp"
#include "kernel.hpp"

namespace longseq::ssm {

namespace detail {

using cplx = std::complex<double>;

// Dense complex solve for the explicit discretized matrix (host; references and tests).
// Solves M X = R for X (Gauss-Jordan with partial pivoting); M and R are (n, n).
inline std::vector<cplx> dense_solve(std::vector<cplx> m, std::vector<cplx> r, index_t n) {
  for (index_t col = 0; col < n; ++col) {
    index_t piv = col;
    for (index_t i = col + 1; i < n; ++i)
      if (std::abs(m[i * n + col]) > std::abs(m[piv * n + col])) piv = i;
    LONGSEQ_CHECK(std::abs(m[piv * n + col]) > 1e-300, "S4: singular matrix in the discretization");
    for (index_t j = 0; j < n; ++j) {
      std::swap(m[col * n + j], m[piv * n + j]);
      std::swap(r[col * n + j], r[piv * n + j]);
    }
    cplx inv = 1.0 / m[col * n + col];
    for (index_t j = 0; j < n; ++j) {
      m[col * n + j] *= inv;
      r[col * n + j] *= inv;
    }
    for (index_t i = 0; i < n; ++i) {
      if (i == col) continue;
      cplx f = m[i * n + col];
      if (f == 0.0) continue;
      for (index_t j = 0; j < n; ++j) {
        m[i * n + j] -= f * m[col * n + j];
        r[i * n + j] -= f * r[col * n + j];
      }
    }
  }
  return r;
}

}  // namespace detail

// The bilinear-discretized state matrix of one DPLR system over all 2M eigen-directions (each kept mode
// and its conjugate): A = diag(lambda, conj lambda) - p p^*, p = (P, conj P);
// dA = (I - dt/2 A)^{-1} (I + dt/2 A). Row-major (2M, 2M).
inline std::vector<std::complex<double>> s4_dense_dA(const std::vector<std::complex<double>>& lambda,
                                                     const std::vector<std::complex<double>>& P, double dt) {
  using detail::cplx;
  index_t M = index_t(lambda.size()), n = 2 * M;
  std::vector<cplx> p(static_cast<std::size_t>(n)), A(static_cast<std::size_t>(n * n), 0.0);
  for (index_t i = 0; i < M; ++i) {
    p[i] = P[i];
    p[M + i] = std::conj(P[i]);
    A[i * n + i] = lambda[i];
    A[(M + i) * n + M + i] = std::conj(lambda[i]);
  }
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) A[i * n + j] -= p[i] * std::conj(p[j]);
  std::vector<cplx> lhs(static_cast<std::size_t>(n * n)), rhs(static_cast<std::size_t>(n * n));
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) {
      double id = i == j ? 1.0 : 0.0;
      lhs[i * n + j] = id - 0.5 * dt * A[i * n + j];
      rhs[i * n + j] = id + 0.5 * dt * A[i * n + j];
    }
  return detail::dense_solve(std::move(lhs), std::move(rhs), n);
}

// C~ = C (I - dA^L) on the kept half (the conjugate half is its conjugate): the truncated generating
// function of the kernel at the L-th roots of unity then uses C~ in place of C. The row vector is pushed
// through L steps of dA = (I - dt/2 A)^{-1} (I + dt/2 A), each O(M) by Sherman-Morrison since A is
// diagonal plus rank one, instead of forming dense powers (O(M^3 log L)).
inline std::vector<std::complex<double>> s4_correct_C(const std::vector<std::complex<double>>& C,
                                                      const std::vector<std::complex<double>>& lambda,
                                                      const std::vector<std::complex<double>>& P, double dt,
                                                      index_t L) {
  using detail::cplx;
  index_t M = index_t(C.size()), n = 2 * M;
  LONGSEQ_CHECK(index_t(lambda.size()) == M && index_t(P.size()) == M, "s4_correct_C: C, lambda and P have ", C.size(),
                ", ", lambda.size(), " and ", P.size(), " modes, expected equal");
  std::vector<cplx> lf(static_cast<std::size_t>(n)), pf(static_cast<std::size_t>(n)), x(static_cast<std::size_t>(n)),
      inv_d(static_cast<std::size_t>(n));
  for (index_t i = 0; i < M; ++i) {
    lf[i] = lambda[i];
    lf[M + i] = std::conj(lambda[i]);
    pf[i] = P[i];
    pf[M + i] = std::conj(P[i]);
    x[i] = C[i];
    x[M + i] = std::conj(C[i]);
  }
  // I - dt/2 A = diag(d) + (dt/2) p p^*, d = 1 - dt/2 lambda.
  cplx den = 1.0;
  for (index_t i = 0; i < n; ++i) {
    inv_d[i] = 1.0 / (1.0 - 0.5 * dt * lf[i]);
    den += std::conj(pf[i]) * inv_d[i] * (0.5 * dt) * pf[i];
  }
  for (index_t step = 0; step < L; ++step) {
    cplx wu = 0;  // (x D^{-1}) u
    for (index_t i = 0; i < n; ++i) {
      x[i] *= inv_d[i];
      wu += x[i] * (0.5 * dt) * pf[i];
    }
    cplx f = wu / den, zp = 0;
    for (index_t i = 0; i < n; ++i) {
      x[i] -= f * std::conj(pf[i]) * inv_d[i];
      zp += x[i] * pf[i];
    }
    for (index_t i = 0; i < n; ++i) x[i] = x[i] * (1.0 + 0.5 * dt * lf[i]) - 0.5 * dt * zp * std::conj(pf[i]);
  }
  std::vector<cplx> out(static_cast<std::size_t>(M));
  for (index_t i = 0; i < M; ++i) out[i] = C[i] - x[i];
  return out;
}

// The sizes and options of S4 (the same for every storage type and device policy).
struct S4Config {
  index_t H = 0;         // channels of the layer
  index_t N = 64;        // real state size; N/2 complex modes
  index_t l_max = 0;     // length C is corrected for; the kernel is computed at l_max and truncated
  index_t channels = 1;  // kernels per channel (2 for a bidirectional layer)
  index_t n_ssm = 0;     // independent (Lambda, P, B) copies, channel h uses copy h % n_ssm; 0 means H
  double dt_min = 1e-3, dt_max = 1e-1;
  RandomInit random{};
};

// T is the parameters' storage type and D the device policy they live on (the kernel is computed there too:
// the host loops below, or the Cauchy / Woodbury ops of cuda/s4_kernel.cuh through cuda/s4.cuh).
template <class T, class D = device::host>
struct S4 {
  using value_type = T;
  using device_type = D;
  template <class D2>
  using on_device = S4<T, D2>;
  template <class U>
  using with_value = S4<U, D>;  // the same parameterization in storage type U
  using Config = S4Config;
  struct Saved {
    index_t L = 0;
    Tensor<accum_t<T>, D> work;  // device: the kernel in the accumulation type when T is narrower
  };

  Config cfg;
  index_t M = 0, S = 0;
  Param<T, D> log_dt, log_A_real, A_imag, P, B, C;

  explicit S4(Config c) : cfg(c) {
    LONGSEQ_CHECK(cfg.H >= 1, "S4: H = ", cfg.H, ", expected H >= 1");
    LONGSEQ_CHECK(cfg.N >= 2 && cfg.N % 2 == 0, "S4: state size N = ", cfg.N, ", expected an even N >= 2");
    LONGSEQ_CHECK(cfg.l_max >= 1, "S4: l_max = ", cfg.l_max, ", expected the longest sequence length (>= 1)");
    LONGSEQ_CHECK(cfg.channels == 1 || cfg.channels == 2, "S4: channels = ", cfg.channels, ", expected 1 or 2");
    S = cfg.n_ssm == 0 ? cfg.H : cfg.n_ssm;
    LONGSEQ_CHECK(S >= 1 && cfg.H % S == 0, "S4: n_ssm = ", cfg.n_ssm, " must divide H = ", cfg.H);
    detail::check_dt_range(cfg.dt_min, cfg.dt_max, "S4");
    M = cfg.N / 2;
    log_dt = Param<T, D>(Shape{cfg.H}, ParamGroup::dt);  // own group: the reference trains dt at the global lr
    log_A_real = Param<T, D>(Shape{S, M}, ParamGroup::ssm);
    A_imag = Param<T, D>(Shape{S, M}, ParamGroup::ssm);
    P = Param<T, D>(Shape{S, M, 2}, ParamGroup::ssm);
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
    f("P", P);
    f("B", B);
    f("C", C);
  }

  std::complex<double> lambda(index_t s, index_t n) const {
    return {-std::exp(double(log_A_real.value(s, n))), double(A_imag.value(s, n))};
  }
  std::complex<double> cval(const Param<T>& p, index_t i) const {
    return {double(p.value.data[2 * i]), double(p.value.data[2 * i + 1])};
  }

  // HiPPO-LegS in NPLR form for every copy, C ~ complex standard normal then corrected for l_max.
  void init(Rng& rng) {
    static_assert(on_host<D>, "S4<..., device::cuda>::init: initialization is host-only; initialize the host "
                              "parameterization and copy its parameter values to the device");
    if (cfg.random.enabled) return detail::random_init_all(*this, rng, cfg.random.sigma);
    detail::init_log_dt(log_dt.value, rng, cfg.dt_min, cfg.dt_max);
    const auto& h = hippo::nplr(hippo::Measure::legs, cfg.N);
    for (index_t s = 0; s < S; ++s)
      for (index_t n = 0; n < M; ++n) {
        log_A_real.value(s, n) = T(std::log(-h.w[n].real()));
        A_imag.value(s, n) = T(h.w[n].imag());
        P.value(s, n, 0) = T(h.P[n].real());
        P.value(s, n, 1) = T(h.P[n].imag());
        B.value(s, n, 0) = T(h.B[n].real());
        B.value(s, n, 1) = T(h.B[n].imag());
      }
    detail::fill_normal(C.value, rng, 0.0, std::sqrt(0.5));
    correct_C(cfg.l_max);
  }

  // Replaces C by C (I - dA^L) for every channel (run once after C holds the plain output matrix).
  void correct_C(index_t L) {
#pragma omp parallel for schedule(dynamic, 1)
    for (index_t h = 0; h < cfg.H; ++h) {
      index_t s = h % S;
      std::vector<std::complex<double>> lam(static_cast<std::size_t>(M)), p(static_cast<std::size_t>(M)),
          c(static_cast<std::size_t>(M));
      for (index_t n = 0; n < M; ++n) {
        lam[n] = lambda(s, n);
        p[n] = cval(P, s * M + n);
      }
      double dt = std::exp(double(log_dt.value[h]));
      for (index_t ch = 0; ch < cfg.channels; ++ch) {
        for (index_t n = 0; n < M; ++n) c[n] = cval(C, (ch * cfg.H + h) * M + n);
        auto ct = s4_correct_C(c, lam, p, dt, L);
        for (index_t n = 0; n < M; ++n) {
          C.value(ch, h, n, 0) = T(ct[n].real());
          C.value(ch, h, n, 1) = T(ct[n].imag());
        }
      }
    }
  }

  void kernel_forward(Context<D>& ctx, index_t L, TensorView<T, D> K, Saved& sv) {
    detail::check_kernel_out(K, cfg.channels, cfg.H, L, "S4");
    LONGSEQ_CHECK(L <= cfg.l_max, "S4: requested kernel length L = ", L, " exceeds l_max = ", cfg.l_max,
                  " (C was corrected for l_max)");
    sv.L = L;
    if constexpr (on_host<D>)
      host_kernel_forward(ctx, L, K);
    else
      device_kernel_forward(ctx, *this, L, K, sv);
  }

  void kernel_backward(Context<D>& ctx, Saved& sv, TensorView<const T, D> dK) {
    expect_shape(dK, Shape{cfg.channels, cfg.H, sv.L}, "dK");
    if constexpr (on_host<D>)
      host_kernel_backward(ctx, sv, dK);
    else
      device_kernel_backward(ctx, *this, sv, dK);
  }

 private:
  void host_kernel_forward(Context<device::host>& ctx, index_t L, TensorView<T> K) {
    index_t Lk = cfg.l_max, bins = ops::rfft_bins(Lk), rows = cfg.channels * cfg.H;
    HostScratch& w = host_scratch(rows, bins);
#pragma omp parallel for schedule(dynamic, 1) if (cfg.H * bins * M > (1 << 14))
    for (index_t h = 0; h < cfg.H; ++h) {
      std::complex<double> out[2];  // one per kernel channel (at most 2)
      Modes& md = w.modes[h];
      modes(h, md);
      for (index_t k = 0; k < bins; ++k) {
        node(md, k, out, nullptr);
        for (index_t c = 0; c < cfg.channels; ++c) w.spec((c * cfg.H + h), k) = std::complex<T>(out[c]);
      }
    }
    ops::irfft_forward<T>(ctx, w.spec.view(), w.full.view());
    for (index_t r = 0; r < rows; ++r)
      for (index_t l = 0; l < L; ++l) K.data[r * L + l] = w.full(r, l);
  }

  void host_kernel_backward(Context<device::host>& ctx, Saved& sv, TensorView<const T> dK) {
    index_t L = sv.L, Lk = cfg.l_max, bins = ops::rfft_bins(Lk), rows = cfg.channels * cfg.H;
    HostScratch& w = host_scratch(rows, bins);
    for (index_t r = 0; r < rows; ++r) {
      for (index_t l = 0; l < L; ++l) w.full(r, l) = dK.data[r * L + l];
      for (index_t l = L; l < Lk; ++l) w.full(r, l) = T(0);
    }
    ops::irfft_backward<T>(ctx, w.full.view(), w.spec.view());
    // Channels sharing a copy s add into the same Lambda, P, B grads: accumulate per channel, reduce after.
    std::vector<Grads>& per = w.grads;
#pragma omp parallel for schedule(dynamic, 1) if (cfg.H * bins * M > (1 << 14))
    for (index_t h = 0; h < cfg.H; ++h) {
      Grads& g = per[h];
      g.init(M, cfg.channels);
      std::complex<double> gout[2];
      Modes& md = w.modes[h];
      modes(h, md);
      for (index_t k = 0; k < bins; ++k) {
        for (index_t c = 0; c < cfg.channels; ++c) gout[c] = std::complex<double>(w.spec((c * cfg.H + h), k));
        node(md, k, gout, &g);
      }
    }
    for (index_t h = 0; h < cfg.H; ++h) {
      index_t s = h % S;
      const Grads& g = per[h];
      double dt = std::exp(double(log_dt.value[h]));
      log_dt.grad[h] += T(dt * g.dt);
      for (index_t n = 0; n < M; ++n) {
        double are = std::exp(double(log_A_real.value(s, n)));
        log_A_real.grad(s, n) += T(-are * g.lambda[n].real());
        A_imag.grad(s, n) += T(g.lambda[n].imag());
        P.grad(s, n, 0) += T(g.P[n].real());
        P.grad(s, n, 1) += T(g.P[n].imag());
        B.grad(s, n, 0) += T(g.B[n].real());
        B.grad(s, n, 1) += T(g.B[n].imag());
        for (index_t c = 0; c < cfg.channels; ++c) {
          C.grad(c, h, n, 0) += T(g.C[c * M + n].real());
          C.grad(c, h, n, 1) += T(g.C[c * M + n].imag());
        }
      }
    }
  }

  struct Grads {
    double dt = 0;
    std::vector<std::complex<double>> lambda, P, B, C;
    void init(index_t M, index_t channels) {
      dt = 0;
      lambda.assign(static_cast<std::size_t>(M), 0.0);
      P.assign(static_cast<std::size_t>(M), 0.0);
      B.assign(static_cast<std::size_t>(M), 0.0);
      C.assign(static_cast<std::size_t>(M * channels), 0.0);
    }
  };

  // The parameters of channel h as complex doubles, read once per kernel evaluation.
  struct Modes {
    double dt = 0;
    std::vector<std::complex<double>> lam, p, b, c;  // (M), (M), (M), (channels, M)
  };
  void modes(index_t h, Modes& md) const {
    index_t s = h % S;
    md.dt = std::exp(double(log_dt.value[h]));
    md.lam.resize(static_cast<std::size_t>(M));
    md.p.resize(static_cast<std::size_t>(M));
    md.b.resize(static_cast<std::size_t>(M));
    md.c.resize(static_cast<std::size_t>(cfg.channels * M));
    for (index_t n = 0; n < M; ++n) {
      md.lam[n] = lambda(s, n);
      md.p[n] = cval(P, s * M + n);
      md.b[n] = cval(B, s * M + n);
      for (index_t c = 0; c < cfg.channels; ++c) md.c[c * M + n] = cval(C, (c * cfg.H + h) * M + n);
    }
  }

  // The host kernel's working memory, kept between calls so that later calls do not allocate: the spectrum
  // and the full-length kernel (or their gradients), and per channel its modes and gradient sums.
  struct HostScratch {
    Tensor<std::complex<T>> spec;  // (rows, bins)
    Tensor<T> full;                // (rows, l_max)
    std::vector<Modes> modes;      // (H)
    std::vector<Grads> grads;      // (H)
  };
  struct NoScratch {};
  std::conditional_t<on_host<D>, HostScratch, NoScratch> host_;  // the device kernel keeps its own
  HostScratch& host_scratch(index_t rows, index_t bins) {
    host_.spec.resize(Shape{rows, bins});
    host_.full.resize(Shape{rows, cfg.l_max});
    host_.modes.resize(static_cast<std::size_t>(cfg.H));
    host_.grads.resize(static_cast<std::size_t>(cfg.H));
    return host_;
  }

  // Complex products written out (std::complex's operators check for NaN/inf through library calls).
  static std::complex<double> mul(std::complex<double> a, std::complex<double> b) {
    return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
  }
  static std::complex<double> cmul(std::complex<double> a, std::complex<double> b) {  // conj(a) b
    return {a.real() * b.real() + a.imag() * b.imag(), a.real() * b.imag() - a.imag() * b.real()};
  }
  static std::complex<double> inv(std::complex<double> a) {
    double d = 1.0 / (a.real() * a.real() + a.imag() * a.imag());
    return {a.real() * d, -a.imag() * d};
  }

  // Generating function at node k (z = exp(-2 pi i k / l_max)) for every kernel channel c:
  // Khat = 2/(1+z) * (k00 - k01 k10 / (1 + k11)) with the pair-summed Cauchy sums
  // k_uv = sum_n [v_n / (g - lambda_n) + conj(v_n) / (g - conj lambda_n)], g = 2/dt (1-z)/(1+z).
  // Forward (gr == nullptr): io receives Khat per c. Backward: io holds dLoss/dKhat per c, gr accumulates.
  void node(const Modes& md, index_t k, std::complex<double>* io, Grads* gr) const {
    using cx = std::complex<double>;
    const index_t Lk = cfg.l_max, Cn = cfg.channels;
    const double dt = md.dt;
    if (Lk % 2 == 0 && k == Lk / 2) {
      // z = -1: (I - dA z)^{-1} dB = dt B / 2 exactly, so Khat = dt Re sum_n C_n B_n (no P dependence).
      for (index_t c = 0; c < Cn; ++c) {
        cx F = 0;
        for (index_t n = 0; n < M; ++n) F += mul(md.c[c * M + n], md.b[n]);
        if (!gr) {
          io[c] = dt * F.real();
        } else {
          double gamma = io[c].real();
          gr->dt += gamma * F.real();
          for (index_t n = 0; n < M; ++n) {
            gr->C[c * M + n] += std::conj(md.b[n]) * (gamma * dt);
            gr->B[n] += std::conj(md.c[c * M + n]) * (gamma * dt);
          }
        }
      }
      return;
    }
    double theta = -2.0 * std::numbers::pi * double(k) / double(Lk);
    cx z(std::cos(theta), std::sin(theta));
    cx d = 2.0 * inv(1.0 + z), g = (2.0 / dt) * mul(1.0 - z, inv(1.0 + z));
    // r_n = 1/(g - lambda_n), rb_n = 1/(g - conj lambda_n); sums that do not depend on C: k10, k11.
    std::vector<cx>&r = scratch_r(), &rb = scratch_rb();
    r.resize(static_cast<std::size_t>(M));
    rb.resize(static_cast<std::size_t>(M));
    cx k10 = 0, k11 = 0;
    for (index_t n = 0; n < M; ++n) {
      r[n] = inv(g - md.lam[n]);
      rb[n] = inv(g - std::conj(md.lam[n]));
      cx v10 = cmul(md.p[n], md.b[n]);
      k10 += mul(v10, r[n]) + cmul(v10, rb[n]);
      k11 += std::norm(md.p[n]) * (r[n] + rb[n]);
    }
    cx m = inv(1.0 + k11);
    for (index_t c = 0; c < Cn; ++c) {
      const cx* cc = md.c.data() + c * M;
      cx k00 = 0, k01 = 0;
      for (index_t n = 0; n < M; ++n) {
        cx v00 = mul(cc[n], md.b[n]), v01 = mul(cc[n], md.p[n]);
        k00 += mul(v00, r[n]) + cmul(v00, rb[n]);
        k01 += mul(v01, r[n]) + cmul(v01, rb[n]);
      }
      if (!gr) {
        io[c] = mul(d, k00 - mul(mul(k01, k10), m));
        continue;
      }
      cx gF = cmul(d, io[c]);
      cx g00 = gF, g01 = -cmul(mul(k10, m), gF), g10 = -cmul(mul(k01, m), gF),
         g11 = cmul(mul(mul(k01, k10), mul(m, m)), gF);
      for (index_t n = 0; n < M; ++n) {
        const cx p = md.p[n], b = md.b[n], rn = r[n], rbn = rb[n];
        cx v00 = mul(cc[n], b), v01 = mul(cc[n], p), v10 = cmul(p, b);
        double v11 = std::norm(p);
        // For k = sum v r + conj(v) rb: dL/dv = conj(r) G + conj(G) rb, dL/dr = conj(v) G, dL/drb = v G.
        auto gv = [&](cx G) { return cmul(rn, G) + cmul(G, rbn); };
        cx gv00 = gv(g00), gv01 = gv(g01), gv10 = gv(g10), gv11 = gv(g11);
        cx gr_ = cmul(v00, g00) + cmul(v01, g01) + cmul(v10, g10) + v11 * g11;
        cx grb = mul(v00, g00) + mul(v01, g01) + mul(v10, g10) + v11 * g11;
        gr->C[c * M + n] += cmul(b, gv00) + cmul(p, gv01);
        gr->B[n] += cmul(cc[n], gv00) + mul(p, gv10);
        gr->P[n] += cmul(cc[n], gv01) + cmul(gv10, b) + 2.0 * gv11.real() * p;
        // r = 1/(g - lambda): dr/dlambda = r^2, dr/ddt = r^2 g / dt; rb depends on conj(lambda).
        cx r2 = mul(rn, rn), rb2 = mul(rbn, rbn);
        gr->lambda[n] += cmul(r2, gr_) + cmul(grb, rb2);
        gr->dt += (cmul(gr_, mul(r2, g)) + cmul(grb, mul(rb2, g))).real() / dt;
      }
    }
  }

  // Per-thread buffers for the Cauchy factors of one node.
  static std::vector<std::complex<double>>& scratch_r() {
    thread_local std::vector<std::complex<double>> v;
    return v;
  }
  static std::vector<std::complex<double>>& scratch_rb() {
    thread_local std::vector<std::complex<double>> v;
    return v;
  }
};

}  // namespace longseq::ssm

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // the device kernel, visible wherever the host one is
#include "cuda/s4.cuh"
#endif
