// Eigen-decomposition of a small complex Hermitian matrix by cyclic Jacobi rotations (double precision).
#pragma once
#include <cmath>
#include <complex>
#include <vector>

#include "../core/error.hpp"
#include "../core/shape.hpp"

namespace longseq::ssm {

// Result of hermitian_eigen: H = V diag(values) V^*, V unitary (column j is the eigenvector of values[j]).
struct HermitianEigen {
  index_t n = 0;
  std::vector<double> values;                 // (n), unsorted
  std::vector<std::complex<double>> vectors;  // (n, n) row-major, columns are eigenvectors
};

// Jacobi is quadratically convergent and accurate to machine precision for the small matrices HiPPO
// needs (n <= a few hundred); each rotation first turns H[p][q] real by a phase on index q, then
// applies the real symmetric 2x2 rotation that zeroes it.
inline HermitianEigen hermitian_eigen(std::vector<std::complex<double>> H, index_t n, int max_sweeps = 60) {
  using C = std::complex<double>;
  LONGSEQ_CHECK(n >= 1 && index_t(H.size()) == n * n, "hermitian_eigen: matrix of ", H.size(),
                " entries, expected n*n with n = ", n);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j)
      LONGSEQ_CHECK(std::abs(H[i * n + j] - std::conj(H[j * n + i])) <= 1e-9 * (1 + std::abs(H[i * n + j])),
                    "hermitian_eigen: matrix is not Hermitian at (", i, ", ", j, ")");
  std::vector<C> V(static_cast<std::size_t>(n * n), C(0));
  for (index_t i = 0; i < n; ++i) V[i * n + i] = 1;
  auto off_norm = [&] {
    double s = 0;
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < n; ++j)
        if (i != j) s += std::norm(H[i * n + j]);
    return s;
  };
  double total = 0;
  for (auto& h : H) total += std::norm(h);
  int sweep = 0;
  for (; sweep < max_sweeps && off_norm() > 1e-30 * (total + 1e-300); ++sweep) {
    for (index_t p = 0; p < n - 1; ++p)
      for (index_t q = p + 1; q < n; ++q) {
        C hpq = H[p * n + q];
        double c = std::abs(hpq);
        if (c < 1e-300) continue;
        // Phase: column q times e^{-i phi}, row q times e^{+i phi} makes H[p][q] = c real.
        C ph = std::conj(hpq) / c;  // e^{-i phi}
        for (index_t k = 0; k < n; ++k) {
          H[k * n + q] *= ph;
          V[k * n + q] *= ph;
        }
        for (index_t k = 0; k < n; ++k) H[q * n + k] *= std::conj(ph);
        double a = H[p * n + p].real(), b = H[q * n + q].real();
        double tau = (b - a) / (2 * c);
        double t = (tau >= 0 ? 1.0 : -1.0) / (std::abs(tau) + std::sqrt(1 + tau * tau));
        double cs = 1 / std::sqrt(1 + t * t), sn = t * cs;
        for (index_t k = 0; k < n; ++k) {  // H <- H G, V <- V G with G = [[cs, sn], [-sn, cs]] on (p, q)
          C hp = H[k * n + p], hq = H[k * n + q];
          H[k * n + p] = cs * hp - sn * hq;
          H[k * n + q] = sn * hp + cs * hq;
          C vp = V[k * n + p], vq = V[k * n + q];
          V[k * n + p] = cs * vp - sn * vq;
          V[k * n + q] = sn * vp + cs * vq;
        }
        for (index_t k = 0; k < n; ++k) {  // H <- G^T H
          C hp = H[p * n + k], hq = H[q * n + k];
          H[p * n + k] = cs * hp - sn * hq;
          H[q * n + k] = sn * hp + cs * hq;
        }
        H[p * n + q] = H[q * n + p] = 0;
      }
  }
  LONGSEQ_CHECK(off_norm() <= 1e-20 * (total + 1e-300), "hermitian_eigen: no convergence after ", sweep,
                " sweeps for n = ", n);
  HermitianEigen r;
  r.n = n;
  r.values.resize(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) r.values[i] = H[i * n + i].real();
  r.vectors = std::move(V);
  return r;
}

}  // namespace longseq::ssm
