// HiPPO state matrices (LegS, LegT, FouT) and their normal-plus-low-rank (NPLR / DPLR) form.
#pragma once
#include <algorithm>
#include <cmath>
#include <complex>
#include <map>
#include <mutex>
#include <numeric>
#include <string_view>
#include <utility>
#include <vector>

#include "hermitian_eigen.hpp"

namespace longseq::ssm::hippo {

enum class Measure { legs, legt, fout };

inline const char* measure_name(Measure m) {
  switch (m) {
    case Measure::legs:
      return "legs";
    case Measure::legt:
      return "legt";
    case Measure::fout:
      return "fout";
  }
  return "?";
}

// Continuous-time x' = A x + B u, A (N, N) row-major, B (N).
struct Transition {
  index_t N = 0;
  std::vector<double> A, B;
};

inline Transition transition(Measure m, index_t N) {
  LONGSEQ_CHECK(N >= 2 && N % 2 == 0, "hippo::transition(", measure_name(m), "): state size N = ", N,
                ", expected an even N >= 2");
  Transition t;
  t.N = N;
  t.A.assign(static_cast<std::size_t>(N * N), 0.0);
  t.B.assign(static_cast<std::size_t>(N), 0.0);
  auto A = [&](index_t i, index_t j) -> double& { return t.A[std::size_t(i * N + j)]; };
  switch (m) {
    case Measure::legs:
      // A[n][k] = -sqrt(2n+1) sqrt(2k+1) below the diagonal, -(n+1) on it; B[n] = sqrt(2n+1).
      for (index_t n = 0; n < N; ++n) {
        for (index_t k = 0; k < n; ++k) A(n, k) = -std::sqrt(2.0 * n + 1) * std::sqrt(2.0 * k + 1);
        A(n, n) = -double(n + 1);
        t.B[n] = std::sqrt(2.0 * n + 1);
      }
      break;
    case Measure::legt:
      // Translated Legendre, halved (the reference's time-scale convention): A[i][j] = -R_i R_j / 2 times
      // (-1)^(i-j) above the diagonal and 1 on and below it, R_i = sqrt(2i+1); B = R / 2.
      for (index_t i = 0; i < N; ++i) {
        double Ri = std::sqrt(2.0 * i + 1);
        for (index_t j = 0; j < N; ++j) {
          double Rj = std::sqrt(2.0 * j + 1);
          double s = i < j ? (((j - i) % 2) ? -1.0 : 1.0) : 1.0;
          A(i, j) = -0.5 * Ri * Rj * s;
        }
        t.B[i] = 0.5 * Ri;
      }
      break;
    case Measure::fout: {
      // Fourier basis (translated): skew 2x2 blocks of frequency pi*f on (2f, 2f+1), f >= 1, minus B B^T;
      // B = (1, 0, sqrt2, 0, sqrt2, ...).
      for (index_t i = 0; i < N; i += 2) t.B[i] = i == 0 ? 1.0 : std::sqrt(2.0);
      for (index_t f = 1; 2 * f + 1 < N; ++f) {
        A(2 * f, 2 * f + 1) = -M_PI * double(f);
        A(2 * f + 1, 2 * f) = M_PI * double(f);
      }
      for (index_t i = 0; i < N; ++i)
        for (index_t j = 0; j < N; ++j) A(i, j) -= t.B[i] * t.B[j];
      break;
    }
  }
  return t;
}

// Low-rank P (rank, N) such that A + P^T P is normal (here: skew-symmetric plus a multiple of I).
struct RankCorrection {
  index_t rank = 0, N = 0;
  std::vector<double> P;
};

inline RankCorrection rank_correction(Measure m, index_t N) {
  RankCorrection r;
  r.N = N;
  switch (m) {
    case Measure::legs:
      r.rank = 1;
      for (index_t n = 0; n < N; ++n) r.P.push_back(std::sqrt(0.5 + double(n)));
      break;
    case Measure::legt:
      // Two rows: sqrt(2n+1)/sqrt2 on odd n, then on even n.
      r.rank = 2;
      r.P.assign(static_cast<std::size_t>(2 * N), 0.0);
      for (index_t n = 0; n < N; ++n) r.P[std::size_t((n % 2 == 0 ? 1 : 0) * N + n)] = std::sqrt((2.0 * n + 1) / 2);
      break;
    case Measure::fout:
      r.rank = 1;
      for (index_t n = 0; n < N; ++n) r.P.push_back(n % 2 ? 0.0 : (n == 0 ? 1.0 : std::sqrt(2.0)));
      break;
  }
  return r;
}

// NPLR form A = V (diag(w) - P P^*) V^* over all N eigenvectors, stored with one of each conjugate
// pair (half = N/2): the real matrices are recovered as 2 Re(.) of the half sums, e.g.
// A = 2 Re(V_h diag(w) V_h^*) - P_real^T P_real and B = 2 Re(V_h B_h).
struct NPLR {
  index_t N = 0, half = 0, rank = 0;
  std::vector<std::complex<double>> w;  // (half) eigenvalues of the normal part
  std::vector<std::complex<double>> P;  // (rank, half) = V^* P_real
  std::vector<std::complex<double>> B;  // (half) = V^* B
  std::vector<std::complex<double>> V;  // (N, half) eigenvectors as columns
};

// The normal part S = A + P^T P is c I + skew; c is the mean of its diagonal and the skew part is
// diagonalized through the Hermitian matrix -i (S - c I), so w = c + i * eig. Eigenvalues are sorted by
// imaginary part and the half with negative imaginary part is kept (their conjugates are implied).
inline NPLR compute_nplr(Measure m, index_t N) {
  using C = std::complex<double>;
  Transition t = transition(m, N);
  RankCorrection rc = rank_correction(m, N);
  std::vector<double> S = t.A;
  for (index_t r = 0; r < rc.rank; ++r)
    for (index_t i = 0; i < N; ++i)
      for (index_t j = 0; j < N; ++j) S[i * N + j] += rc.P[r * N + i] * rc.P[r * N + j];
  double c = 0;
  for (index_t i = 0; i < N; ++i) c += S[i * N + i];
  c /= double(N);
  for (index_t i = 0; i < N; ++i)
    for (index_t j = 0; j < N; ++j) {
      double sym = S[i * N + j] + S[j * N + i] - (i == j ? 2 * c : 0.0);
      LONGSEQ_CHECK(std::abs(sym) < 1e-8 * (1 + std::abs(S[i * N + j])), "hippo::nplr(", measure_name(m),
                    "): A + P P^T is not skew-symmetric plus a multiple of I at (", i, ", ", j, ")");
    }
  std::vector<C> H(static_cast<std::size_t>(N * N));
  for (index_t i = 0; i < N; ++i)
    for (index_t j = 0; j < N; ++j) H[i * N + j] = i == j ? C(0) : C(0, -1) * S[i * N + j];
  HermitianEigen e = hermitian_eigen(std::move(H), N);
  std::vector<index_t> order(static_cast<std::size_t>(N));
  std::iota(order.begin(), order.end(), index_t(0));
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) { return e.values[a] < e.values[b]; });

  NPLR r;
  r.N = N;
  r.half = N / 2;
  r.rank = rc.rank;
  r.w.resize(static_cast<std::size_t>(r.half));
  r.V.assign(static_cast<std::size_t>(N * r.half), C(0));
  for (index_t k = 0; k < r.half; ++k) {
    r.w[k] = C(c, e.values[order[k]]);
    for (index_t i = 0; i < N; ++i) r.V[i * r.half + k] = e.vectors[i * N + order[k]];
  }
  if (r.half >= 2)
    LONGSEQ_CHECK(std::abs(r.w[r.half - 2]) > 1e-4, "hippo::nplr(", measure_name(m),
                  "): more than one zero eigenvalue pair in the normal part");
  if (std::abs(r.w[r.half - 1]) < 1e-4) {
    // A zero pair (FouT's constant mode) spans e0, e1 with real eigenvectors; represent it by the single
    // complex vector (e0 + i e1)/sqrt2 so that 2 Re(.) reconstructs both real directions.
    for (index_t i = 0; i < N; ++i) r.V[i * r.half + r.half - 1] = 0;
    r.V[0 * r.half + r.half - 1] = C(std::sqrt(0.5), 0);
    r.V[1 * r.half + r.half - 1] = C(0, std::sqrt(0.5));
  }
  r.P.assign(static_cast<std::size_t>(r.rank * r.half), C(0));
  r.B.assign(static_cast<std::size_t>(r.half), C(0));
  for (index_t k = 0; k < r.half; ++k)
    for (index_t i = 0; i < N; ++i) {
      C vc = std::conj(r.V[i * r.half + k]);
      r.B[k] += vc * t.B[i];
      for (index_t q = 0; q < r.rank; ++q) r.P[q * r.half + k] += vc * rc.P[q * N + i];
    }
  return r;
}

// Memoized compute_nplr: every layer of a model asks for the same (measure, N), and the Jacobi
// eigen-solver costs O(N^3) per sweep (about 0.1 s for N = 64, seconds for N = 256).
inline const NPLR& nplr(Measure m, index_t N) {
  static std::mutex mu;
  static std::map<std::pair<int, index_t>, NPLR> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(int(m), N);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, compute_nplr(m, N)).first;
  return it->second;
}

}  // namespace longseq::ssm::hippo
