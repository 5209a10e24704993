// Diagonal SSM kernels as Vandermonde sums K[c,h,l] = scale * Re sum_m coef[c,h,m] z[h,m]^l, z = exp(log_z),
// with the backward to coef and log_z. S4D, DSS, DLR and the recurrent mode share this form.
#pragma once
#include <complex>
#include <vector>

#include "../core/dtype.hpp"
#include "../core/tensor.hpp"

namespace longseq::ssm {

// The discretized diagonal system of a layer: per channel h and mode m the state multiplier z = exp(log_z)
// and the output coefficient coef (C row already multiplied by B and the discretization factor).
template <class T>
struct DiagonalForm {
  index_t C = 0, H = 0, M = 0;
  T scale = T(2);                      // 2 when each mode stands for a conjugate pair, else 1
  std::vector<std::complex<T>> log_z;  // (H, M)
  std::vector<std::complex<T>> coef;   // (C, H, M)
  void resize(index_t c, index_t h, index_t m) {
    C = c;
    H = h;
    M = m;
    log_z.assign(static_cast<std::size_t>(H * M), {});
    coef.assign(static_cast<std::size_t>(C * H * M), {});
  }
};

// What a diagonal parameterization on a device policy D saves from its forward: the form in the accumulation
// type of T (float for float, bf16 and half; double for double), per-mode factors its backward needs, and the
// kernel in that type when T is narrower (the sums run in A; K is rounded to T once).
template <class T, class D>
struct DeviceDiagonalSaved {
  using A = accum_t<T>;
  Tensor<A, D> coef;   // (C, H, M, 2)
  Tensor<A, D> log_z;  // (H, M, 2)
  Tensor<A, D> aux;    // (H, M, k): the parameterization's derivatives per mode
  Tensor<A, D> K;      // (C, H, L), only when T is not A
  A scale = A(2);
};

namespace detail {

// z^l for l = 0..L-1 in blocks of 8: p = z^l0 times the precomputed z^0..z^7, so the eight products are
// independent (no serial multiply chain), then p *= z^8. Re-anchored with exp every 128 steps so rounding
// does not grow with L. Products are written out: std::complex's operator* checks for NaN/inf through a
// library call, several times slower in these inner loops. f(l0, n, re, im) gets z^(l0+k) = re[k] + i im[k]
// for k < n (n = 8 except at the end; all 8 entries are always filled), so a caller can run a
// fixed-length loop over the block, which the compiler vectorizes.
template <class T, class F>
void for_power_blocks(std::complex<T> log_z, index_t L, F&& f) {
  constexpr int W = 8;
  const std::complex<T> z = std::exp(log_z);
  T zr[W], zi[W];
  zr[0] = 1;
  zi[0] = 0;
  for (int k = 1; k < W; ++k) {
    zr[k] = zr[k - 1] * z.real() - zi[k - 1] * z.imag();
    zi[k] = zr[k - 1] * z.imag() + zi[k - 1] * z.real();
  }
  const T wr = zr[W - 1] * z.real() - zi[W - 1] * z.imag(), wi = zr[W - 1] * z.imag() + zi[W - 1] * z.real();
  T pr = 1, pi = 0;
  T re[W], im[W];
  for (index_t l0 = 0; l0 < L; l0 += W) {
    if (l0 > 0 && (l0 & 127) == 0) {
      std::complex<T> a = std::exp(T(l0) * log_z);
      pr = a.real();
      pi = a.imag();
    }
    for (int k = 0; k < W; ++k) {
      re[k] = pr * zr[k] - pi * zi[k];
      im[k] = pr * zi[k] + pi * zr[k];
    }
    f(l0, L - l0 < W ? L - l0 : index_t(W), static_cast<const T*>(re), static_cast<const T*>(im));
    T nr = pr * wr - pi * wi;
    pi = pr * wi + pi * wr;
    pr = nr;
  }
}

// The same powers one at a time: f(l, z^l).
template <class T, class F>
void for_powers(std::complex<T> log_z, index_t L, F&& f) {
  for_power_blocks(log_z, L, [&](index_t l0, index_t n, const T* re, const T* im) {
    for (index_t k = 0; k < n; ++k) f(l0 + k, std::complex<T>(re[k], im[k]));
  });
}

}  // namespace detail

// K (C, H, L) = scale * Re sum_m coef z^l. Not inlined: one compiled copy gives the same bits at every call
// site. The sums keep their FMAs: their bodies inline nothing that varies between translation units, so
// every unit compiles the same code (the forms' per-mode maths is LONGSEQ_UNFUSED instead, unfused.hpp).
template <class T>
[[gnu::noinline]] void vandermonde_forward(const DiagonalForm<T>& d, TensorView<T> K) {
  index_t L = K.size(2);
#pragma omp parallel for schedule(static) if (d.H * d.M * L > (1 << 15))
  for (index_t h = 0; h < d.H; ++h) {
    for (index_t c = 0; c < d.C; ++c) {
      T* k = K.data + (c * d.H + h) * L;
      for (index_t l = 0; l < L; ++l) k[l] = T(0);
    }
    for (index_t m = 0; m < d.M; ++m) {
      for (index_t c = 0; c < d.C; ++c) {
        std::complex<T> co = d.scale * d.coef[(c * d.H + h) * d.M + m];
        const T cr = co.real(), ci = co.imag();
        T* k = K.data + (c * d.H + h) * L;
        detail::for_powers(d.log_z[h * d.M + m], L,
                           [&](index_t l, std::complex<T> p) { k[l] += cr * p.real() - ci * p.imag(); });
      }
    }
  }
}

// Gradients (as dLoss/dRe + i dLoss/dIm) of coef (C, H, M) and log_z (H, M), written (not accumulated).
template <class T>
[[gnu::noinline]] void vandermonde_backward(const DiagonalForm<T>& d, TensorView<const T> dK, std::vector<std::complex<T>>& g_coef,
                          std::vector<std::complex<T>>& g_log_z) {
  index_t L = dK.size(2);
  g_coef.assign(d.coef.size(), {});
  g_log_z.assign(d.log_z.size(), {});
#pragma omp parallel for schedule(static) if (d.H * d.M * L > (1 << 15))
  for (index_t h = 0; h < d.H; ++h) {
    for (index_t m = 0; m < d.M; ++m) {
      std::complex<T> gz(0);
      for (index_t c = 0; c < d.C; ++c) {
        const T* g = dK.data + (c * d.H + h) * L;
        // s0 = sum_l dK conj(z^l), s1 = sum_l l dK conj(z^l), in 8 lanes (one per position in a block of
        // powers) that the compiler vectorizes; the lanes are added at the end.
        T s0r[8] = {}, s0i[8] = {}, s1r[8] = {}, s1i[8] = {};
        auto add = [&](index_t l0, index_t j, const T* re, const T* im) {
          T qr = g[l0 + j] * re[j], qi = -g[l0 + j] * im[j];
          s0r[j] += qr;
          s0i[j] += qi;
          s1r[j] += T(l0 + j) * qr;
          s1i[j] += T(l0 + j) * qi;
        };
        detail::for_power_blocks(d.log_z[h * d.M + m], L, [&](index_t l0, index_t n, const T* re, const T* im) {
          if (n == 8)
            for (index_t j = 0; j < 8; ++j) add(l0, j, re, im);
          else
            for (index_t j = 0; j < n; ++j) add(l0, j, re, im);
        });
        std::complex<T> s0(0), s1(0);
        for (int j = 0; j < 8; ++j) {
          s0 += std::complex<T>(s0r[j], s0i[j]);
          s1 += std::complex<T>(s1r[j], s1i[j]);
        }
        g_coef[(c * d.H + h) * d.M + m] = d.scale * s0;
        gz += d.scale * std::conj(d.coef[(c * d.H + h) * d.M + m]) * s1;
      }
      g_log_z[h * d.M + m] = gz;
    }
  }
}

}  // namespace longseq::ssm
